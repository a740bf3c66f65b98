"""``blindgate site audit``: cross-check a site's own log with the gateway's trace.

The site's log (``<state_dir>/log.db``) is read locally and verified (its checkpoints are
signed with the agent key the holder endorsed).  The gateway's trace is read with the
holder's API key: a holder reads the entries of every job on its assets.  Then:

* every fragment the site **accepted** must have its job's ``job.submit`` and its
  ``job.release`` or ``job.fail`` at the gateway (else *missing at gateway*);
* every job the gateway **released** on one of this site's assets must have the site's
  accepted fragment for that asset (else *missing at site*: a result the site never gave);
* a job the gateway **failed** on this site's assets matches the site's fragment when
  there is one; without one it is listed as *failed elsewhere* (it stopped before reaching
  this site, for example when another site was down);
* tickets the site **refused** are listed with their reason (what a compromised gateway
  tried, or a ticket the site's own ledger or policy did not allow).

Exit status 1 when the log does not verify or anything is missing on either side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from gateway.cli.connect import json_option, key_option, open_client
from gateway.cli.output import fail, failures, note, print_json, table, when

ACTIONS = ("job.submit", "job.release", "job.fail")


@dataclass(frozen=True, slots=True)
class Row:
    """One (job, asset) pair and what each side says about it."""

    job: str
    asset: str
    fragment: str = ""
    at: str = ""
    gateway: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "job": self.job,
            "asset": self.asset,
            "fragment": self.fragment,
            "at": self.at,
            "gateway": self.gateway,
            "reason": self.reason,
        }


SECTIONS = {
    "matched": "matched",
    "missing_at_gateway": "missing at gateway",
    "missing_at_site": "missing at site",
    "failed_elsewhere": "failed elsewhere",
    "refused": "refused",
}


@dataclass
class Audit:
    """The outcome of a cross-check."""

    matched: list[Row] = field(default_factory=list)
    missing_at_gateway: list[Row] = field(default_factory=list)
    missing_at_site: list[Row] = field(default_factory=list)
    failed_elsewhere: list[Row] = field(default_factory=list)
    refused: list[Row] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing_at_gateway and not self.missing_at_site

    def rows(self, section: str) -> list[Row]:
        found: list[Row] = getattr(self, section)
        return found

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            **{name: [r.as_dict() for r in self.rows(name)] for name in SECTIONS},
        }


@dataclass
class GatewayJob:
    """What the gateway's trace says about one job."""

    assets: set[str] = field(default_factory=set)
    submitted: bool = False
    ending: str = ""


def gateway_jobs(entries: Iterable[dict[str, Any]]) -> dict[str, GatewayJob]:
    """Jobs by id from trace entries (``job.submit``, ``job.release``, ``job.fail``)."""
    jobs: dict[str, GatewayJob] = {}
    for entry in entries:
        target = entry.get("target") or {}
        job_id = target.get("job")
        if not isinstance(job_id, str):
            continue
        job = jobs.setdefault(job_id, GatewayJob())
        assets = target.get("assets")
        if isinstance(assets, list):
            job.assets.update(a for a in assets if isinstance(a, str))
        action = entry.get("action")
        if action == "job.submit":
            job.submitted = True
        elif action == "job.release" and entry.get("decision") == "allow":
            job.ending = "job.release"
        elif action == "job.fail" and job.ending != "job.release":
            job.ending = "job.fail"
    return jobs


def cross_check(
    site_entries: Iterable[dict[str, Any]],
    jobs: dict[str, GatewayJob],
    site_assets: set[str],
) -> Audit:
    """Compare the site's ticket entries with the gateway's jobs on ``site_assets``."""
    audit = Audit()
    accepted: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in site_entries:
        if entry.get("event") != "ticket":
            continue
        key = (str(entry.get("job", "")), str(entry.get("asset", "")))
        if entry.get("decision") == "accept":
            accepted.setdefault(key, entry)
        else:
            audit.refused.append(_row(key, entry, reason=str(entry.get("reason", ""))))
    for key, entry in sorted(accepted.items()):
        job = jobs.get(key[0])
        if job is None or not job.submitted:
            audit.missing_at_gateway.append(_row(key, entry, reason="no job.submit"))
        elif not job.ending:
            audit.missing_at_gateway.append(
                _row(key, entry, gateway="job.submit", reason="no job.release or job.fail")
            )
        else:
            audit.matched.append(_row(key, entry, gateway=job.ending))
    for job_id, job in sorted(jobs.items()):
        if not job.ending:
            continue
        for asset in sorted(job.assets & site_assets):
            if (job_id, asset) in accepted:
                continue
            if job.ending == "job.release":
                audit.missing_at_site.append(
                    Row(job_id, asset, gateway=job.ending, reason="released without this site")
                )
            else:
                audit.failed_elsewhere.append(Row(job_id, asset, gateway=job.ending))
    return audit


def _row(
    key: tuple[str, str], entry: dict[str, Any], *, gateway: str = "", reason: str = ""
) -> Row:
    return Row(
        job=key[0],
        asset=key[1],
        fragment=str(entry.get("fragment", "")),
        at=str(entry.get("at", "")),
        gateway=gateway,
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class LogState:
    """The site log as read and verified locally."""

    path: Path
    size: int
    verified: bool
    problem: str | None
    checkpoint: str
    entries: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size": self.size,
            "verified": self.verified,
            "problem": self.problem,
            "checkpoint": self.checkpoint,
        }


def read_site_log(config_path: Path) -> tuple[LogState, str]:
    """Read and verify the site's log; also return the agent key the holder endorsed."""
    from pydantic import ValidationError

    from contracts.endorsement import decode_agent_key
    from sandbox.agent.config import load_config
    from sandbox.agent.identity import IdentityError, endorsed_agent_key
    from sandbox.agent.sitelog import LOG_FILE, SiteLog, SiteLogError

    try:
        config = load_config(config_path)
    except (OSError, ValidationError) as exc:
        fail(f"invalid configuration {config_path}: {exc}", 2)
    try:
        agent_key = endorsed_agent_key(config)
    except IdentityError as exc:
        fail(str(exc), 2)
    path = config.state / LOG_FILE
    try:
        log = SiteLog.read(path, decode_agent_key(agent_key))
    except SiteLogError as exc:
        fail(str(exc), 2)
    try:
        report = log.verify()
        entries = [item.entry for item in log.all_entries()]
        checkpoint = log.checkpoint()
    except SiteLogError as exc:
        fail(str(exc))
    finally:
        log.close()
    state = LogState(path, report.size, report.ok, report.problem, checkpoint, entries)
    return state, agent_key


def _show(state: LogState, audit: Audit, url: str, site_ids: list[str]) -> None:
    verdict = "verified" if state.verified else f"DOES NOT VERIFY: {state.problem}"
    click.echo(f"site log  {state.path}: {state.size} entries, {verdict}")
    click.echo(f"gateway   {url}: site {', '.join(site_ids) or '(not registered)'}")
    click.echo("")
    rows = [
        [
            label,
            r.job,
            r.asset,
            r.fragment or "-",
            when(r.at or None),
            r.gateway or "-",
            r.reason or "-",
        ]
        for name, label in SECTIONS.items()
        for r in audit.rows(name)
    ]
    table(
        ["STATUS", "JOB", "ASSET", "FRAGMENT", "AT", "GATEWAY", "REASON"],
        rows,
        empty="no tickets at the site and no jobs on its assets at the gateway",
    )
    click.echo("")
    click.echo(", ".join(f"{label} {len(audit.rows(name))}" for name, label in SECTIONS.items()))
    if state.verified and audit.ok:
        click.echo(
            "every fragment the site ran is in the gateway's trace, and every release "
            "on its assets has the site's fragment"
        )


@click.command("audit")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The agent's site.yaml (its log is read from state_dir).",
)
@click.option(
    "--against",
    "url",
    envvar="BLINDGATE_URL",
    required=True,
    help="The gateway's URL (env BLINDGATE_URL).",
)
@key_option()
@json_option
def audit(config_path: Path, url: str, api_key: str | None, as_json: bool) -> None:
    """Cross-check this site's own log with the gateway's trace (holder key).

    Matched: fragments the site ran whose jobs the gateway traced to the end. Missing at
    gateway: fragments the site ran that the trace does not account for. Missing at site:
    results the gateway released on this site's assets without the site's fragment.
    Refused: tickets the site turned down, with their reason. Exits 1 when the site log does
    not verify or anything is missing on either side.
    """
    state, agent_key = read_site_log(config_path)
    with open_client(url, api_key) as client, failures():
        sites = [s for s in client.sites() if s.get("agent_key") == agent_key]
        site_ids = sorted(s["id"] for s in sites)
        site_assets = {
            card["id"]
            for card in client.assets()
            if (card.get("location") or {}).get("site_id") in site_ids
        }
        entries = [e["entry"] for action in ACTIONS for e in client.entries(action=action)]
    result = cross_check(state.entries, gateway_jobs(entries), site_assets)
    ok = state.verified and result.ok and bool(site_ids)
    if as_json:
        print_json({"log": state.as_dict(), "sites": site_ids, **result.as_dict(), "ok": ok})
    else:
        _show(state, result, url, site_ids)
        if not site_ids:
            note("no site at the gateway is registered with this agent's key")
    if not ok:
        raise SystemExit(1)
