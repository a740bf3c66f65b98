"""The catalogue of decision reason codes: every code the evaluator can give, explained.

Codes are stable identifiers: clients, the trace and the audit tools key on them.
Each entry has a short title and the default fix offered to the operator; the
evaluator may give a more specific fix for a particular job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, NamedTuple

from policies.decision import Reason


class ReasonInfo(NamedTuple):
    """What a reason code means and how an operator can usually resolve it."""

    title: str
    fix: str


REASONS: Final[Mapping[str, ReasonInfo]] = {
    # Malformed or incomplete input: always a denial (fail closed).
    "evaluation_error": ReasonInfo(
        "The request could not be evaluated",
        "Check the job description and the asset's policy; contact the operator of the gateway "
        "if the problem persists.",
    ),
    "invalid_request": ReasonInfo(
        "The job description is malformed",
        "Correct the field named in the clause and submit the job again.",
    ),
    "missing_attribute": ReasonInfo(
        "A fact needed for the decision is missing",
        "Supply the missing attribute named in the clause; a decision is never made without it.",
    ),
    "empty_policy": ReasonInfo(
        "No rule allows anything",
        "Ask the holder to publish a policy that allows at least one column, job kind, "
        "aggregate and purpose.",
    ),
    "policy_asset_mismatch": ReasonInfo(
        "The policy belongs to another asset",
        "Evaluate the job against the policy published for this asset.",
    ),
    "unknown_asset": ReasonInfo(
        "A column use names an asset that is not part of the job",
        "List every asset the job reads, or correct the asset id of the column use.",
    ),
    # Asset state.
    "asset_frozen": ReasonInfo(
        "The asset is frozen",
        "Wait until the holder or the auditor unfreezes the asset.",
    ),
    "asset_disposed": ReasonInfo(
        "The asset has been disposed of",
        "Choose another asset; a disposed asset never becomes usable again.",
    ),
    # Column controls.
    "unknown_column": ReasonInfo(
        "The column does not exist in the asset",
        "Check the column name against the asset card.",
    ),
    "column_not_listed": ReasonInfo(
        "The policy does not list the column, so it may not be used",
        "Remove the column from the job, or ask the holder to list it in the policy.",
    ),
    "column_never": ReasonInfo(
        "The column may never be used",
        "Remove every use of the column from the job.",
    ),
    "column_not_allowed_in_filter": ReasonInfo(
        "The column may not be used in a filter",
        "Remove the condition on this column from WHERE/HAVING.",
    ),
    "column_not_allowed_in_group_by": ReasonInfo(
        "The column may not be used as a group key",
        "Remove the column from GROUP BY.",
    ),
    "column_not_allowed_in_join": ReasonInfo(
        "The column may not be used as a join key",
        "Join on a column whose control is join_key or plain.",
    ),
    "column_not_allowed_in_aggregate": ReasonInfo(
        "The column may not be aggregated",
        "Aggregate a column whose control is aggregate or plain.",
    ),
    "column_not_allowed_plain": ReasonInfo(
        "The column's values may not be released as they are",
        "Use the column only as its control allows, e.g. inside an aggregate.",
    ),
    "plain_on_sensitive": ReasonInfo(
        "A sensitive column's values may not be released as they are",
        "Release only aggregates of the sensitive column.",
    ),
    "plain_on_quasi_identifier": ReasonInfo(
        "A quasi-identifier's row-level values may not be released",
        "Group by the column and release aggregates instead of row values.",
    ),
    "identifier_exposed": ReasonInfo(
        "An identifier may only be joined on or counted",
        "Use the identifier as a join key or inside count only.",
    ),
    "aggregate_not_allowed": ReasonInfo(
        "The aggregate function is not allowed",
        "Use one of the aggregate functions every policy of the job allows.",
    ),
    "clip_bounds_missing": ReasonInfo(
        "The column has no clip bounds, so its aggregate cannot be bounded",
        "Use count on this column, or ask the holder to add clip bounds to the policy.",
    ),
    # Job-level rules.
    "job_kind_not_allowed": ReasonInfo(
        "The job kind is not allowed",
        "Submit the job as a kind every policy of the job allows.",
    ),
    "purpose_not_allowed": ReasonInfo(
        "The purpose is not allowed",
        "Declare a purpose every policy of the job allows.",
    ),
    "epsilon_over_job_max": ReasonInfo(
        "The job asks for more epsilon than one job may use",
        "Lower the job's epsilon to the policy's epsilon_per_job_max or below.",
    ),
    "epsilon_under_job_min": ReasonInfo(
        "The job's epsilon is below the asset's minimum",
        "Raise the job's epsilon to the asset's epsilon_per_job_min or more.",
    ),
    "delta_over_job_max": ReasonInfo(
        "The job's delta exceeds the asset's per-job maximum",
        "Lower the job's delta, or group only by columns with declared keys and ask for 0.",
    ),
    "undeclared_group_keys": ReasonInfo(
        "A group key is not a declared public domain",
        "Group by columns whose key domain the policy declares, or ask for delta > 0 where "
        "the policy allows it.",
    ),
    "too_many_groups": ReasonInfo(
        "The job has more groups than the policy allows",
        "Group by fewer or coarser keys.",
    ),
    "python_rules_missing": ReasonInfo(
        "The asset's policy has no rules for Python jobs",
        "Ask the holder to add a python section (the columns Python jobs may read) to the "
        "policy, or use another job kind.",
    ),
    "python_not_private": ReasonInfo(
        "Python jobs spend no privacy budget",
        "Submit the Python job with epsilon 0 and delta 0: its outputs are reviewed by the "
        "holder, not noised.",
    ),
    "budget_exhausted": ReasonInfo(
        "The privacy budget of the period would be exceeded",
        "Lower the job's epsilon or delta, or wait until earlier charges leave the period.",
    ),
    "rate_limited": ReasonInfo(
        "Too many jobs in the last hour",
        "Wait and submit the job later.",
    ),
    "outside_time_window": ReasonInfo(
        "Jobs may not run at this time",
        "Submit the job inside one of the policy's time windows.",
    ),
    "min_group_size_too_low": ReasonInfo(
        "The requested minimum group size is below the policy's",
        "Request a minimum group size at least as large as the policy's, or omit it.",
    ),
    # Licences.
    "licence_asset_not_covered": ReasonInfo(
        "No licence covers the asset",
        "Obtain a licence from the asset's holder that lists the asset.",
    ),
    "licence_not_active": ReasonInfo(
        "The licence is not active",
        "Complete or reinstate the licence before submitting jobs under it.",
    ),
    "licence_revoked": ReasonInfo(
        "The licence has been revoked",
        "Negotiate a new licence with the holder.",
    ),
    "licence_key_rotated": ReasonInfo(
        "The licence was signed under a replaced key",
        "Ask the holder to offer the licence again under its current key and countersign it "
        "with yours; a licence signed under a replaced key authorises no new job.",
    ),
    "licence_expired": ReasonInfo(
        "The licence has expired",
        "Renew the licence with the holder.",
    ),
    "licence_not_yet_valid": ReasonInfo(
        "The licence is not valid yet",
        "Wait until the licence's valid_from time.",
    ),
    "licence_purpose_not_covered": ReasonInfo(
        "The licence does not cover the purpose",
        "Declare a purpose the licence lists, or amend the licence.",
    ),
    "licence_job_kind_not_covered": ReasonInfo(
        "The licence does not cover the job kind",
        "Submit a job kind the licence lists, or amend the licence.",
    ),
    "licence_job_cap": ReasonInfo(
        "The licence's job cap is reached",
        "Negotiate a licence with a higher job cap.",
    ),
    "licence_epsilon_cap": ReasonInfo(
        "The licence's epsilon cap would be exceeded",
        "Lower the job's epsilon, or negotiate a licence with a higher epsilon cap.",
    ),
}


class Reasons:
    """An ordered, de-duplicated collection of reasons."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, str | None, str | None], Reason] = {}

    def add(
        self,
        code: str,
        clause: str,
        message: str,
        *,
        asset: str | None = None,
        subject: str | None = None,
        fix: str | None = None,
    ) -> None:
        """Record a reason; the catalogue's fix is used unless a specific one is given."""
        key = (code, clause, asset, subject)
        if key not in self._items:
            self._items[key] = Reason(
                code=code,
                clause=clause,
                message=message,
                fix=fix or REASONS[code].fix,
                asset=asset,
                subject=subject,
            )

    def __bool__(self) -> bool:
        return bool(self._items)

    def items(self) -> tuple[Reason, ...]:
        """The reasons in the order they were found."""
        return tuple(self._items.values())


def listing(values: Iterable[object]) -> str:
    """Sorted, comma-separated values for messages; ``(none)`` when empty."""
    items = sorted(str(value) for value in values)
    return ", ".join(items) if items else "(none)"
