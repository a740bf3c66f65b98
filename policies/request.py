"""What the evaluator is asked: a structured job description plus the facts it needs.

The caller (the gateway) gathers everything; the evaluator reads nothing itself.
Licence facts arrive already verified (signatures are checked in ``contracts``),
usage counters come from the store, and ``now`` from the gateway's clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from policies.model import AggregateFunction, JobKind, Policy
from policies.python import PythonFacts

ColumnUsage = Literal["select_plain", "filter", "group_by", "join_key", "aggregate"]
ColumnTag = Literal["identifier", "quasi_identifier", "sensitive", "attribute"]
AssetStatus = Literal["active", "frozen", "disposed"]
LicenceStatus = Literal["pending", "active", "suspended", "revoked", "key_rotated"]

Identifier = Annotated[str, Field(min_length=1, max_length=200)]


class _Frozen(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, revalidate_instances="always"
    )


class ColumnUse(_Frozen):
    """One use of one column by the job.

    ``select_plain`` means the column's row-level values would leave the site; a group
    key that is output with its group's aggregates is a ``group_by`` use. An
    ``aggregate`` use names its ``function``; ``count`` over a column counts its
    distinct non-null values.
    """

    asset: Identifier
    column: str = Field(min_length=1, max_length=128)
    usage: ColumnUsage
    function: AggregateFunction | None = None


class AssetFacts(_Frozen):
    """What the gateway knows about an asset: state, privacy unit and column tags."""

    asset_id: Identifier
    status: AssetStatus
    privacy_unit: str | None = None
    column_tags: Mapping[str, ColumnTag]


class AssetContext(_Frozen):
    """One asset of the job: its facts and the policy revision in force."""

    facts: AssetFacts
    policy: Policy
    policy_revision: int = Field(ge=1)


class LicenceFacts(_Frozen):
    """A licence whose signatures the caller has verified, with its usage so far.

    ``epsilon_cap`` and ``job_cap`` bound the whole life of the licence (``None``
    means no cap); ``epsilon_used`` and ``jobs_used`` are what was charged so far.
    """

    licence_id: Identifier
    status: LicenceStatus
    valid_from: AwareDatetime
    valid_until: AwareDatetime
    asset_ids: tuple[Identifier, ...]
    purposes: tuple[Identifier, ...]
    job_kinds: tuple[Identifier, ...]
    epsilon_cap: float | None = Field(default=None, gt=0)
    epsilon_used: float = Field(ge=0)
    job_cap: int | None = Field(default=None, ge=0)
    jobs_used: int = Field(ge=0)


class UsageCounters(_Frozen):
    """Recent usage the rules depend on.

    ``jobs_last_hour`` is keyed by licence id; ``epsilon_spent`` and ``delta_spent``
    by asset id, summed over the asset's current budget period across every licence
    and operator (the budget belongs to the asset's data subjects; see
    :func:`policies.budget.spent_in_period`).
    """

    jobs_last_hour: Mapping[str, int]
    epsilon_spent: Mapping[str, float]
    delta_spent: Mapping[str, float] = {}
    budget_renews_at: Mapping[str, AwareDatetime] = {}
    """Per asset, when the oldest charge of its period leaves it (budget comes back)."""


class EvaluationRequest(_Frozen):
    """A job description with every fact needed to decide on it.

    ``assets`` are the assets the job reads, each with its facts and policy;
    ``column_uses`` every column the job touches and how. ``licences`` are the
    licences the job runs under: every asset must be listed by one of them, and every
    licence that lists an asset of the job must be in force and cover the job.
    ``min_group_size`` is an optional stricter threshold asked for by the operator.
    Instances are revalidated on evaluation, so one built without validation cannot
    slip malformed values past the rules.
    """

    job_kind: JobKind
    purpose: str = Field(min_length=1, max_length=200)
    epsilon: float = Field(ge=0)
    """Every kind but ``python`` needs more than the policy's floor (> 0); a Python job
    spends none."""
    delta: float = Field(default=0.0, ge=0, lt=1)
    assets: tuple[AssetContext, ...]
    column_uses: tuple[ColumnUse, ...]
    licences: tuple[LicenceFacts, ...]
    usage: UsageCounters
    now: AwareDatetime
    min_group_size: int | None = Field(default=None, ge=1)
    group_keys: tuple[tuple[str, ...], ...] = ()
    """The columns each group key of the job reads (one tuple per key, in order)."""
    python: PythonFacts | None = None
    """A Python job's code (its hash and files); ``None`` for other kinds."""
