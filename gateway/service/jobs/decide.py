"""The decision every job gets, whatever its kind: at submission, in a dry run and again
when it starts.

The assets must be visible to the operator and share one schema; the kind says which
column uses and group keys the job implies; the privacy unit bounds and counts people
whatever its control (it is not an operator's use: ``COUNT(*)`` alone is a valid job, and
a unit with control ``never`` still bounds contributions); the policy engine
decides over every partition (the most restrictive rule wins); and an allowed job gets the
kind's plan under the decision's parameters, with the tightest clip bounds of all
partitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.domain import Actor, Job
from gateway.errors import ValidationFailed
from gateway.service.brakes.service import Brakes
from gateway.service.catalogue.visibility import asset_schema, visible_asset
from gateway.service.governance.decisions import DecisionService
from gateway.service.governance.schemas import ColumnUseIn, JobDescriptionIn
from gateway.service.jobs.kind import Analysed, JobKind
from gateway.service.jobs.support import for_schema
from gateway.store import Tx
from policies import Decision


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision and, when it allows the job, the plan the job runs."""

    decision: Decision
    plan: Any = None

    @property
    def allowed(self) -> bool:
        return self.decision.allow and self.plan is not None


class JobDecider:
    """Decides jobs of every registered kind."""

    def __init__(
        self,
        decisions: DecisionService,
        kinds: Mapping[str, JobKind[Any, Any]],
        brakes: Brakes | None = None,
    ):
        self.decisions = decisions
        self.kinds = kinds
        self.brakes = brakes
        """Emergency suspensions, checked before anything else."""

    def kind(self, name: str) -> JobKind[Any, Any]:
        """The registered kind ``name``; an unknown kind is a validation error."""
        kind = self.kinds.get(name)
        if kind is None:
            raise ValidationFailed(f"unknown job kind: {name}")
        return kind

    def decide(self, tx: Tx, actor: Actor, job: Job, precheck: Decision | None = None) -> Decided:
        """Analyse and decide ``job`` as things stand now.

        ``precheck`` is the kind's denial for reasons outside the policy (computed by the
        caller outside the transaction); when given, it is the decision.
        """
        kind = self.kind(job.kind)
        if self.brakes is not None and (stop := self.brakes.check(tx, actor, job.licence_ids)):
            return Decided(stop)
        assets = [visible_asset(actor, tx, a) for a in job.asset_ids]
        schema = asset_schema(assets)
        if precheck is not None:
            return Decided(precheck)
        analysed = kind.analyse(job, schema)
        if not isinstance(analysed, Analysed):
            return Decided(analysed)
        # The privacy unit bounds and counts people whatever its control: that is not an
        # operator's use of it, so it is not decided on (an explicit COUNT(DISTINCT unit)
        # is, and a policy can forbid it with control `never`).
        uses = list(dict.fromkeys(analysed.uses))
        description = JobDescriptionIn(
            kind=job.kind,
            purpose=job.purpose,
            epsilon=job.epsilon,
            delta=job.delta,
            assets=job.asset_ids,
            columns=[
                ColumnUseIn.model_validate({"asset": a, "column": c, "usage": u, "function": f})
                for a in job.asset_ids
                for c, u, f in uses
            ],
            licence_ids=job.licence_ids,
            group_keys=[list(key) for key in analysed.keys],
            code=analysed.code,
        )
        decision = self.decisions.decide(tx, actor, description)
        if not decision.allow or decision.parameters is None:
            return Decided(decision)
        params = for_schema(decision.parameters, schema.asset_id, job.asset_ids)
        plan = kind.plan(job, analysed.analysis, schema, params)
        if isinstance(plan, Decision):
            return Decided(plan)
        return Decided(decision, plan)
