"""``blindgate site audit``: a site's own log against the gateway's trace.

Three real agents and a real job, then what a compromised gateway would do: run a job at a
site without tracing it, send a ticket with a policy signature of its own, and trace a
release for a site that never ran the job.  Every side of the cross-check is exercised:
matched, released without the site's fragment, run at the site without the gateway's
entries, refused, and a log that no longer verifies.  SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from typing import Any

from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.tickets import Ticket, encode_ticket, sign_statement
from contracts.tlog.jcs import canonical_json
from gateway.cli.main import cli
from gateway.cli.site_audit import cross_check, gateway_jobs
from gateway.http import create_app
from gateway.service.core.tracing import Tracer
from gateway.service.jobs.kind import SiteStep
from gateway.service.jobs.schemas import JobSubmitIn
from gateway.service.jobs.tickets import ticket_for
from sandbox.wire import FragmentRequest
from tests.federated.conftest import Federation
from tests.server import running

SQL = "SELECT district, COUNT(*) AS n FROM admissions GROUP BY district"


def ticket(job: str, asset: str, decision: str = "accept", reason: str = "ok") -> dict[str, Any]:
    return {
        "at": "2026-05-01T08:00:00.000000Z",
        "event": "ticket",
        "fragment": f"{job}.{asset}.f00d",
        "job": job,
        "asset": asset,
        "kind": "sql_aggregate",
        "decision": decision,
        "reason": reason,
        "epsilon": 1.0,
        "delta": 0.0,
        "ticket_sha256": "ab" * 32,
    }


def audit(fed: Federation, n: int, url: str, *extra: str) -> Result:
    holder = fed.built.holders[n]
    return CliRunner().invoke(
        cli,
        [
            "site",
            "audit",
            "--config",
            str(holder.site_dir / "site.yaml"),
            "--against",
            url,
            "--api-key",
            holder.api_key,
            *extra,
        ],
    )


def test_site_logs_are_cross_checked_with_the_trace(federation: Federation) -> None:
    fed = federation
    body = JobSubmitIn(sql=SQL, assets=fed.asset_ids, epsilon=2.0, purpose="research")
    job = fed.services.jobs.submit(fed.operator, body)
    assert fed.runner.run_once()
    assert fed.services.jobs.get(fed.operator, job.id).state == "succeeded"
    for hospital in fed.hospitals:  # every holder of the job reads its entries
        seen = fed.services.audit.entries(hospital.actor, limit=100, cursor=None)
        actions = {e.entry["action"] for e in seen.items if e.entry["target"].get("job")}
        assert {"job.submit", "job.release"} <= actions, hospital.name
    assets = fed.asset_ids
    off_the_books = run_off_the_books(fed, job.id, 2)
    forged = forged_ticket(fed, job.id, 2)
    fabricate_release(fed, "job_fabricated", 1)

    with running(create_app(fed.services)) as url:
        first = audit(fed, 0, url, "--json")
        assert first.exit_code == 0, first.output
        report = json.loads(first.stdout)
        assert report["ok"] is True
        assert report["log"]["verified"] is True
        assert [(r["job"], r["asset"], r["gateway"]) for r in report["matched"]] == [
            (job.id, assets[0], "job.release")
        ]
        assert report["missing_at_gateway"] == report["missing_at_site"] == []

        second = audit(fed, 1, url, "--json")
        assert second.exit_code == 1
        report = json.loads(second.stdout)
        assert [r["job"] for r in report["matched"]] == [job.id]
        assert [(r["job"], r["asset"], r["reason"]) for r in report["missing_at_site"]] == [
            ("job_fabricated", assets[1], "released without this site")
        ]

        third = audit(fed, 2, url, "--json")
        assert third.exit_code == 1
        report = json.loads(third.stdout)
        assert [r["job"] for r in report["matched"]] == [job.id]
        assert [(r["job"], r["reason"]) for r in report["missing_at_gateway"]] == [
            (off_the_books, "no job.submit")
        ]
        assert [(r["job"], r["reason"]) for r in report["refused"]] == [
            (forged, "policy_signature")
        ]

        people = audit(fed, 0, url)
        assert people.exit_code == 0, people.output
        assert "verified" in people.stdout
        assert "matched 1, missing at gateway 0, missing at site 0" in people.stdout
        assert job.id in people.stdout

        log_file = fed.built.holders[0].site_dir / "cache" / "state" / "log.db"
        with sqlite3.connect(log_file) as db:
            db.execute(
                "UPDATE entry SET leaf = ? WHERE idx = (SELECT MAX(idx) FROM entry)",
                (canonical_json(ticket(job.id, assets[0], "refuse", "edited")),),
            )
        tampered = audit(fed, 0, url)
        assert tampered.exit_code == 1
        assert "DOES NOT VERIFY" in tampered.stdout

        wrong_holder = CliRunner().invoke(
            cli,
            [
                "site",
                "audit",
                "--config",
                str(fed.built.holders[1].site_dir / "site.yaml"),
                "--against",
                url,
                "--api-key",
                fed.built.holders[0].api_key,
                "--json",
            ],
        )
        assert wrong_holder.exit_code == 1
        assert json.loads(wrong_holder.stdout)["sites"] == []


def _site_ticket(fed: Federation, job_id: str, n: int) -> tuple[Ticket, Any]:
    """Hospital ``n``'s ticket for ``job_id`` as the gateway builds it, and its site client."""
    services = fed.services
    with services.ctx.store.read() as tx:
        job = tx.get_job(job_id)
        asset = tx.get_asset(fed.asset_ids[n])
        assert job is not None
        assert asset is not None
        site = tx.get_site(asset.site_id)
        assert site is not None
        ticket = ticket_for(tx, job, SiteStep(asset), datetime.now(UTC))
    return ticket, services.site_pool.client(site)


def run_off_the_books(fed: Federation, job_id: str, n: int) -> str:
    """A compromised gateway runs a job at a site without tracing it: the site decides it
    under its holder's policy, runs it and logs it."""
    ticket, client = _site_ticket(fed, job_id, n)
    hidden = ticket.job.model_copy(update={"id": "job_off_the_books"})
    sent = ticket.model_copy(update={"job": hidden, "fragment_id": "off-the-books-1"})
    outcome = client.run_fragment(FragmentRequest(sent.fragment_id, encode_ticket(sent)), 60.0)
    assert outcome.ok, outcome
    return hidden.id


def forged_ticket(fed: Federation, job_id: str, n: int) -> str:
    """A compromised gateway relaxes the holder's policy: the site refuses and logs it."""
    ticket, client = _site_ticket(fed, job_id, n)
    relaxed = ticket.policy.model_copy(
        update={"signature": sign_statement(ticket.policy.statement, Ed25519PrivateKey.generate())}
    )
    hidden = ticket.job.model_copy(update={"id": "job_forged"})
    sent = ticket.model_copy(update={"job": hidden, "policy": relaxed, "fragment_id": "forged-1"})
    outcome = client.run_fragment(FragmentRequest(sent.fragment_id, encode_ticket(sent)), 60.0)
    assert outcome.reasons == ("policy_signature",)
    return hidden.id


def fabricate_release(fed: Federation, job_id: str, n: int) -> None:
    """A compromised gateway traces a release for a site that never ran the job."""
    tracer = Tracer(fed.services.ctx.store, fed.services.ctx.clock)
    hospital = fed.hospitals[n]

    def work(tx: Any, note: Any) -> None:
        note.target.update({"job": job_id, "assets": [fed.asset_ids[n]]})
        note.subject_org = hospital.actor.org_id

    for action in ("job.submit", "job.release"):
        tracer.write(fed.operator, action, work)


def entry(action: str, job: str, assets: list[str] | None = None, **more: Any) -> dict[str, Any]:
    target: dict[str, Any] = {"job": job}
    if assets is not None:
        target["assets"] = assets
    return {"action": action, "target": target, "decision": "allow", **more}


def test_cross_check_without_a_gateway() -> None:
    trace = [
        entry("job.submit", "j1", ["a", "b"]),
        entry("job.release", "j1", ["a", "b"]),
        entry("job.submit", "j2", ["a"]),
        entry("job.fail", "j2", decision="deny"),
        entry("job.submit", "j3", ["a"]),
        entry("job.fail", "j3", decision="deny"),
        entry("job.submit", "j4", ["a"]),
        entry("job.submit", "j5", ["b"]),
        entry("job.release", "j5", ["b"]),
        entry("job.submit", "j6", ["a"]),
        entry("job.release", "j6", ["a"], decision="deny"),
    ]
    site = [
        {"event": "start"},
        ticket("j1", "a"),
        ticket("j1", "a"),  # a retried ticket counts once
        ticket("j2", "a"),
        ticket("j4", "a"),
        ticket("j9", "a", "refuse", "stale_policy"),
    ]
    result = cross_check(site, gateway_jobs(trace), {"a"})
    assert [(r.job, r.gateway) for r in result.matched] == [
        ("j1", "job.release"),
        ("j2", "job.fail"),
    ]
    assert [(r.job, r.reason) for r in result.missing_at_gateway] == [
        ("j4", "no job.release or job.fail")
    ]
    assert result.missing_at_site == []
    assert [r.job for r in result.failed_elsewhere] == ["j3"]
    assert [r.job for r in result.refused] == ["j9"]
    assert not result.ok
    released_elsewhere = cross_check([], gateway_jobs(trace), {"b"})
    assert [r.job for r in released_elsewhere.missing_at_site] == ["j1", "j5"]


def test_site_audit_explains_its_options() -> None:
    result = CliRunner().invoke(cli, ["site", "audit", "--help"])
    assert result.exit_code == 0
    for word in ("--config", "--against", "--api-key", "--json", "Missing at site"):
        assert word in result.output
