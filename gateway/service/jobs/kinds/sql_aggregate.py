"""``sql_aggregate``: a federated SQL aggregate over one asset or the partitions of one.

The operator's SQL is analysed (sqlglot) against the asset's schema; an allowed query
becomes one *partial-aggregate* fragment that every site runs in its sandbox; the
partials are combined, thresholded and noised (OpenDP) before anything is released (see
:mod:`policies.jobs`).
"""

from __future__ import annotations

import hashlib
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
    NoiseSource,
    PartialPlan,
    Release,
    analyse,
    combine,
    partial_plan,
    release,
)
from sandbox.wire import FragmentRequest

NAME = "sql_aggregate"


@dataclass(frozen=True, slots=True)
class SqlPlan:
    """An allowed SQL job: its fragment and the parameters it is released under."""

    fragment: PartialPlan
    params: EffectiveParameters

    @property
    def digest(self) -> str:
        """A short digest of the fragment's SQL (part of every fragment id)."""
        return hashlib.sha256(self.fragment.sql.encode()).hexdigest()[:16]


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

    def __init__(self, noise: NoiseSource | None = None) -> None:
        self.noise = noise

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
        try:
            return SqlPlan(partial_plan(analysis, params), params)
        except JobError as exc:
            return refused(exc)

    def site_steps(
        self, job: Job, plan: SqlPlan, assets: list[Asset], deadline_ms: int
    ) -> list[SiteStep]:
        try:  # for sites that push fragments down to the holder's PostgreSQL
            pushdown = plan.fragment.pushdown_sql("asset")
        except (JobError, ValueError):
            pushdown = ""
        return [
            SiteStep(
                asset,
                FragmentRequest(
                    fragment_id=f"{job.id}.{asset.id}.{plan.digest}",
                    job_id=job.id,
                    asset_id=asset.local_ref,
                    executor="duckdb_sql",
                    program=plan.fragment.sql,
                    deadline_ms=deadline_ms,
                    pushdown_program=pushdown,
                ),
            )
            for asset in assets
        ]

    def combine(self, job: Job, plan: SqlPlan, results: list[SiteResult]) -> dict[str, Any]:
        partials = [
            [dict(zip(r.table.columns, row, strict=True)) for row in r.table.rows] for r in results
        ]
        try:
            groups = combine(plan.fragment, partials)
            released = release(plan.fragment, groups, plan.params, noise=self.noise)
        except JobError as exc:
            codes = [r.code for r in exc.reasons]
            code = (
                FailureCode.TOO_MANY_GROUPS
                if "too_many_groups" in codes
                else FailureCode.RELEASE_REFUSED
            )
            raise JobFailed(code, [{"code": c} for c in codes]) from None
        return cells(released)
