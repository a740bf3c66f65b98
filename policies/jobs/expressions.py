"""Scalar expressions an operator may write: an allow-list of constructs that cannot raise on data.

Every node of an expression must be one of the constructs below, with only the arguments
listed for it; anything else is refused. Types are tracked coarsely (:class:`Kind`) so that
no comparison, ``IN`` list or ``CASE`` makes the engine cast *data* implicitly: DuckDB
raises when it casts ``'abc'`` to a number, which would let the success of a job depend on
hidden values. Numeric arithmetic and functions are later evaluated in DOUBLE (see
:mod:`policies.jobs.rewrite`), where overflow gives infinity instead of an error, and
division is allowed only by a non-zero literal.

While checking, every column met is recorded as a policy :class:`~policies.ColumnUse`:
columns in *value* positions get the context's value usage, columns in *condition*
positions (``CASE WHEN`` conditions, ``IF`` conditions) its condition usage.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from sqlglot import exp

from policies.jobs.errors import Refusals
from policies.jobs.functions import FunctionChecks
from policies.jobs.schema import AssetSchema, Kind
from policies.jobs.values import (
    BOOLEAN,
    COMPARISONS,
    FIX_FUNCTION,
    UNKNOWN,
    Ctx,
    Typed,
    Usage,
    Uses,
    clip,
    compatible,
    function_name,
    sql_of,
    unify,
)


class ExpressionChecker(FunctionChecks):
    """Checks scalar expressions of one query and records the columns they use."""

    def __init__(
        self,
        schema: AssetSchema,
        qualifiers: frozenset[str],
        refusals: Refusals,
        uses: Uses,
    ) -> None:
        self.schema = schema
        self.qualifiers = qualifiers
        self.out = refusals
        self.uses = uses
        handlers: dict[type[exp.Expr], Callable[[exp.Expr, Ctx], Typed]] = {
            exp.Paren: lambda n, c: self.check(n.this, c),
            exp.Column: self._column,
            exp.Literal: self._literal,
            exp.Null: lambda n, c: Typed(Kind.NULL, literal=True),
            exp.Boolean: lambda n, c: Typed(Kind.BOOLEAN, literal=True),
            exp.Neg: self._neg,
            exp.Add: self._arithmetic,
            exp.Sub: self._arithmetic,
            exp.Mul: self._arithmetic,
            exp.Div: self._div,
            exp.And: self._logic,
            exp.Or: self._logic,
            exp.Not: self._not,
            exp.Is: self._is,
            exp.In: self._in,
            exp.Between: self._between,
            exp.Like: self._like,
            exp.ILike: self._like,
            exp.Case: self._case,
            exp.If: self._if,
            exp.Coalesce: self._variadic,
            exp.Least: self._variadic,
            exp.Greatest: self._variadic,
            exp.Abs: self._numeric_unary,
            exp.Floor: self._numeric_unary,
            exp.Ceil: self._numeric_unary,
            exp.Round: self._round,
            exp.Lower: self._text_unary,
            exp.Upper: self._text_unary,
            exp.Trim: self._text_unary,
            exp.Length: self._length,
            exp.Year: self._date_part,
            exp.Month: self._date_part,
            exp.Day: self._date_part,
            exp.Extract: self._extract,
            exp.TimestampTrunc: self._trunc,
            exp.DateTrunc: self._trunc,
            exp.Cast: self._cast,
            exp.TryCast: self._cast,
        }
        handlers.update(dict.fromkeys(COMPARISONS, self._comparison))
        self._handlers: Mapping[type[exp.Expr], Callable[[exp.Expr, Ctx], Typed]] = handlers

    # -- entry point ---------------------------------------------------------------------

    def check(self, node: exp.Expr, ctx: Ctx) -> Typed:
        """The type of ``node``; refusals and column uses are recorded on the way."""
        handler = self._handlers.get(type(node))
        if handler is not None:
            return handler(node, ctx)
        self._refuse_node(node, ctx)
        for child in node.iter_expressions():
            if isinstance(child, exp.Expr) and not isinstance(child, exp.Query):
                self._record_columns(child, ctx)
        return UNKNOWN

    def check_condition(self, node: exp.Expr, ctx: Ctx) -> None:
        """Check ``node`` as a condition: it must be true, false or NULL."""
        self._boolean(node, ctx)

    def record_columns(self, node: exp.Expr, usage: Usage) -> None:
        """Record every column under ``node`` with ``usage``, without checking anything."""
        self._record_columns(node, Ctx(usage, usage, ""))

    # -- refusals ------------------------------------------------------------------------

    def _refuse_node(self, node: exp.Expr, ctx: Ctx) -> None:
        where = f" in {ctx.clause}" if ctx.clause else ""
        if isinstance(node, exp.Window):
            self.out.add(
                "window_not_allowed",
                sql_of(node),
                f"Window functions are not allowed{where}.",
                "Aggregate with GROUP BY instead.",
            )
        elif isinstance(node, exp.AggFunc | exp.Filter):
            self.out.add(
                "aggregate_not_allowed_here",
                sql_of(node),
                f"An aggregate cannot appear{where} or inside another expression.",
                "Use aggregates only as whole select items, e.g. SUM(x) AS total.",
            )
        elif isinstance(node, exp.Query | exp.Subquery | exp.Exists):
            self.out.add(
                "subquery_not_supported",
                sql_of(node),
                f"Subqueries are not supported{where}.",
                "Write a single SELECT over the asset.",
            )
        elif isinstance(node, exp.Star):
            self.out.add(
                "select_star", "*", "'*' is not allowed here.", "Name the columns you need."
            )
        elif isinstance(node, exp.Func | exp.Binary | exp.Unary | exp.Escape):
            name = function_name(node)
            self.out.add(
                "function_not_allowed",
                name,
                f"The function or operator '{name}' is not allowed{where}.",
                FIX_FUNCTION,
            )
        else:
            self.out.add(
                "unsupported_expression",
                sql_of(node),
                f"The expression '{clip(sql_of(node))}' is not supported{where}.",
                FIX_FUNCTION,
            )

    def _record_columns(self, node: exp.Expr, ctx: Ctx) -> None:
        for column in node.find_all(exp.Column):
            spec = self.schema.column(column.name) if not column.is_star else None
            if spec is not None:
                self.uses.add(spec.name, ctx.value)

    # -- leaves --------------------------------------------------------------------------

    def resolve(self, node: exp.Column) -> str | None:
        """The schema name of a column reference, refusing what does not resolve."""
        if node.is_star:
            self.out.add(
                "select_star", sql_of(node), "'*' is not allowed.", "Name the columns you need."
            )
            return None
        table = node.table
        if (
            node.args.get("db")
            or node.args.get("catalog")
            or (table and table.lower() not in self.qualifiers)
        ):
            self.out.add(
                "unknown_column",
                sql_of(node),
                f"'{sql_of(node)}' does not name a column of '{self.schema.table}'.",
                f"Refer to columns by name or as {self.schema.table_sql}.<column>.",
            )
            return None
        spec = self.schema.column(node.name)
        if spec is None:
            self.out.add(
                "unknown_column",
                node.name,
                f"'{self.schema.table}' has no column '{node.name}'.",
                "Use a column of the asset's card; output aliases cannot be used in WHERE.",
            )
            return None
        return spec.name

    def _column(self, node: exp.Expr, ctx: Ctx) -> Typed:
        assert isinstance(node, exp.Column)
        name = self.resolve(node)
        if name is None:
            return UNKNOWN
        self.uses.add(name, ctx.value)
        spec = self.schema.column(name)
        return Typed(spec.kind) if spec is not None else UNKNOWN

    def _literal(self, node: exp.Expr, ctx: Ctx) -> Typed:
        assert isinstance(node, exp.Literal)
        if node.is_string:
            return Typed(Kind.TEXT, literal=True, string=True, text=str(node.this))
        try:
            value = float(node.this)
        except ValueError:
            self._refuse_node(node, ctx)
            return UNKNOWN
        return Typed(Kind.NUMBER, literal=True, number=value if math.isfinite(value) else None)

    # -- booleans and comparisons ---------------------------------------------------------

    def _comparison(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "expression"}))
        left = self.check(node.this, ctx)
        right = self.check(node.expression, ctx)
        if not compatible(left, right):
            self._mismatch(
                node, f"Cannot compare {left.kind.value} with {right.kind.value} safely."
            )
        return BOOLEAN

    def _boolean(self, node: exp.Expr, ctx: Ctx) -> None:
        typed = self.check(node, ctx)
        if typed.kind not in (Kind.BOOLEAN, Kind.NULL) and typed is not UNKNOWN:
            self._mismatch(node, f"A condition must be true or false, not {typed.kind.value}.")

    def _logic(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "expression"}))
        self._boolean(node.this, ctx)
        self._boolean(node.expression, ctx)
        return BOOLEAN

    def _not(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._boolean(node.this, ctx)
        return BOOLEAN

    def _is(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self.check(node.this, ctx)
        if not isinstance(node.expression, exp.Null | exp.Boolean):
            self._refuse_node(node, ctx)
        return BOOLEAN

    def _in(self, node: exp.Expr, ctx: Ctx) -> Typed:
        if node.args.get("query") is not None or node.args.get("unnest") is not None:
            self.out.add(
                "subquery_not_supported",
                sql_of(node),
                "IN takes a list of values, not a subquery.",
                "List the values: x IN (1, 2, 3).",
            )
        self._unsupported_args(node, frozenset({"this", "expressions", "query", "unnest"}))
        left = self.check(node.this, ctx)
        if not node.expressions and node.args.get("query") is None:
            self.out.add(
                "unsupported_expression",
                sql_of(node),
                "IN needs at least one value.",
                "List the values: x IN (1, 2, 3).",
            )
        for item in node.expressions:
            typed = self.check(item, ctx)
            if not compatible(left, typed):
                self._mismatch(
                    item, f"IN list item of kind {typed.kind.value} against {left.kind.value}."
                )
        return BOOLEAN

    def _between(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "low", "high", "symmetric"}))
        value = self.check(node.this, ctx)
        for bound in (node.args["low"], node.args["high"]):
            typed = self.check(bound, ctx)
            if not compatible(value, typed):
                self._mismatch(bound, f"BETWEEN bound of kind {typed.kind.value}.")
        return BOOLEAN

    def _like(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "expression"}))
        typed = self.check(node.this, ctx)
        if typed.kind not in (Kind.TEXT, Kind.NULL) and typed is not UNKNOWN:
            self._mismatch(node, f"LIKE needs text, not {typed.kind.value}.")
        pattern = node.expression
        if isinstance(pattern, exp.Literal) and pattern.is_string and "\\" in str(pattern.this):
            self.out.add(
                "unsupported_expression",
                sql_of(node),
                "LIKE patterns may not contain a backslash: engines differ on escapes, and "
                "PostgreSQL rejects some patterns only when a row reaches them.",
                "Use % and _ wildcards only.",
            )
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            self.out.add(
                "unsupported_expression",
                sql_of(node),
                "LIKE and ILIKE take a literal pattern only.",
                "Write the pattern as a quoted string, e.g. name LIKE 'A%'.",
            )
        return BOOLEAN

    # -- conditionals --------------------------------------------------------------------

    def _branches(self, node: exp.Expr, items: list[Typed]) -> Typed:
        unified = unify(items)
        if unified is None:
            self._mismatch(node, "The branches of this expression have different kinds.")
            return UNKNOWN
        return unified

    def _case(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "ifs", "default"}))
        operand = node.args.get("this")
        operand_type = self.check(operand, ctx.conditions()) if operand is not None else None
        results: list[Typed] = []
        for branch in node.args.get("ifs") or []:
            if not isinstance(branch, exp.If):
                self._refuse_node(branch, ctx)
                continue
            if operand_type is not None:
                when = self.check(branch.this, ctx.conditions())
                if not compatible(operand_type, when):
                    self._mismatch(branch.this, "CASE operand and WHEN value differ in kind.")
            else:
                self._boolean(branch.this, ctx.conditions())
            results.append(self.check(branch.args["true"], ctx))
        default = node.args.get("default")
        results.append(self.check(default, ctx) if default is not None else Typed(Kind.NULL))
        return self._branches(node, results)

    def _if(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "true", "false"}))
        self._boolean(node.this, ctx.conditions())
        results = [self.check(node.args["true"], ctx)]
        other = node.args.get("false")
        results.append(self.check(other, ctx) if other is not None else Typed(Kind.NULL))
        return self._branches(node, results)

    def _variadic(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(
            node, frozenset({"this", "expressions", "ignore_nulls", "is_nvl", "is_null"})
        )
        items = [self.check(node.this, ctx), *(self.check(e, ctx) for e in node.expressions)]
        typed = self._branches(node, items)
        if typed.kind in (Kind.BOOLEAN, Kind.OTHER) and typed is not UNKNOWN:
            self._mismatch(node, f"{function_name(node).upper()} of {typed.kind.value} values.")
        return typed
