// Blindgate security console. Every value from the gateway is put into the page with
// textContent (never as HTML); the session cookie is HttpOnly, and state-changing calls
// carry the session's CSRF token.
"use strict";

const state = { csrf: null, last: null, filters: {}, orgs: {} };
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(path, options) {
  const init = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (init.method && init.method !== "GET") {
    init.headers["X-CSRF-Token"] = state.csrf;
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("/console");
    throw new Error("signed out");
  }
  const body = await response.json();
  if (!response.ok) {
    const error = (body && body.error) || {};
    throw new Error(`${error.code || response.status}: ${error.detail || error.message || ""}`);
  }
  return body;
}

const orgName = (id) => state.orgs[id] || id;
const short = (text, n) => (text && text.length > n ? text.slice(0, n) + "…" : text || "");

// --- overview ---------------------------------------------------------------------------
function renderAlerts(alerts) {
  const list = $("alerts");
  list.replaceChildren();
  if (!alerts.length) {
    list.append(el("li", { class: "none" }, "No alert is firing."));
    return;
  }
  for (const a of alerts) {
    const labels = Object.entries(a.labels)
      .filter(([k]) => k !== "operator")
      .map(([k, v]) => (k === "operator_org" && a.labels.operator ? `operator=${a.labels.operator} (${v})` : `${k}=${v}`))
      .join(" ");
    list.append(
      el("li", { class: a.severity, "data-alert": a.name },
        el("span", { class: "sev" }, a.name),
        el("span", {}, `${labels} — ${Math.round(a.value * 1000) / 1000}: ${a.summary}`)),
    );
  }
}

function renderTrace(data) {
  $("trace-size").textContent = data.trace_size;
  const c = data.checkpoint;
  const node = $("checkpoint");
  node.replaceChildren();
  if (c.verified) {
    node.append(el("span", { class: "ok" }, "✓ verified "),
      `size ${c.size}, signed ${c.signed_at ? c.signed_at.slice(11, 19) : "?"} UTC, root `,
      el("code", {}, short(c.root, 12)));
  } else {
    node.append(el("span", { class: "bad" }, "✗ not verified "), c.problem || "");
  }
  const q = data.queue;
  $("queue").textContent = `${q.depth} queued, oldest ${Math.round(q.oldest_age_seconds)} s`;
}

function chart(values, colour, max) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${values.length * 10} 40`);
  svg.setAttribute("preserveAspectRatio", "none");
  values.forEach((v, i) => {
    const h = max ? (v / max) * 38 : 0;
    const rect = document.createElementNS(ns, "rect");
    rect.setAttribute("x", String(i * 10 + 1));
    rect.setAttribute("y", String(40 - h));
    rect.setAttribute("width", "8");
    rect.setAttribute("height", String(h));
    rect.setAttribute("fill", colour);
    const title = document.createElementNS(ns, "title");
    title.textContent = String(v);
    rect.append(title);
    svg.append(rect);
  });
  return svg;
}

function renderActivity(activity) {
  const box = $("activity");
  box.replaceChildren();
  if (!activity.operators.length) {
    box.append(el("p", { class: "muted" }, "No job decisions in the last hour."));
    return;
  }
  const max = Math.max(1, ...activity.operators.flatMap((o) => [...o.denied, ...o.released]));
  for (const op of activity.operators) {
    const denied = op.denied.reduce((a, b) => a + b, 0);
    const released = op.released.reduce((a, b) => a + b, 0);
    const suspend = el("button", { class: "small", type: "button", "data-org": op.org }, "Suspend…");
    suspend.addEventListener("click", () => {
      $("brake-kind").value = "org";
      $("brake-target").value = op.org;
      $("brake-reason").focus();
    });
    const graphs = el("div", {}, chart(op.denied, "#e5534b", max), chart(op.released, "#46a758", max));
    box.append(el("div", { class: "op", "data-operator": op.org },
      el("div", {}, el("strong", {}, op.name), el("br"), el("code", {}, op.org), el("br"),
        el("span", { class: "deny" }, `${denied} denied`), " · ",
        el("span", { class: "allow" }, `${released} released`)),
      graphs, suspend));
  }
  box.append(el("div", { class: "legend" }, el("i", { class: "d" }), "denied decisions (jobs and dry runs)",
    el("i", { class: "r" }), "released results"));
}

function renderBudgets(budgets) {
  const body = $("budgets").tBodies[0];
  body.replaceChildren();
  for (const b of budgets) {
    const share = b.epsilon_limit ? b.epsilon_remaining / b.epsilon_limit : 0;
    const fill = el("span", {});
    fill.style.width = `${Math.round(share * 100)}%`;
    const bar = el("div", { class: "bar" + (share < 0.1 ? " low" : share < 0.3 ? " mid" : "") }, fill);
    body.append(el("tr", { "data-asset": b.asset },
      el("td", {}, b.name, el("br"), el("code", {}, b.asset)),
      el("td", {}, b.org_name),
      el("td", {}, `${b.epsilon_remaining.toFixed(2)} of ${b.epsilon_limit}`),
      el("td", {}, bar),
      el("td", {}, `${b.period_days} d`)));
  }
  if (!budgets.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted" }, "No asset has a budget.")));
}

function renderSites(sites) {
  const body = $("sites").tBodies[0];
  body.replaceChildren();
  for (const s of sites) {
    const health = s.up === null ? el("span", { class: "muted" }, "not checked yet")
      : s.up ? el("span", { class: "ok" }, "● up") : el("span", { class: "bad" }, "● down");
    const layers = Object.entries(s.layers).filter(([, on]) => on).map(([k]) => k).join(", ");
    const level = s.isolation || "—";
    body.append(el("tr", { "data-site": s.id },
      el("td", {}, s.name, el("br"), el("span", { class: "muted" }, s.org_name)),
      el("td", {}, health),
      el("td", {}, el("span", { class: level === "strong" ? "ok" : "warn" }, level), el("br"),
        el("span", { class: "muted" }, layers))));
  }
}

function renderSuspensions(items) {
  const list = $("suspensions");
  list.replaceChildren();
  if (!items.length) list.append(el("li", { class: "muted" }, "none"));
  for (const s of items) {
    const lift = el("button", { class: "small", type: "button" }, "Lift");
    lift.addEventListener("click", async () => {
      const reason = window.prompt(`Lift ${s.id}: reason`);
      if (!reason) return;
      try {
        await api(`/console/api/suspensions/${encodeURIComponent(s.id)}/lift`,
          { method: "POST", body: JSON.stringify({ reason }) });
        $("brake-result").textContent = `lifted ${s.id}`;
        refresh();
      } catch (e) { $("brake-result").textContent = e.message; }
    });
    list.append(el("li", { "data-suspension": s.id },
      el("strong", {}, `${s.kind} `), el("code", {}, s.target_id), ` (${orgName(s.operator_org_id)}) — ${s.reason} `, lift));
  }
}

async function refresh() {
  const data = await api("/console/api/overview");
  state.orgs = Object.fromEntries(data.organisations.map((o) => [o.id, o.name]));
  const options = $("org-ids");
  options.replaceChildren(...data.organisations.map((o) => el("option", { value: o.id }, o.name)));
  renderAlerts(data.alerts);
  renderTrace(data);
  renderActivity(data.activity);
  renderBudgets(data.budgets);
  renderSites(data.sites);
  renderSuspensions(data.suspensions);
}

// --- feed -------------------------------------------------------------------------------
function feedRow(item, fresh) {
  const e = item.entry;
  const actor = e.actor ? `${e.actor.principal} · ${orgName(e.actor.org)} (${e.actor.role})` : "—";
  const target = Object.entries(e.target || {}).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
  const reasons = (e.reasons || []).map((r) => r.code).join(", ");
  return el("tr", { class: fresh ? "new" : "", "data-index": item.index },
    el("td", {}, item.index),
    el("td", { class: "mono", title: e.time }, e.time.slice(11, 19)),
    el("td", {}, actor),
    el("td", { class: "mono" }, e.action),
    el("td", { class: "mono", title: target }, short(target, 60)),
    el("td", { class: e.decision }, e.decision),
    el("td", { class: "mono" }, reasons));
}

function feedQuery(extra) {
  const params = new URLSearchParams(extra);
  for (const [k, v] of Object.entries(state.filters)) if (v) params.set(k, v);
  return `/console/api/feed?${params}`;
}

async function loadFeed() {
  const data = await api(feedQuery({ limit: "100" }));
  const body = $("feed").tBodies[0];
  body.replaceChildren(...data.items.map((item) => feedRow(item, false)));
  state.last = data.items.length ? data.items[0].index : -1;
  $("feed-state").textContent = `${data.items.length} newest entries shown; following…`;
}

async function pollFeed() {
  if (state.last === null) return;
  const data = await api(feedQuery({ after: String(state.last), limit: "200" }));
  const body = $("feed").tBodies[0];
  for (const item of data.items) {
    body.prepend(feedRow(item, true));
    state.last = item.index;
  }
  while (body.rows.length > 300) body.deleteRow(body.rows.length - 1);
}

// --- start ------------------------------------------------------------------------------
async function start() {
  const me = await api("/console/api/session");
  state.csrf = me.csrf;
  $("who").textContent = `${me.name} · ${me.org_name}`;
  $("logout").addEventListener("click", async () => {
    await api("/console/logout", { method: "POST", body: "{}" });
    window.location.assign("/console");
  });
  $("brake-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { kind: $("brake-kind").value, target_id: $("brake-target").value.trim(),
      reason: $("brake-reason").value.trim() };
    try {
      const out = await api("/console/api/suspensions", { method: "POST", body: JSON.stringify(body) });
      $("brake-result").textContent =
        `suspended ${out.kind} ${out.target_id} (${out.id}); ${out.cancelled_jobs.length} live job(s) cancelled`;
      $("brake-reason").value = "";
      refresh();
    } catch (e) { $("brake-result").textContent = e.message; }
  });
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    state.filters = { principal: $("f-principal").value.trim(), org: $("f-org").value.trim(),
      asset: $("f-asset").value.trim(), action: $("f-action").value.trim(), decision: $("f-decision").value };
    loadFeed();
  });
  await refresh();
  await loadFeed();
  setInterval(() => pollFeed().catch(() => {}), 2000);
  setInterval(() => refresh().catch(() => {}), 5000);
}

document.addEventListener("DOMContentLoaded", () => { start(); });
