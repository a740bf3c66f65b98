"""Combining several assets' policies: the most restrictive rule wins."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from policies.model import (
    APPROVAL_RANK,
    AggregateFunction,
    ApprovalMode,
    JobKind,
    Policy,
    TimeWindow,
)


class EffectiveRules(BaseModel):
    """Job-level rules in force when a job reads every asset of a set of policies.

    ``time_windows`` keeps one entry per policy that restricts time: a job must be
    inside some window of *each* entry.
    """

    model_config = ConfigDict(frozen=True)

    kinds: frozenset[JobKind]
    aggregates: frozenset[AggregateFunction]
    purposes: frozenset[str]
    epsilon_per_job_max: float
    delta: float
    min_group_size: int
    max_rows_per_unit: int
    max_groups: int | None
    approval_mode: ApprovalMode
    approval_expires_after_hours: int | None
    rate_limit_per_hour: int | None
    time_windows: tuple[tuple[TimeWindow, ...], ...]


def _least(values: Sequence[int | None]) -> int | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def combine(policies: Sequence[Policy]) -> EffectiveRules:
    """The most restrictive combination of ``policies``.

    Minimum of epsilon caps, deltas, contribution bounds, group limits, rate limits and
    approval lifetimes; maximum of minimum group sizes; strictest approval mode;
    intersection of job kinds, aggregates and purposes; every time restriction kept.
    Raises ``ValueError`` for an empty sequence: no policy means nothing is allowed.
    """
    if not policies:
        raise ValueError("combine needs at least one policy")
    jobs = [policy.jobs for policy in policies]
    kinds = frozenset(jobs[0].kinds).intersection(*(j.kinds for j in jobs[1:]))
    aggregates = frozenset(jobs[0].aggregates).intersection(*(j.aggregates for j in jobs[1:]))
    purposes = frozenset(jobs[0].purposes).intersection(*(j.purposes for j in jobs[1:]))
    mode = max((j.approval.mode for j in jobs), key=APPROVAL_RANK.__getitem__)
    return EffectiveRules(
        kinds=kinds,
        aggregates=aggregates,
        purposes=purposes,
        epsilon_per_job_max=min(p.privacy.epsilon_per_job_max for p in policies),
        delta=min(p.privacy.budget.delta for p in policies),
        min_group_size=max(j.min_group_size for j in jobs),
        max_rows_per_unit=min(j.max_rows_per_unit for j in jobs),
        max_groups=_least([j.max_groups for j in jobs]),
        approval_mode=mode,
        approval_expires_after_hours=_least([j.approval.expires_after_hours for j in jobs]),
        rate_limit_per_hour=_least([j.rate_limit_per_hour for j in jobs]),
        time_windows=tuple(j.time_windows for j in jobs if j.time_windows),
    )
