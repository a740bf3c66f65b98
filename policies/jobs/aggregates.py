"""Aggregates an operator may use, and the output columns they describe.

``COUNT(*)``, ``COUNT(expr)``, ``COUNT(DISTINCT <privacy unit>)``, ``SUM``, ``AVG``,
``VARIANCE``/``VAR_SAMP``/``VAR_POP``, ``STDDEV``/``STDDEV_SAMP``/``STDDEV_POP``, ``MIN``
and ``MAX``. The argument of a value aggregate must be a numeric column, or a ``CASE``/
``IF`` whose results are that column, numeric literals or ``NULL``: then the column's clip
bounds bound the argument and clipping at the site cannot be escaped. Columns inside the
argument are aggregate uses with the aggregate's policy function; columns in its
conditions are filter uses. ``MIN``/``MAX`` are recorded as needing the policy's explicit
permission to be released.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from sqlglot import exp

from policies import AggregateFunction
from policies.jobs.expressions import ExpressionChecker
from policies.jobs.schema import AssetSchema, Kind
from policies.jobs.values import (
    FILTER,
    PLAIN,
    UNKNOWN,
    Ctx,
    Typed,
    Usage,
    canonical,
    columns_of,
    function_name,
    sql_of,
    unwrap,
)

AggregateName = Literal[
    "count",
    "count_units",
    "sum",
    "avg",
    "var_samp",
    "var_pop",
    "stddev_samp",
    "stddev_pop",
    "min",
    "max",
]

#: Value aggregates: the name used here and the policy's aggregate function.
_VALUE_AGGREGATES: Final[dict[type[exp.Expr], tuple[AggregateName, AggregateFunction]]] = {
    exp.Sum: ("sum", "sum"),
    exp.Avg: ("avg", "avg"),
    exp.Variance: ("var_samp", "variance"),
    exp.VariancePop: ("var_pop", "variance"),
    exp.Stddev: ("stddev_samp", "stddev"),
    exp.StddevSamp: ("stddev_samp", "stddev"),
    exp.StddevPop: ("stddev_pop", "stddev"),
    exp.Min: ("min", "min"),
    exp.Max: ("max", "max"),
}


@dataclass(frozen=True, slots=True)
class OutputColumn:
    """One output column: a group key (``group_index``) or an aggregate.

    For aggregates, ``argument`` is the canonical SQL of the argument (``None`` for
    ``COUNT(*)`` and ``COUNT(DISTINCT <unit>)``), ``value_column`` the column whose clip
    bounds bound the argument, and ``literals`` the numeric literals the argument can
    yield instead of that column.
    """

    name: str
    kind: Literal["group_key", "aggregate"]
    group_index: int | None = None
    function: AggregateName | None = None
    argument: str | None = None
    value_column: str | None = None
    literals: tuple[float, ...] = ()


class AggregateChecker:
    """Checks the aggregates of one query and describes them as output columns."""

    def __init__(self, schema: AssetSchema, checker: ExpressionChecker) -> None:
        self.schema = schema
        self.checker = checker
        self.out = checker.out
        self._permission: dict[str, None] = {}

    def needs_permission(self) -> tuple[str, ...]:
        """The aggregates met whose release needs the policy's explicit permission."""
        return tuple(self._permission)

    def check(self, node: exp.Expr, alias: str | None) -> OutputColumn | None:
        """Check one aggregate; its output column (named ``alias`` or a default)."""
        if isinstance(node, exp.Filter):
            self.out.add(
                "aggregate_filter_not_supported",
                sql_of(node),
                "FILTER (WHERE ...) on aggregates is not supported.",
                "Put the condition in a CASE WHEN inside the aggregate.",
            )
            inner = node.this
            if isinstance(inner, exp.Expr) and isinstance(inner, exp.AggFunc):
                self.check(inner, None)
            condition = node.expression
            if isinstance(condition, exp.Expr):
                self.checker.record_columns(condition, FILTER)
            return None
        if isinstance(node, exp.Count):
            return self._count(node, alias)
        names = _VALUE_AGGREGATES.get(type(node))
        if names is None:
            name = function_name(node)
            self.out.add(
                "function_not_allowed",
                name,
                f"The aggregate '{name}' is not allowed.",
                "Use COUNT, SUM, AVG, VARIANCE, STDDEV, MIN or MAX.",
            )
            self.checker.record_columns(node, PLAIN)
            return None
        return self._value_aggregate(node, alias, *names)

    def _count(self, node: exp.Count, alias: str | None) -> OutputColumn | None:
        arg = node.this
        extra = [k for k, v in node.args.items() if k not in ("this", "big_int") and v]
        if extra:
            self.checker.record_columns(node, ("aggregate", "count"))
            self._plain_form_only(node)
            return None
        if arg is None or isinstance(arg, exp.Star):
            return OutputColumn(name=alias or "count", kind="aggregate", function="count")
        if isinstance(arg, exp.Distinct):
            items = arg.expressions
            first = unwrap(items[0]) if len(items) == 1 else None
            unit = self.schema.unit.name
            if isinstance(first, exp.Column) and self.checker.resolve(first) == unit:
                self.checker.uses.add(unit, ("aggregate", "count"))
                return OutputColumn(
                    name=alias or "count_units", kind="aggregate", function="count_units"
                )
            self.checker.record_columns(arg, ("aggregate", "count"))
            self.out.add(
                "count_distinct_not_allowed",
                sql_of(node),
                f"COUNT(DISTINCT ...) is allowed only over the privacy unit '{unit}'.",
                f"Count rows with COUNT(*) or people with COUNT(DISTINCT {unit}).",
            )
            return None
        self.checker.check(arg, Ctx(("aggregate", "count"), FILTER, "COUNT"))
        columns = columns_of(arg, self.schema)
        return OutputColumn(
            name=alias or ("count_" + columns[0] if columns else "count"),
            kind="aggregate",
            function="count",
            argument=canonical(arg, self.schema),
        )

    def _value_aggregate(
        self,
        node: exp.Expr,
        alias: str | None,
        name: AggregateName,
        policy: AggregateFunction,
    ) -> OutputColumn | None:
        usage: Usage = ("aggregate", policy)
        arg = node.this
        if not isinstance(arg, exp.Expr) or [k for k, v in node.args.items() if k != "this" and v]:
            self.checker.record_columns(node, usage)
            self._plain_form_only(node)
            return None
        if isinstance(arg, exp.Distinct):
            self.checker.record_columns(arg, usage)
            self.out.add(
                "distinct_aggregate_not_allowed",
                sql_of(node),
                f"{name.upper()}(DISTINCT ...) is not allowed.",
                f"Use {name.upper()} over all values.",
            )
            return None
        if name in ("min", "max"):
            self._permission[name] = None
        typed: Typed = self.checker.check(arg, Ctx(usage, FILTER, name.upper()))
        if typed.kind not in (Kind.NUMBER, Kind.NULL) and typed is not UNKNOWN:
            self.out.add(
                "type_mismatch",
                sql_of(node),
                f"{name.upper()} needs numbers, not {typed.kind.value}.",
                "Aggregate a numeric column.",
            )
        bounded = self._bounded_form(arg)
        if bounded is None:
            self.out.add(
                "unbounded_expression",
                sql_of(node),
                f"The argument of {name.upper()} must be a numeric column, or a CASE whose "
                "results are that column, numeric literals or NULL, so that the column's clip "
                "bounds bound it.",
                "Aggregate a column directly, e.g. SUM(los) or "
                "SUM(CASE WHEN age > 60 THEN los END); scale the released value afterwards.",
            )
            return None
        column, literals = bounded
        return OutputColumn(
            name=alias or f"{name}_{column}",
            kind="aggregate",
            function=name,
            argument=canonical(arg, self.schema),
            value_column=column,
            literals=literals,
        )

    def _bounded_form(self, arg: exp.Expr) -> tuple[str, tuple[float, ...]] | None:
        node = unwrap(arg)
        if isinstance(node, exp.Column):
            spec = self.schema.column(node.name)
            return (spec.name, ()) if spec is not None else None
        if isinstance(node, exp.Case):
            results = [b.args.get("true") for b in node.args.get("ifs") or []]
            results.append(node.args.get("default"))
        elif isinstance(node, exp.If):
            results = [node.args.get("true"), node.args.get("false")]
        else:
            return None
        columns: set[str] = set()
        literals: list[float] = []
        for result in results:
            if result is None:
                continue
            value = unwrap(result)
            if isinstance(value, exp.Null):
                continue
            if isinstance(value, exp.Column):
                spec = self.schema.column(value.name)
                if spec is None:
                    return None
                columns.add(spec.name)
                continue
            number = _number_literal(value)
            if number is None:
                return None
            literals.append(number)
        if len(columns) != 1:
            return None
        return columns.pop(), tuple(literals)

    def _plain_form_only(self, node: exp.Expr) -> None:
        self.out.add(
            "unsupported_expression",
            sql_of(node),
            f"{function_name(node).upper()} is allowed only in its plain one-argument form.",
            "Write e.g. SUM(x), COUNT(*) or COUNT(x).",
        )


def _number_literal(node: exp.Expr) -> float | None:
    negative = False
    while isinstance(node, exp.Neg | exp.Paren):
        if isinstance(node, exp.Neg):
            negative = not negative
        node = node.this
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            value = float(node.this)
        except ValueError:
            return None
        return -value if negative else value
    return None
