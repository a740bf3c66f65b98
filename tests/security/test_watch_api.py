"""What a security team sees and does through REST and /metrics, on a running gateway with
three real sites: metrics for every access, the trace as a filtered feed, and the
emergency brakes (the console's browser test is test_console_browser.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import timedelta

import pytest

from contracts.terms import terms_from_canonical
from gateway.clock import FixedClock
from gateway.service.watch.collector import StoreCollector
from tests.security.conftest import PROBE, SQL, Watched

pytestmark = pytest.mark.slow


def samples(text: str, name: str) -> dict[str, float]:
    """Every sample of ``name`` in a /metrics page: labels text -> value."""
    found = {}
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if m:
            found[m.group(1) or ""] = float(m.group(2))
    return found


def metrics(w: Watched) -> str:
    with w.client(None) as c:
        return c.get("/metrics").text


def test_jobs_charges_and_decisions_are_counted(watched: Watched) -> None:
    w = watched
    before = metrics(w)
    charged_before = samples(before, "blindgate_budget_charges_total").get(
        '{outcome="charged"}', 0.0
    )
    job = w.wait(w.submit(SQL, epsilon=0.5)["id"])
    assert job["state"] == "succeeded", job
    denied = w.submit(PROBE)
    assert denied["state"] == "denied"
    text = metrics(w)
    org = w.fed.operator.org_id
    # the charge counter moves with every charged asset (three partitions)
    charged = samples(text, "blindgate_budget_charges_total")['{outcome="charged"}']
    assert charged == charged_before + 3
    for asset in w.fed.asset_ids:
        eps = samples(text, "blindgate_budget_epsilon_charged_total")[f'{{asset="{asset}"}}']
        assert eps >= 0.5
        remaining = samples(text, "blindgate_budget_epsilon_remaining")
        limit = samples(text, "blindgate_budget_epsilon_limit")
        key = next(k for k in remaining if f'asset="{asset}"' in k)
        assert limit[key] == 20.0
        assert remaining[key] == pytest.approx(20.0 - eps)
    decisions = samples(text, "blindgate_operator_decisions_total")
    assert decisions[f'{{operator_org="{org}",outcome="allow"}}'] >= 1
    assert decisions[f'{{operator_org="{org}",outcome="deny"}}'] >= 1
    outcomes = samples(text, "blindgate_job_outcomes_total")
    assert outcomes['{kind="sql_aggregate",outcome="succeeded"}'] >= 1
    assert outcomes['{kind="sql_aggregate",outcome="denied"}'] >= 1
    assert samples(text, "blindgate_jobs")['{kind="sql_aggregate",state="succeeded"}'] >= 1
    assert samples(text, "blindgate_operator_releases_total")
    assert samples(text, "blindgate_queue_depth")[""] == 0
    assert samples(text, "blindgate_queue_oldest_age_seconds")[""] == 0
    assert samples(text, "blindgate_trace_size")[""] > 10
    fragments = samples(text, "blindgate_fragment_seconds_count")
    assert sum(fragments.values()) >= 3
    assert len(samples(text, "blindgate_site_up")) == 3
    expiry = samples(text, "blindgate_site_certificate_expiry_timestamp_seconds")
    assert len(expiry) == 3 and all(v > 1.7e9 for v in expiry.values())
    # no label names a person or carries free text
    for line in text.splitlines():
        if line.startswith("blindgate_"):
            assert w.fed.operator.principal_id not in line
            assert "SELECT" not in line


def test_authentication_failures_are_counted_by_key_prefix(watched: Watched) -> None:
    w = watched
    bad = "bg_" + "x" * 52
    prefix = hashlib.sha256(bad.encode()).hexdigest()[:2]
    with w.client(bad) as c:
        for _ in range(3):
            assert c.get("/v1/assets").status_code == 401
    with w.client(None) as c:
        assert c.get("/v1/assets").status_code == 401
    text = metrics(w)
    failures = samples(text, "blindgate_auth_failures_total")
    assert failures[f'{{key_prefix="{prefix}",reason="unknown_key"}}'] >= 3
    assert failures['{key_prefix="none",reason="malformed"}'] >= 1


def test_trace_feed_filters_and_unknown_filters(watched: Watched) -> None:
    w = watched
    w.submit(PROBE)
    principal = w.fed.operator.principal_id
    with w.client(w.auditor_key) as c:
        r = c.get("/v1/audit/entries", params={"asset": "x"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "bad_request"
        assert "asset" in r.json()["error"]["detail"]
        page = c.get(
            "/v1/audit/entries",
            params={"principal": principal, "decision": "deny", "limit": 500},
        ).json()
        assert page["items"]
        for item in page["items"]:
            assert item["entry"]["actor"]["principal"] == principal
            assert item["entry"]["decision"] == "deny"
        newest = c.get("/v1/audit/entries", params={"order": "newest", "limit": 5}).json()
        indexes = [i["index"] for i in newest["items"]]
        assert indexes == sorted(indexes, reverse=True)
        by_org = c.get(
            "/v1/audit/entries",
            params={"org": w.fed.hospitals[0].actor.org_id, "limit": 500},
        ).json()["items"]
        assert by_org
        for item in by_org:
            e = item["entry"]
            assert w.fed.hospitals[0].actor.org_id in (
                (e.get("actor") or {}).get("org"),
                e.get("subject_org"),
            )
        assert c.get("/v1/audit/entries", params={"decision": "maybe"}).status_code == 422
    # an operator asking for another organisation's entries by principal sees none of them
    with w.client(w.operator_key) as c:
        items = c.get("/v1/audit/entries", params={"principal": w.fed.auditor.principal_id}).json()[
            "items"
        ]
        assert items == []


def test_suspending_the_operator_cancels_and_refuses_its_jobs(watched: Watched) -> None:
    w = watched
    org = w.fed.operator.org_id
    body = {"kind": "org", "target_id": org, "reason": "incident 2026-117: probing"}
    # only an auditor pulls the brake
    for key in (w.operator_key, w.holder_key, w.admin_key):
        with w.client(key) as c:
            assert c.post("/v1/suspensions", json=body).status_code == 403
    # with the runner stopped a job stays queued: the brake cancels it
    w.gateway.runner.stop()  # type: ignore[union-attr]
    try:
        waiting = w.submit(SQL, epsilon=0.25)
        assert waiting["state"] == "queued"
        with w.client(w.auditor_key) as c:
            r = c.post("/v1/suspensions", json=body)
            assert r.status_code == 201, r.text
            suspension = r.json()
            assert waiting["id"] in suspension["cancelled_jobs"]
            assert c.post("/v1/suspensions", json=body).status_code == 409
    finally:
        w.gateway.runner = None
    with w.client(w.operator_key) as c:
        assert c.get(f"/v1/jobs/{waiting['id']}").json()["state"] == "cancelled"
    refused = w.submit(SQL, epsilon=0.25)
    assert refused["state"] == "denied"
    codes = [r["code"] for r in refused["decision"]["reasons"]]
    assert codes == ["operator_suspended"]
    with w.client(w.operator_key) as c:
        dry = c.post(
            "/v1/jobs/dry-run",
            json={"sql": SQL, "assets": w.fed.asset_ids, "epsilon": 0.25, "purpose": "research"},
        ).json()
        assert dry["allow"] is False
        assert dry["reasons"][0]["code"] == "operator_suspended"
        assert "auditor" in dry["reasons"][0]["fix"]
    # the brake is traced, and so is each cancelled job
    with w.client(w.auditor_key) as c:
        actions = [
            i["entry"]["action"]
            for i in c.get("/v1/audit/entries", params={"order": "newest", "limit": 50}).json()[
                "items"
            ]
        ]
        assert "security.suspend" in actions
        assert "job.cancel" in actions
        listed = c.get("/v1/suspensions", params={"active": "true"}).json()
        assert [s["id"] for s in listed] == [suspension["id"]]
    # a holder cannot lift it; an auditor can
    lift = {"reason": "cleared"}
    with w.client(w.holder_key) as c:
        assert c.post(f"/v1/suspensions/{suspension['id']}/lift", json=lift).status_code == 403
    with w.client(w.auditor_key) as c:
        r = c.post(f"/v1/suspensions/{suspension['id']}/lift", json=lift)
        assert r.status_code == 200 and r.json()["active"] is False
    again = w.submit(SQL, epsilon=0.25)
    assert again["state"] == "queued"
    text = metrics(w)
    assert samples(text, "blindgate_suspensions_total")['{action="suspend",kind="org"}'] == 1


def test_principal_and_licence_suspensions(watched: Watched) -> None:
    w = watched
    with w.client(w.auditor_key) as c:
        s1 = c.post(
            "/v1/suspensions",
            json={"kind": "principal", "target_id": w.fed.operator.principal_id, "reason": "r"},
        ).json()
    refused = w.submit(SQL, epsilon=0.25)
    assert [r["code"] for r in refused["decision"]["reasons"]] == ["principal_suspended"]
    with w.client(w.auditor_key) as c:
        assert c.post(f"/v1/suspensions/{s1['id']}/lift", json={"reason": "ok"}).is_success
        s2 = c.post(
            "/v1/suspensions",
            json={"kind": "licence", "target_id": w.fed.licences[0], "reason": "r"},
        ).json()
        assert s2["operator_org_id"] == w.fed.operator.org_id
    refused = w.submit(SQL, epsilon=0.25)
    assert [r["code"] for r in refused["decision"]["reasons"]] == ["licence_suspended"]
    with w.client(w.auditor_key) as c:
        assert c.post(f"/v1/suspensions/{s2['id']}/lift", json={"reason": "ok"}).is_success
        assert (
            c.post(
                "/v1/suspensions",
                json={"kind": "org", "target_id": "org_nope", "reason": "r"},
            ).status_code
            == 404
        )


def test_api_docs_load_nothing_from_a_cdn(watched: Watched) -> None:
    with watched.client(None) as c:
        page = c.get("/docs").text
        assert "cdn" not in page.lower()
        scripts = re.findall(r'src="([^"]+)"', page) + re.findall(r'href="([^"]+)"', page)
        assert scripts
        for src in scripts:
            assert src.startswith("/"), src
            assert c.get(src).status_code == 200


def test_licences_expiring_within_seven_days(watched: Watched) -> None:
    w = watched
    services = w.fed.services
    with services.ctx.store.read() as tx:
        licence = tx.get_licence(w.fed.licences[0])
    assert licence is not None
    until = terms_from_canonical(licence.terms.encode()).valid_until
    collector = StoreCollector(
        dataclasses.replace(services.ctx, clock=FixedClock(until - timedelta(days=3))),
        services.audit.log,
    )
    assert collector.snapshot().licences_expiring == {w.fed.operator.org_id: 3}
    later = StoreCollector(
        dataclasses.replace(services.ctx, clock=FixedClock(until - timedelta(days=30))),
        services.audit.log,
    )
    assert later.snapshot().licences_expiring == {}
