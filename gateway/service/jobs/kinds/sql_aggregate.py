"""``sql_aggregate``: a federated SQL aggregate over one asset or the partitions of one.

The operator's SQL is analysed (sqlglot) against the asset's schema; an allowed query
becomes one *partial-aggregate* fragment that every site runs in its sandbox; the
partials are combined, thresholded and noised (OpenDP) before anything is released (see
:mod:`policies.jobs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.domain import Asset, Job
from gateway.service.governance.decisions import deny
from gateway.service.jobs.kind import (
    Analysed,
    Draft,
    FailureCode,
    JobFailed,
    SiteResult,
    SiteStep,
    Use,
)
from gateway.service.jobs.schemas import JobSubmitIn
from gateway.service.jobs.support import refused, sha
from policies import Decision, EffectiveParameters
from policies.jobs import (
    Analysis,
    AnalysisError,
    AssetSchema,
    JobError,
    PartialPlan,
    PlanCache,
    Release,
    SiteRelease,
    analyse,
    finish,
)
from sandbox.wire import HeldOutcome

NAME = "sql_aggregate"


@dataclass(frozen=True, slots=True)
class SqlPlan:
    """An allowed SQL job: its fragment and the parameters it is released under."""

    fragment: PartialPlan
    params: EffectiveParameters


def cells(released: Release) -> dict[str, Any]:
    """A release as the job's stored result: per cell, value, mechanism, scales and ε."""
    rows = [
        [
            {
                "value": cell.value,
                "mechanism": cell.mechanism,
                "scales": dict(cell.scales),
                "epsilon": cell.epsilon,
            }
            for cell in (row[name] for name in released.columns)
        ]
        for row in released.rows
    ]
    return {
        "columns": list(released.columns),
        "rows": rows,
        "epsilon_spent": released.epsilon_spent,
        "delta_spent": released.delta_spent,
        "threshold": released.threshold,
        "key_release": str(released.key_release),
    }


class SqlAggregate:
    """The ``sql_aggregate`` job kind."""

    name = NAME

    def __init__(self) -> None:
        self._plans = PlanCache()

    def draft(self, body: JobSubmitIn) -> Draft:
        return Draft(
            kind=NAME,
            sql=body.sql,
            spec=None,
            delta=body.delta,
            detail={"sql_sha256": sha(body.sql), "epsilon": body.epsilon},
            request=body,
        )

    def precheck(self, spec: dict[str, Any] | None) -> Decision | None:
        return None

    def analyse(self, job: Job, schema: AssetSchema) -> Analysed[Analysis] | Decision:
        try:
            analysis = analyse(job.sql, schema)
        except AnalysisError as exc:
            return refused(exc)
        if analysis.needs_permission:
            return deny(
                "aggregate_not_allowed",
                "MIN and MAX have no differentially private release.",
                clause="request.sql",
            )
        uses: list[Use] = [(u.column, u.usage, u.function) for u in analysis.column_uses]
        return Analysed(uses, analysis, [key.columns for key in analysis.group_by])

    def plan(
        self, job: Job, analysis: Analysis, schema: AssetSchema, params: EffectiveParameters
    ) -> SqlPlan | Decision:
        """The fragment for the analysed query under ``params``.

        A plan is a pure function of the query text, the schema and the parameters, so it
        is kept by that fingerprint (:class:`policies.jobs.PlanCache`) and reused by the
        next decision on the same query; the decision that leads here is always made
        afresh.
        """
        try:
            fragment = self._plans.plan(job.sql, schema, analysis, params)
        except JobError as exc:
            return refused(exc)
        return SqlPlan(fragment, params)

    def site_steps(self, job: Job, plan: SqlPlan, assets: list[Asset]) -> list[SiteStep]:
        return [SiteStep(asset) for asset in assets]

    def reviewed(self, job: Job, answers: list[tuple[Asset, HeldOutcome]]) -> dict[str, Any] | None:
        raise JobFailed(FailureCode.INTERNAL)  # SQL results are never held for review

    def combine(self, job: Job, plan: SqlPlan, results: list[SiteResult]) -> dict[str, Any]:
        """Add the sites' noisy partials up and release what passes the threshold.

        Each site keyed and noised its own partials (:func:`policies.jobs.site_release`):
        the gateway never sees an exact value of a partition.
        """
        try:
            sites = [
                SiteRelease.from_wire(
                    plan.fragment, r.table.columns, r.table.rows, json.loads(r.release or "null")
                )
                for r in results
            ]
        except ValueError:
            raise JobFailed(FailureCode.FRAGMENT_INTERNAL) from None
        try:
            released = finish(plan.fragment, sites, plan.params)
        except JobError as exc:
            codes = [r.code for r in exc.reasons]
            code = (
                FailureCode.TOO_MANY_GROUPS
                if "too_many_groups" in codes
                else FailureCode.RELEASE_REFUSED
            )
            raise JobFailed(code, [{"code": c} for c in codes]) from None
        except ValueError:
            raise JobFailed(FailureCode.FRAGMENT_INTERNAL) from None
        return cells(released)
