"""HE jobs: context uploads, submission, dry runs and the decision an HE job runs under.

An HE job goes through the same pipeline as a SQL job (policy decision, approval,
queue, budget, trace); what differs is what the sites compute and what is released
(ciphertexts under the operator's key; see :mod:`gateway.service.he_run`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.domain import Actor, Asset, Job, JobState, Role
from gateway.errors import NotFound, ValidationFailed
from gateway.service.catalogue.federated import expand
from gateway.service.catalogue.visibility import asset_schema, visible_asset
from gateway.service.core.access import require_role
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.decisions import DecisionService
from gateway.service.governance.decisions import out as decision_out
from gateway.service.governance.schemas import ColumnUseIn, DecisionOut, JobDescriptionIn
from gateway.service.jobs.he_workspace import HeContextRefused, HeWorkspace
from gateway.service.jobs.schemas import HeContextOut, HeJobIn, JobOut
from gateway.service.jobs.service import JobService
from gateway.service.jobs.support import for_schema
from gateway.store import Tx
from policies import Decision, Reason
from sandbox.he_format import PARAMETER_SETS

HE_KINDS = frozenset({"he_aggregate", "he_linear"})


@dataclass(frozen=True, slots=True)
class Bounded:
    """A column that is aggregated, with the policy's clip bounds."""

    name: str
    lower: float
    upper: float

    @property
    def magnitude(self) -> float:
        return max(abs(self.lower), abs(self.upper))

    def program(self) -> dict[str, Any]:
        return {"name": self.name, "lower": self.lower, "upper": self.upper}


@dataclass(frozen=True, slots=True)
class HePlan:
    """What an allowed HE job computes, with the bounds its policy sets."""

    kind: str
    context: str
    unit: str
    max_rows_per_unit: int
    min_group_size: int
    epsilon: float
    where: list[dict[str, Any]]
    columns: list[Bounded]
    groups: list[dict[str, Any]]
    features: list[Bounded]
    label: Bounded | None

    @property
    def group_count(self) -> int:
        count = 1
        for group in self.groups:
            count *= len(group["values"])
        return count

    def site_program(self) -> dict[str, Any]:
        """The site step's program (the weights are added by the runner)."""
        common = {
            "unit": self.unit,
            "max_rows_per_unit": self.max_rows_per_unit,
            "where": self.where,
        }
        if self.kind == "he_aggregate":
            return {
                "op": "aggregate",
                **common,
                "columns": [c.program() for c in self.columns],
                "groups": [{"name": g["column"], "values": g["values"]} for g in self.groups],
            }
        assert self.label is not None
        return {
            "op": "linear",
            **common,
            "features": [f.program() for f in self.features],
            "label": self.label.program(),
        }


def _deny(code: str, message: str, fix: str, subject: str | None = None) -> Decision:
    reason = Reason(code=code, clause="request.he", message=message, fix=fix, subject=subject)
    return Decision(allow=False, reasons=(reason,))


class HeJobs:
    """Use cases of HE jobs; the queue, approvals and results are :class:`JobService`'s."""

    def __init__(
        self,
        jobs: JobService,
        decisions: DecisionService,
        tracer: Tracer,
        workspace: HeWorkspace,
    ) -> None:
        self.jobs = jobs
        self.ctx = jobs.ctx
        self.decisions = decisions
        self.tracer = tracer
        self.workspace = workspace

    # contexts -----------------------------------------------------------------------------
    async def upload(
        self, actor: Actor, chunks: AsyncIterator[bytes], size: int, sha256: str
    ) -> HeContextOut:
        """Store an operator's public context bundle and check it in the sandbox."""
        require_role(actor, Role.OPERATOR)
        try:
            stored = await self.workspace.receive(chunks, size, sha256)
            schemes = await asyncio.to_thread(self.workspace.describe, sha256)
        except (HeContextRefused, ValidationFailed) as exc:
            note = Note(target={"context": sha256})
            self.tracer.deny(actor, "he.context.upload", exc, note)
            raise

        def work(tx: Tx, note: Note) -> None:
            note.target["context"] = sha256
            note.detail = {"size": size, "stored": stored, "schemes": sorted(schemes)}

        await asyncio.to_thread(self.tracer.write, actor, "he.context.upload", work)
        return HeContextOut(sha256=sha256, size=size, stored=stored, schemes=schemes)

    def context(self, actor: Actor, sha256: str) -> HeContextOut:
        """What the gateway knows of a stored bundle."""
        require_role(actor, Role.OPERATOR, Role.AUDITOR)
        schemes = self.workspace.describe(sha256)
        size = self.workspace.path(sha256).stat().st_size
        return HeContextOut(sha256=sha256, size=size, stored=False, schemes=schemes)

    def weights(self, job: Job) -> tuple[str, str]:
        """The encrypted weights an ``he_linear`` job was submitted with."""
        spec = job.spec or {}
        texts = []
        for key in ("weights_sha256", "weights_outer_sha256"):
            digest = spec.get(key)
            directory = self.workspace.blobs.directory(str(digest)) if digest else None
            if directory is None:
                raise NotFound("the job's encrypted weights are no longer stored")
            texts.append(base64.b64encode((directory / "data").read_bytes()).decode())
        return texts[0], texts[1]

    def _store_weights(self, body: HeJobIn) -> dict[str, str]:
        digests: dict[str, str] = {}
        for key, text in (("weights", body.weights), ("weights_outer", body.weights_outer)):
            if text is None:
                continue
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationFailed(f"{key} must be base64") from None
            digests[f"{key}_sha256"] = self.workspace.put_blob(raw)
        return digests

    # decisions ----------------------------------------------------------------------------
    def decide(self, tx: Tx, actor: Actor, job: Job) -> tuple[Decision, HePlan | None]:
        """Decide an HE job as it stands now: (decision, plan or None)."""
        spec = job.spec or {}
        assets = [visible_asset(actor, tx, a) for a in job.asset_ids]
        schema = asset_schema(assets)
        unit = schema.unit.name
        uses: list[tuple[str, str, str | None]] = [(unit, "aggregate", "count")]
        summed = [*spec.get("columns", []), *spec.get("features", [])]
        if spec.get("label"):
            summed.append(spec["label"])
        names: dict[str, str] = {}
        for column in [*summed, *(g["column"] for g in spec.get("groups", []))] + [
            w["column"] for w in spec.get("where", [])
        ]:
            found = schema.column(column)
            if found is None:
                return _deny(
                    "unknown_column",
                    f"The asset has no column '{column}'.",
                    "Name columns of the asset card.",
                    column,
                ), None
            names[column] = found.name
        uses += [(names[c], "aggregate", "sum") for c in summed]
        uses += [(names[g["column"]], "group_by", None) for g in spec.get("groups", [])]
        uses += [(names[w["column"]], "filter", None) for w in spec.get("where", [])]
        description = JobDescriptionIn(
            kind=job.kind,
            purpose=job.purpose,
            epsilon=job.epsilon,
            delta=0.0,
            assets=job.asset_ids,
            columns=[
                ColumnUseIn.model_validate({"asset": a, "column": c, "usage": u, "function": f})
                for a in job.asset_ids
                for c, u, f in dict.fromkeys(uses)
            ],
            licence_ids=job.licence_ids,
        )
        decision = self.decisions.decide(tx, actor, description)
        if not decision.allow or decision.parameters is None:
            return decision, None
        params = for_schema(decision.parameters, schema.asset_id, job.asset_ids)
        clip = params.clip.get(schema.asset_id, {})

        def bounded(name: str) -> Bounded | None:
            bounds = clip.get(names[name])
            if bounds is None:
                return None
            return Bounded(names[name], float(bounds.lower), float(bounds.upper))

        missing = [c for c in summed if bounded(c) is None]
        if missing:
            return _deny(
                "clip_bounds_missing",
                f"Column '{missing[0]}' has no clip bounds in the policy.",
                "Ask the holder to set clip bounds, or leave the column out.",
                missing[0],
            ), None
        plan = HePlan(
            kind=job.kind,
            context=str(spec.get("context_sha256")),
            unit=unit,
            max_rows_per_unit=params.max_rows_per_unit,
            min_group_size=params.min_group_size,
            epsilon=params.epsilon,
            where=[
                {"column": names[w["column"]], "op": w["op"], "value": w["value"]}
                for w in spec.get("where", [])
            ],
            columns=[b for c in spec.get("columns", []) if (b := bounded(c))],
            groups=[
                {"column": names[g["column"]], "values": g["values"]}
                for g in spec.get("groups", [])
            ],
            features=[b for c in spec.get("features", []) if (b := bounded(c))],
            label=bounded(spec["label"]) if spec.get("label") else None,
        )
        if params.max_groups is not None and plan.group_count > params.max_groups:
            return _deny(
                "too_many_groups",
                f"The job has {plan.group_count} groups; the policy allows {params.max_groups}.",
                "Name fewer group keys.",
            ), None
        return decision, plan

    def check_context(self, spec: dict[str, Any]) -> Decision | None:
        """A denial if the job's context bundle cannot serve it, else ``None``."""
        digest = str(spec.get("context_sha256"))
        try:
            schemes = self.workspace.describe(digest)
        except (NotFound, HeContextRefused) as exc:
            return _deny(
                "he_context_unusable",
                str(exc.detail or exc.spec.message),
                "Upload the public context bundle to /v1/he/contexts first.",
            )
        ckks = schemes.get("ckks")
        slots = PARAMETER_SETS[ckks["parameters"]].slots if ckks else 0
        if spec.get("features"):
            d = len(spec["features"])
            if ckks is None or not ckks.get("galois_keys"):
                return _deny(
                    "he_context_unusable",
                    "he_linear needs a CKKS context with Galois keys.",
                    "Create the keys with galois_keys=True.",
                )
            if d * d > slots:
                return _deny("he_context_unusable", "Too many features.", "Use fewer features.")
            return None
        groups = 1
        for group in spec.get("groups", []):
            groups *= len(group["values"])
        bfv = schemes.get("bfv")
        cells = 2 * len(spec.get("columns", [])) * groups
        if bfv is None or (cells and ckks is None):
            return _deny(
                "he_context_unusable",
                "he_aggregate needs a BFV context (counts) and a CKKS context (sums).",
                "Create the bundle with HeKeys.create().",
            )
        if cells > slots or groups > PARAMETER_SETS[bfv["parameters"]].slots // 2:
            return _deny(
                "he_context_unusable",
                f"{groups} groups x {len(spec.get('columns', []))} columns do not fit one "
                "ciphertext.",
                "Name fewer group keys or columns, or use n=16384 parameters.",
            )
        return None

    # submit -------------------------------------------------------------------------------
    def _draft(
        self, tx: Tx, actor: Actor, body: HeJobIn, job_id: str, spec: dict[str, Any]
    ) -> tuple[list[Asset], Job]:
        """The job ``body`` describes, over the assets it names, before any decision."""
        now = self.ctx.clock.now()
        assets = [visible_asset(actor, tx, a) for a in expand(tx, body.assets)]
        licences = self.jobs.licences_for(tx, actor, body.assets, body.licence_ids)
        return assets, Job(
            id=job_id,
            operator_org_id=actor.org_id,
            principal_id=actor.principal_id,
            kind=body.kind,
            sql="",
            purpose=body.purpose,
            epsilon=body.epsilon,
            delta=0.0,
            asset_ids=[a.id for a in assets],
            licence_ids=[lic.id for lic in licences],
            idempotency_key=body.idempotency_key,
            state=JobState.SUBMITTED,
            decision={},
            created_at=now,
            updated_at=now,
            spec=spec,
        )

    def _decide(self, tx: Tx, actor: Actor, job: Job, context: Decision | None) -> Decision:
        if context is not None:
            return context
        return self.decide(tx, actor, job)[0]

    def submit(self, actor: Actor, body: HeJobIn) -> JobOut:
        """Decide and persist an HE job; denied jobs are kept with their reasons."""
        require_role(actor, Role.OPERATOR)
        existing = self.jobs.existing(actor, body.idempotency_key)
        if existing is not None:
            return existing
        spec = {**body.spec(), **self._store_weights(body)}
        context = self.check_context(spec)

        def build(tx: Tx) -> tuple[list[Asset], Job, Decision, dict[str, Any]]:
            assets, job = self._draft(tx, actor, body, self.ctx.ids.new("job"), spec)
            decision = self._decide(tx, actor, job, context)
            detail = {
                "kind": body.kind,
                "context_sha256": body.context_sha256,
                "epsilon": body.epsilon,
            }
            return assets, job, decision, detail

        return self.jobs.enter(actor, build, _digested(body))

    def check(self, actor: Actor, body: HeJobIn) -> DecisionOut:
        """Decide an HE job without storing, running or charging anything."""
        require_role(actor, Role.OPERATOR)
        spec = body.spec()
        context = self.check_context(spec)

        def work(tx: Tx, note: Note) -> Decision:
            job = self._draft(tx, actor, body, "check", spec)[1]
            decision = self._decide(tx, actor, job, context)
            note.target["assets"] = job.asset_ids
            note.record_decision(decision.allow, decision.reasons)
            note.detail = {"kind": body.kind, "epsilon": body.epsilon}
            return decision

        decision = self.tracer.read(actor, "job.check", work)
        self.decisions.record(decision)
        return decision_out(decision)


def _digested(body: HeJobIn) -> dict[str, Any]:
    """The request as the trace digests it: ciphertexts by their SHA-256 only."""
    described = body.model_dump(exclude={"weights", "weights_outer"})
    for key in ("weights", "weights_outer"):
        text = getattr(body, key)
        if text is not None:
            described[f"{key}_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return described
