"""A holder-side bridge between syft-rds and Blindgate.

The bridge logs in to the holder's SyftBox as its data owner (``syft_rds.login_do``) and,
each round, does with syft-rds's public calls what a data owner would do by hand, except
that nothing runs on the bridge's machine:

* every pending job a data scientist submitted (``client.jobs``) is submitted to the
  Blindgate gateway as a Python job (its job folder, unchanged: ``config.yaml``,
  ``run.sh``, ``code/``) under the licensed operator organisation the bridge's
  configuration maps the data scientist to; a data scientist with no mapping, or a job
  the gateway denies, is rejected (``job.reject``) with Blindgate's reasons;
* once the job's outputs were reviewed and released at every site, they are deposited
  for the data scientist (``job.accept_by_depositing_result``, then ``share_outputs``):
  one folder per site with its files and logs, and Blindgate's receipt; a rejection at a
  site, or any other failure, rejects the syft job with the holder's reason or the code;
* ``client.sync()`` carries both to the data scientist.

The bridge keeps which syft job became which Blindgate job in a small JSON file, so a
restarted bridge picks up where it stopped.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.client import ApiError, Client

log = logging.getLogger(__name__)

TERMINAL = frozenset({"succeeded", "failed", "denied", "cancelled"})


@dataclass
class BridgeSettings:
    """Which assets a bridged job runs on, for which purpose, under which operator."""

    assets: list[str]
    purpose: str
    operators: dict[str, Client]
    """syft-rds data scientist e-mail -> a client with that operator's API key."""
    dataset: str | None = None
    state_file: Path | None = None


@dataclass
class Tracked:
    job_id: str
    operator: str


@dataclass
class SyftBridge:
    """One data owner's syft-rds client, bridged to one Blindgate gateway."""

    syft: Any
    """A ``syft_rds.SyftRDSClient`` with the data-owner role."""
    settings: BridgeSettings
    tracked: dict[str, Tracked] = field(default_factory=dict)
    report: Callable[[str], None] = log.info

    def __post_init__(self) -> None:
        path = self.settings.state_file
        if path is not None and path.exists():
            saved = json.loads(path.read_text(encoding="utf-8"))
            self.tracked = {key: Tracked(**value) for key, value in saved.items()}

    def _save(self) -> None:
        path = self.settings.state_file
        if path is not None:
            path.write_text(
                json.dumps({k: vars(v) for k, v in self.tracked.items()}, indent=1),
                encoding="utf-8",
            )

    @staticmethod
    def key(job: Any) -> str:
        return f"{job.submitted_by}/{job.name}"

    def step(self) -> int:
        """One round: submit new jobs, settle finished ones, sync; how many changed."""
        changed = 0
        for job in list(self.syft.jobs):
            if job.status != "pending":
                continue
            key = self.key(job)
            if key not in self.tracked:
                changed += self._submit(job, key)
            else:
                changed += self._settle(job, self.tracked[key])
        self._save()
        if changed:
            self.syft.sync()
        return changed

    def _submit(self, job: Any, key: str) -> int:
        client = self.settings.operators.get(job.submitted_by)
        if client is None:
            job.reject("Blindgate: no licensed operator is registered for this data scientist")
            self.report(f"{key}: rejected (no operator for {job.submitted_by})")
            return 1
        try:
            submitted = client.submit_python_job(
                job.job_submission_path,
                self.settings.assets,
                self.settings.purpose,
                dataset=self.settings.dataset,
            )
        except ApiError as exc:
            job.reject(f"Blindgate refused the job folder: {exc.code}: {exc.message}")
            self.report(f"{key}: refused by the gateway ({exc.code})")
            return 1
        if submitted["state"] == "denied":
            reasons = "; ".join(
                f"{r['code']}: {r['message']}" for r in submitted["decision"].get("reasons", [])
            )
            job.reject(f"Blindgate denied the job: {reasons}")
            self.report(f"{key}: denied ({reasons})")
            return 1
        self.tracked[key] = Tracked(submitted["id"], job.submitted_by)
        spec = submitted.get("spec") or {}
        self.report(
            f"{key}: Blindgate job {submitted['id']} ({submitted['state']}), "
            f"code hash {spec.get('code_hash')}"
        )
        return 1

    def _settle(self, job: Any, tracked: Tracked) -> int:
        client = self.settings.operators[tracked.operator]
        found = client.job(tracked.job_id)
        if found["state"] not in TERMINAL:
            return 0
        if found["state"] != "succeeded":
            reasons = found.get("failure_reasons") or []
            said = "; ".join(
                f"{r.get('asset', '')}: {r.get('reason') or r.get('code')}" for r in reasons
            )
            job.reject(
                f"Blindgate: the job {found['state']} ({found.get('error_code')})"
                + (f": {said}" if said else "")
            )
            self.report(f"{self.key(job)}: {found['state']} ({found.get('error_code')})")
            return 1
        with tempfile.TemporaryDirectory() as scratch:
            released = Path(scratch) / "blindgate"
            client.job_outputs(tracked.job_id, released)
            result = client.result(tracked.job_id)
            (released / "receipt.json").write_text(
                json.dumps(result.get("receipt"), indent=1), encoding="utf-8"
            )
            job.accept_by_depositing_result(str(released))
        job.share_outputs([job.submitted_by])
        self.report(f"{self.key(job)}: released outputs deposited")
        return 1


def login(email: str, token_path: Path | None) -> Any:
    """The holder's syft-rds client, as its data owner."""
    from syft_rds import login_do

    return login_do(email=email, token_path=token_path)
