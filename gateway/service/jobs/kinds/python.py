"""``python``: a syft-rds job folder run at each site, its outputs reviewed by the holder.

The operator submits the job folder (``config.yaml``, ``run.sh``, ``code/``) as a tar.gz
archive.  The gateway reads it strictly (:mod:`policies.jobs.jobfolder`), stores it by
its SHA-256 and records in the job's specification what names the code: the code hash,
the files manifest hash, every ``code/`` file's SHA-256, the entrypoint, the declared
dependencies and ``run.sh``'s digest (``run.sh`` itself is never executed).  The
decision runs the policy's python rules; approval is by code hash (a holder-signed
approval of the job's digest, which covers the code hash, or the code listed in the
signed policy).  Each site checks the archive against the specification, runs the code
in its sandbox on the projection the policy permits and **holds** the outputs: the
runner parks the job as ``in_review`` and asks the sites (``FetchOutputs``) until every
holder has released or one has rejected them.

A Python release spends no ε.  It is *holder-reviewed*, not differentially private: the
result's mechanism is ``holder_review``, and the licence's job cap meters it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from contracts import LicenceError, decode_public_key
from contracts.tickets import ReviewStatement, verify_statement
from gateway.domain import Asset, Job
from gateway.errors import NotFound, ValidationFailed
from gateway.service.jobs.kind import (
    Analysed,
    Draft,
    FailureCode,
    JobFailed,
    JobHeld,
    SiteResult,
    SiteStep,
)
from gateway.service.jobs.schemas import PythonJobIn
from policies import Decision, EffectiveParameters
from policies.jobs import AssetSchema
from policies.jobs.jobfolder import JobFolderError, manifest_hash, read_folder
from policies.python import PythonFacts
from sandbox.inputs import DATA_FILE, InputRejected, InputStore
from sandbox.wire import HeldOutcome

NAME = "python"
MECHANISM = "holder_review"


@dataclass(frozen=True, slots=True)
class PythonPlan:
    """An allowed Python job: its grant on each asset (columns, outputs, limits)."""

    params: EffectiveParameters


class PythonJobs:
    """The ``python`` job kind."""

    name = NAME

    def __init__(self, archives: InputStore, keys: Any = None) -> None:
        self.archives = archives
        self.keys = keys
        """``holder org id -> public key (base64)``: checks the sites' signed reviews."""

    # submission ---------------------------------------------------------------------------
    def draft(self, body: PythonJobIn) -> Draft:
        try:
            raw = base64.b64decode(body.archive, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationFailed("archive must be base64 (a tar.gz of the job folder)") from None
        digest = hashlib.sha256(raw).hexdigest()
        try:
            folder = read_folder(raw)
        except JobFolderError as exc:
            raise ValidationFailed(f"the job folder was refused: {exc.message}") from None
        try:
            with self.archives.begin(len(raw), digest) as pending:
                if not pending.already_present:
                    pending.write(raw)
                pending.commit()
        except InputRejected as exc:
            raise ValidationFailed(f"the job archive was not stored: {exc.reason}") from None
        spec = {**folder.describe(digest), "dataset": body.dataset}
        request = body.model_dump(exclude={"archive"}) | {"archive_sha256": digest}
        return Draft(
            kind=NAME,
            sql="",
            spec=spec,
            delta=0.0,
            detail={
                "kind": NAME,
                "name": folder.name,
                "code_hash": folder.code_hash,
                "files_sha256": folder.files_hash,
                "archive_sha256": digest,
                "epsilon": 0.0,
            },
            request=request,
        )

    def precheck(self, spec: dict[str, Any] | None) -> Decision | None:
        return None

    def analyse(self, job: Job, schema: AssetSchema) -> Analysed[PythonFacts] | Decision:
        spec = job.spec or {}
        facts = PythonFacts(
            code_hash=spec["code_hash"],
            files=spec["code_files"],
            operator_org_id=job.operator_org_id,
        )
        code = {"code_hash": facts.code_hash, "files": dict(facts.files)}
        return Analysed([], facts, [], code=code)

    def plan(
        self, job: Job, analysis: PythonFacts, schema: AssetSchema, params: EffectiveParameters
    ) -> PythonPlan | Decision:
        return PythonPlan(params)

    # running ------------------------------------------------------------------------------
    def site_steps(self, job: Job, plan: PythonPlan, assets: list[Asset]) -> list[SiteStep]:
        digest = str((job.spec or {}).get("archive_sha256"))
        directory = self.archives.directory(digest)
        if directory is None:
            raise NotFound("the job's archive is no longer stored")
        upload = directory / DATA_FILE
        return [SiteStep(asset, upload=upload, input_sha256=digest) for asset in assets]

    def combine(self, job: Job, plan: PythonPlan, results: list[SiteResult]) -> dict[str, Any]:
        """Every site holds the outputs: the job waits for its holders' reviews."""
        states = {}
        for result in results:
            try:
                states[result.step.asset.id] = json.loads(result.release)["python"]["state"]
            except (ValueError, KeyError, TypeError):
                raise JobFailed(FailureCode.FRAGMENT_INTERNAL) from None
        spec = job.spec or {}
        raise JobHeld(
            {
                "code_hash": spec.get("code_hash"),
                "files_sha256": spec.get("files_sha256"),
                "archive_sha256": spec.get("archive_sha256"),
                "sites": states,
            }
        )

    def reviewed(self, job: Job, answers: list[tuple[Asset, HeldOutcome]]) -> dict[str, Any] | None:
        """The released outputs once every holder released them at its site."""
        if any(outcome.state == "unknown" for _, outcome in answers):
            raise JobFailed(FailureCode.REVIEW_LOST)
        rejected = [(asset, o) for asset, o in answers if o.state == "rejected"]
        if rejected:
            raise JobFailed(
                FailureCode.REVIEW_REJECTED,
                [
                    {
                        "code": "rejected_at_site",
                        "asset": asset.id,
                        "reviewer": outcome.reviewer,
                        "reason": outcome.reason,
                    }
                    for asset, outcome in rejected
                ],
            )
        if any(outcome.state != "released" for _, outcome in answers):
            return None
        spec = job.spec or {}
        sites = [self._site(job, asset, outcome) for asset, outcome in answers]
        return {
            "columns": [],
            "rows": [],
            "epsilon_spent": 0.0,
            "delta_spent": 0.0,
            "threshold": 0,
            "key_release": "no_group_keys",
            "mechanism": MECHANISM,
            "python": {
                "code_hash": spec.get("code_hash"),
                "files_sha256": spec.get("files_sha256"),
                "archive_sha256": spec.get("archive_sha256"),
                "sites": sites,
            },
            "digests": {
                "code_hash": spec.get("code_hash"),
                "files_sha256": spec.get("files_sha256"),
                "sites": {
                    site["asset"]: {
                        "reviewer": site["reviewer"],
                        "asset_sha256": site["asset_sha256"],
                        "outputs": {f["path"]: f["sha256"] for f in site["outputs"]},
                    }
                    for site in sites
                },
            },
        }

    def _site(self, job: Job, asset: Asset, outcome: HeldOutcome) -> dict[str, Any]:
        """One site's released outputs, each file checked against its digest and the
        review against the holder's registered key."""
        files: list[dict[str, Any]] = []
        for item in outcome.files:
            if hashlib.sha256(item.content).hexdigest() != item.sha256:
                raise JobFailed(FailureCode.FRAGMENT_INTERNAL)
            files.append(
                {
                    "kind": item.kind,
                    "path": item.path,
                    "size": item.size,
                    "sha256": item.sha256,
                    "content": base64.b64encode(item.content).decode("ascii"),
                }
            )
        listed = {item.path: item.sha256 for item in outcome.files}
        if manifest_hash(listed) != outcome.outputs_sha256:
            raise JobFailed(FailureCode.FRAGMENT_INTERNAL)
        if outcome.review_statement:
            self._check_review(job, asset, outcome)
        try:
            detail = json.loads(outcome.detail or "{}")
        except ValueError:
            detail = {}
        return {
            "asset": asset.id,
            "reviewer": outcome.reviewer,
            "review_statement": outcome.review_statement,
            "review_signature": outcome.review_signature,
            "outputs_sha256": outcome.outputs_sha256,
            "asset_sha256": detail.get("asset_sha256"),
            "exit_code": detail.get("exit_code"),
            "outputs": files,
        }

    def _check_review(self, job: Job, asset: Asset, outcome: HeldOutcome) -> None:
        try:
            statement = ReviewStatement.model_validate_json(outcome.review_statement)
            key = self.keys(asset.org_id) if self.keys is not None else None
            if key is None:
                raise LicenceError("bad_key")
            verify_statement(statement, outcome.review_signature, (decode_public_key(key),))
        except (ValueError, LicenceError):
            raise JobFailed(FailureCode.FRAGMENT_INTERNAL) from None
        if (
            statement.holder_org_id != asset.org_id
            or statement.job_id != job.id
            or statement.outputs_sha256 != outcome.outputs_sha256
            or statement.decision != "release"
        ):
            raise JobFailed(FailureCode.FRAGMENT_INTERNAL)
