"""What people see: decisions, jobs, results, budgets, cards and licences, in a few lines."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.output import fields, number, table, when


def decision(found: dict[str, Any]) -> None:
    """ALLOW with the parameters the job would run under, or DENY with every reason."""
    if found["allow"]:
        click.echo(click.style("ALLOW", fg="green", bold=True))
        params = found.get("parameters") or {}
        shown = [
            (key, params[key])
            for key in ("epsilon", "delta", "min_group_size", "max_rows_per_unit", "approval_mode")
            if key in params
        ]
        if shown:
            fields([(f"  {k}", v) for k, v in shown])
        return
    reasons = found["reasons"]
    count = f"{len(reasons)} reason" + ("" if len(reasons) == 1 else "s")
    click.echo(click.style("DENY", fg="red", bold=True) + f": {count}")
    for n, reason in enumerate(reasons, 1):
        where = f" [{reason['asset']}]" if reason.get("asset") else ""
        click.echo(f"{n:>2}. {reason['code']}{where}: {reason['message']}")
        click.echo(f"    clause: {reason['clause']}")
        click.echo(f"    fix:    {reason['fix']}")


def _assets(ids: list[str]) -> str:
    return ids[0] + (f" +{len(ids) - 1}" if len(ids) > 1 else "") if ids else "-"


def jobs(found: list[dict[str, Any]]) -> None:
    """One line per job: id, state, kind, assets, ε, created."""
    rows = [
        [
            j["id"],
            j["state"],
            j["kind"],
            _assets(j["assets"]),
            number(j["epsilon"]),
            when(j["created_at"]),
        ]
        for j in found
    ]
    table(["ID", "STATE", "KIND", "ASSETS", "EPSILON", "CREATED"], rows, empty="no jobs")


def job(found: dict[str, Any]) -> None:
    """A job's card: what it computes, where it stands, who approved it and why."""
    pairs: list[tuple[str, Any]] = [
        ("job", found["id"]),
        ("state", found["state"] + (f" ({found['error_code']})" if found["error_code"] else "")),
        ("kind", found["kind"]),
        ("purpose", found["purpose"]),
        ("epsilon", f"{number(found['epsilon'])} (delta {number(found['delta'])})"),
        ("assets", ", ".join(found["assets"])),
        ("operator", found["operator_org_id"]),
        ("created", when(found["created_at"])),
        ("updated", when(found["updated_at"])),
    ]
    if found.get("sql"):
        pairs.insert(3, ("sql", found["sql"]))
    if found.get("spec") and found["kind"] == "python":
        spec = found["spec"]
        pairs.insert(3, ("code hash", spec.get("code_hash")))
        pairs.insert(4, ("job folder", f"{spec.get('name')} (entrypoint {spec.get('entrypoint')})"))
        files = spec.get("code_files") or {}
        pairs.insert(5, ("code files", ", ".join(sorted(files)) or "-"))
    elif found.get("spec"):
        pairs.insert(3, ("computes", _he_spec(found["spec"])))
    if found["approvals_required"]:
        votes = len([a for a in found["approvals"] if a["decision"] == "approve"])
        expiry = found.get("approval_expires_at")
        until = f", window closes {when(expiry)}" if expiry else ""
        pairs.append(("approvals", f"{votes} of {found['approvals_required']} needed{until}"))
        for vote in found["approvals"]:
            reason = f': "{vote["reason"]}"' if vote.get("reason") else ""
            pairs.append(("", f"{vote['decision']} by {vote['principal']}{reason}"))
    for reason in found.get("failure_reasons") or []:
        said = f': "{reason["reason"]}"' if reason.get("reason") else ""
        pairs.append(("why", f"{reason.get('code')} at {reason.get('asset', '-')}{said}"))
    fields(pairs)
    if found.get("decision"):
        click.echo("decision:")
        decision(found["decision"])


def _he_spec(spec: dict[str, Any]) -> str:
    """What an HE job computes, in one line (never its encrypted weights)."""
    if spec.get("features"):
        what = f"a linear model on {', '.join(spec['features'])} against {spec.get('label')}"
    else:
        what = "counts and sums of " + (", ".join(spec.get("columns") or []) or "rows")
    for group in spec.get("groups") or []:
        what += f" per {group['column']} ({len(group['values'])} keys)"
    conditions = [f"{w['column']} {w['op']} {w['value']}" for w in spec.get("where") or []]
    if conditions:
        what += " where " + " and ".join(conditions)
    context = str(spec.get("context_sha256") or "")[:12]
    return what + (f"; context {context}…" if context else "")


def _he_released(result: dict[str, Any]) -> None:
    """An HE result holds ciphertexts only the operator's secret key opens: say what was
    released and how it was noised, and where to decrypt it."""
    he = result["he"]
    click.echo(
        f"{he['kind']} result, encrypted under your key: decrypt it in the process that holds "
        "the key (gateway.client.he)"
    )
    if he.get("suppressed"):
        click.echo(
            f"suppressed: fewer than {result['threshold']} people (noisy count) were selected"
        )
    elif "keys" in he:
        shown = [" / ".join(str(k) for k in he["keys"][g]) for g in he["released"]]
        click.echo(
            f"released {len(shown)} of {len(he['keys'])} groups: {', '.join(shown) or 'none'}"
        )
    click.echo(f"epsilon spent {result['epsilon_spent']:.3f}")
    for charge in he.get("charges") or []:
        click.echo(
            f"  {charge['quantity']}: {charge['mechanism']} noise (scale {charge['scale']:.3g}), "
            f"epsilon {charge['epsilon']:.3f}"
        )


def _cell(cell: dict[str, Any]) -> str:
    value = cell["value"]
    if value is None and cell.get("mechanism") == "suppressed":
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _python_released(result: dict[str, Any]) -> None:
    """A Python job's outputs: reviewed by each holder at its site, not noised."""
    python = result["python"]
    click.echo(
        f"released after each holder's review (mechanism {result.get('mechanism')}; not "
        f"differentially private, no epsilon spent); code hash {python.get('code_hash')}"
    )
    for site in python.get("sites", []):
        click.echo(f"{site['asset']}: reviewed by {site['reviewer']}")
        for item in site["outputs"]:
            click.echo(f"  {item['size']:>9}  {item['sha256'][:16]}  {item['path']}")
    click.echo("write the files with: blindgate python outputs JOB --out DIR")


def released(result: dict[str, Any]) -> None:
    """The released table, then how it was noised."""
    if result.get("he"):
        _he_released(result)
        return
    if result.get("python"):
        _python_released(result)
        return
    rows = [[_cell(cell) for cell in row] for row in result["rows"]]
    table(result["columns"], rows, empty="no group passed the threshold: nothing released")
    keys = {
        "declared_keys": "every key the policy declares (empty ones too)",
        "stability_histogram": "keys chosen by a differentially private selection (delta)",
        "no_group_keys": "one group",
    }.get(result["key_release"], result["key_release"])
    click.echo(
        f"\nepsilon spent {result['epsilon_spent']:.3f}, delta {result['delta_spent']:.3g}; "
        f"keys released: {keys}; '-': fewer than {result['threshold']} people (noisy count), "
        "values withheld"
    )
    shown = next((r for r in result["rows"] if r[-1]["mechanism"] != "suppressed"), None)
    if shown is not None:
        for column, cell in zip(result["columns"], shown, strict=True):
            if cell["mechanism"]:
                scales = ", ".join(f"{k} {v:.3g}" for k, v in cell["scales"].items())
                click.echo(
                    f"  {column}: {cell['mechanism']} noise (scale {scales}), "
                    f"epsilon {cell['epsilon']:.3f}"
                )


def budget(found: dict[str, Any]) -> None:
    """What remains of a licence's privacy budget, per asset and under the licence cap."""
    cap = found["licence_epsilon_cap"]
    used = number(found["licence_epsilon_used"])
    if cap is None:
        click.echo(f"licence {found['licence_id']}: epsilon used {used} (no licence cap)")
    else:
        click.echo(
            f"licence {found['licence_id']}: epsilon used {used} of {number(cap)}, "
            f"{number(found['licence_epsilon_remaining'])} left"
        )
    rows = [
        [
            a["asset_id"],
            number(a["epsilon_spent"]),
            number(a.get("epsilon_spent_by_licence", a["epsilon_spent"])),
            number(a["epsilon_budget"]),
            number(a["epsilon_remaining"]),
            f"{a['period_days']} days",
            number(a["epsilon_per_job_max"]),
            (a.get("renews_at") or "-")[:16].replace("T", " "),
        ]
        for a in found["assets"]
    ]
    table(
        [
            "ASSET",
            "SPENT",
            "THIS-LICENCE",
            "BUDGET",
            "LEFT",
            "PERIOD",
            "MAX PER JOB",
            "RENEWS",
        ],
        rows,
        empty="no assets",
    )
    click.echo(
        "SPENT counts every licence and operator: an asset's budget belongs to its data subjects"
    )
    if found.get("epsilon_per_job") is not None:
        click.echo(
            f"jobs of epsilon {number(found['epsilon_per_job'])} that still fit: "
            f"{number(found['jobs_that_fit'])}"
        )


def assets(found: list[dict[str, Any]]) -> None:
    rows = [
        [
            a["id"],
            a["basic"]["name"],
            a["basic"]["domain"],
            a["management"]["status"],
            f"{a['basic']['row_count']:,}",
            a["rights"]["holder_org_id"],
        ]
        for a in found
    ]
    table(["ID", "NAME", "DOMAIN", "STATUS", "ROWS", "HOLDER"], rows, empty="no assets")


def asset(card: dict[str, Any]) -> None:
    """An asset card: basic, rights, usage, management and (for its holder) location."""
    basic, rights, usage, mgmt = card["basic"], card["rights"], card["usage"], card["management"]
    pairs: list[tuple[str, Any]] = [
        ("asset", f"{card['id']}  {basic['name']} ({mgmt['registration_number']})"),
        ("status", mgmt["status"]),
        ("domain", f"{basic['domain']}, classification {basic['classification']}"),
        ("rows", f"{basic['row_count']:,}, updated {basic['update_frequency']}"),
        ("privacy unit", basic["privacy_unit"]),
        ("holder", rights["holder_org_id"]),
        (
            "rights",
            f"holding {rights['holding']}; processing and use "
            f"{rights['processing_use']}; product operation {rights['product_operation']}",
        ),
        (
            "usage",
            f"{usage['jobs_run']} jobs by {usage['operators']} operator(s), "
            f"last access {when(usage['last_access'])}",
        ),
        ("version", f"{mgmt['version']}, registered {when(mgmt['registered_at'])}"),
    ]
    if basic.get("description"):
        pairs.insert(1, ("description", basic["description"]))
    if mgmt.get("freeze"):
        f = mgmt["freeze"]
        pairs.append(
            (
                "frozen",
                f"by {f['frozen_by']} ({f['frozen_role']}) at "
                f"{when(f['frozen_at'])}: {f['reason']}",
            )
        )
    if mgmt.get("disposal"):
        d = mgmt["disposal"]
        pairs.append(
            ("disposed", f"by {d['disposed_by']} at {when(d['disposed_at'])}, {d['method']}")
        )
    if card.get("location"):
        loc = card["location"]
        pairs.append(("location", f"site {loc['site_id']}, {loc['local_ref']}"))
    fields(pairs)
    click.echo()
    table(
        ["COLUMN", "TYPE", "TAG"],
        [[c["name"], c["type"], c["tag"]] for c in basic["columns"]],
        empty="no columns",
    )


def licences(found: list[dict[str, Any]]) -> None:
    rows = [
        [
            lic["id"],
            lic["status"],
            lic["holder_org_id"],
            lic["operator_org_id"],
            _assets(list(lic["terms"].get("asset_ids", []))),
            when(lic["terms"].get("valid_until")),
        ]
        for lic in found
    ]
    table(
        ["ID", "STATUS", "HOLDER", "OPERATOR", "ASSETS", "VALID UNTIL"], rows, empty="no licences"
    )


def licence(found: dict[str, Any]) -> None:
    terms = found["terms"]
    fee = terms.get("fee") or {}
    pairs: list[tuple[str, Any]] = [
        ("licence", found["id"]),
        (
            "status",
            found["status"]
            + (f" ({found['revoke_reason']})" if found.get("revoke_reason") else ""),
        ),
        ("holder", found["holder_org_id"]),
        ("operator", found["operator_org_id"]),
        ("assets", ", ".join(terms.get("asset_ids", []))),
        ("purposes", ", ".join(terms.get("purposes", []))),
        ("job kinds", ", ".join(terms.get("job_kinds", []))),
        ("valid", f"{when(terms.get('valid_from'))} to {when(terms.get('valid_until'))}"),
        ("epsilon cap", number(terms.get("epsilon_cap"))),
        ("job cap", number(terms.get("job_cap"))),
        (
            "fee",
            f"{fee.get('amount', '0')} {fee.get('currency', '')}, revenue share "
            f"{fee.get('revenue_share_percent', '0')}%",
        ),
        ("signatures", "holder" + (", operator" if found.get("operator_signature") else "")),
    ]
    fields(pairs)
