"""Column rules of the evaluator: controls, column tags and aggregate functions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from policies.errors import render_path
from policies.model import Control
from policies.reasons import Reasons, listing
from policies.request import AssetContext, ColumnUsage, ColumnUse, EvaluationRequest

#: Which uses each control permits (``count`` is also open to every control but never).
ALLOWED_USAGES: Final[Mapping[Control, frozenset[ColumnUsage]]] = {
    "never": frozenset(),
    "join_key": frozenset({"join_key"}),
    "filter": frozenset({"filter"}),
    "group_by": frozenset({"group_by", "filter"}),
    "aggregate": frozenset({"aggregate"}),
    "plain": frozenset({"select_plain", "filter", "group_by", "join_key", "aggregate"}),
}

_USAGE_CODES: Final[Mapping[ColumnUsage, str]] = {
    "select_plain": "column_not_allowed_plain",
    "filter": "column_not_allowed_in_filter",
    "group_by": "column_not_allowed_in_group_by",
    "join_key": "column_not_allowed_in_join",
    "aggregate": "column_not_allowed_in_aggregate",
}

#: Aggregate functions whose sensitivity does not depend on the values aggregated.
UNBOUNDED_OK: Final = frozenset({"count"})


def _counting(use: ColumnUse) -> bool:
    """Counting a column's values reveals no value, so any control but ``never`` permits it."""
    return use.usage == "aggregate" and use.function == "count"


def check_column_use(
    out: Reasons,
    index: int,
    use: ColumnUse,
    req: EvaluationRequest,
    contexts: Mapping[str, AssetContext],
) -> None:
    """One column use against the column's control, its tag and the aggregate rules."""
    where = f"request.column_uses[{index}]"
    ctx = contexts.get(use.asset)
    subject = f"{use.asset}.{use.column}"
    if ctx is None:
        out.add(
            "unknown_asset",
            f"{where}.asset",
            f"Column use '{subject}' names asset '{use.asset}', which the job does not list.",
            subject=subject,
        )
        return
    aid, column = use.asset, use.column
    if use.usage != "aggregate" and use.function is not None:
        out.add(
            "invalid_request",
            f"{where}.function",
            f"A function is given for the {use.usage} use of '{column}'.",
            asset=aid,
            subject=column,
        )
    tag = ctx.facts.column_tags.get(column)
    if tag is None:
        out.add(
            "unknown_column",
            f"{where}.column",
            f"Asset '{aid}' has no column '{column}'.",
            asset=aid,
            subject=column,
        )
        return
    rule = ctx.policy.columns.get(column)
    if rule is None:
        out.add(
            "column_not_listed",
            "columns",
            f"The policy of asset '{aid}' does not list column '{column}'.",
            asset=aid,
            subject=column,
        )
        return
    control_clause = render_path(("columns", column, "control"))
    allowed = ALLOWED_USAGES.get(rule.control, frozenset())
    if rule.control == "never":
        out.add(
            "column_never",
            control_clause,
            f"Column '{column}' of asset '{aid}' may never be used.",
            asset=aid,
            subject=column,
        )
    elif use.usage not in allowed and not _counting(use):
        out.add(
            _USAGE_CODES.get(use.usage, "invalid_request"),
            control_clause,
            f"Column '{column}' of asset '{aid}' has control '{rule.control}', which does not "
            f"allow {use.usage} use.",
            asset=aid,
            subject=column,
            fix=f"Use '{column}' only as: {listing(allowed)}.",
        )
    _check_tag(out, use, tag)
    if use.usage == "aggregate":
        _check_aggregate(out, where, use, req, bounded=rule.clip is not None)


def _check_tag(out: Reasons, use: ColumnUse, tag: str) -> None:
    aid, column = use.asset, use.column
    clause = render_path(("facts", "column_tags", column))
    if tag == "identifier":
        if use.usage != "join_key" and not (use.usage == "aggregate" and use.function == "count"):
            out.add(
                "identifier_exposed",
                clause,
                f"Column '{column}' of asset '{aid}' is an identifier; {use.usage} use is refused.",
                asset=aid,
                subject=column,
            )
    elif tag == "sensitive":
        if use.usage == "select_plain":
            out.add(
                "plain_on_sensitive",
                clause,
                f"Column '{column}' of asset '{aid}' is sensitive; its values cannot be released.",
                asset=aid,
                subject=column,
            )
    elif tag == "quasi_identifier":
        if use.usage == "select_plain":
            out.add(
                "plain_on_quasi_identifier",
                clause,
                f"Column '{column}' of asset '{aid}' is a quasi-identifier; its row values cannot "
                "be released.",
                asset=aid,
                subject=column,
            )
    elif tag != "attribute":
        out.add(
            "invalid_request",
            clause,
            f"Unknown tag for column '{column}'.",
            asset=aid,
            subject=column,
        )


def _check_aggregate(
    out: Reasons, where: str, use: ColumnUse, req: EvaluationRequest, *, bounded: bool
) -> None:
    aid, column, function = use.asset, use.column, use.function
    if function is None:
        out.add(
            "missing_attribute",
            f"{where}.function",
            f"The aggregate use of '{column}' names no function.",
            asset=aid,
            subject=column,
        )
        return
    for ctx in req.assets:
        if function not in ctx.policy.jobs.aggregates:
            out.add(
                "aggregate_not_allowed",
                "jobs.aggregates",
                f"Asset '{ctx.facts.asset_id}' does not allow the aggregate {function}.",
                asset=ctx.facts.asset_id,
                subject=function,
                fix=f"Use an aggregate asset '{ctx.facts.asset_id}' allows: "
                f"{listing(ctx.policy.jobs.aggregates)}.",
            )
    if function not in UNBOUNDED_OK and not bounded:
        out.add(
            "clip_bounds_missing",
            render_path(("columns", column, "clip")),
            f"Column '{column}' of asset '{aid}' has no clip bounds, so {function} over it cannot "
            "be bounded.",
            asset=aid,
            subject=column,
        )
