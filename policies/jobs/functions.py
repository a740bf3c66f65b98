"""Checks of the scalar functions and casts an operator may use: numbers, text and dates.

Each check validates the arguments' kinds and refuses extra arguments; the result kind is
returned. Numeric work is evaluated in DOUBLE at the sites (see :mod:`policies.jobs.rewrite`),
so overflow yields infinity rather than an error; division needs a non-zero literal divisor,
``ROUND`` a small integer literal, and casts of data may only widen to DOUBLE or VARCHAR.
"""

from __future__ import annotations

from sqlglot import exp

from policies.jobs.errors import Refusals
from policies.jobs.schema import Kind
from policies.jobs.values import (
    EXTRACT_PARTS,
    FIX_FUNCTION,
    MAX_ROUND_DIGITS,
    TRUNC_UNITS,
    UNKNOWN,
    Ctx,
    Typed,
    date_literal,
    extra_args,
    function_name,
    sql_of,
    timestamp_literal,
)


class FunctionChecks:
    """The function and cast checks; :class:`ExpressionChecker` supplies :meth:`check`."""

    out: Refusals

    def check(self, node: exp.Expr, ctx: Ctx) -> Typed:
        raise NotImplementedError

    def _mismatch(self, node: exp.Expr, message: str) -> None:
        self.out.add(
            "type_mismatch",
            sql_of(node),
            message,
            "Compare values of the same kind (numbers with numbers, text with quoted text, "
            "dates with dates or valid 'YYYY-MM-DD' literals); implicit casts are refused.",
        )

    def _unsupported_args(self, node: exp.Expr, allowed: frozenset[str]) -> bool:
        extra = extra_args(node, allowed)
        if extra:
            self.out.add(
                "unsupported_expression",
                sql_of(node),
                f"'{function_name(node)}' is allowed only in its plain form, not with "
                f"{', '.join(sorted(extra))}.",
                FIX_FUNCTION,
            )
        return bool(extra)

    # -- numbers -------------------------------------------------------------------------

    def _number(self, node: exp.Expr, ctx: Ctx, what: str) -> Typed:
        typed = self.check(node, ctx)
        if typed.kind not in (Kind.NUMBER, Kind.NULL) and typed is not UNKNOWN:
            self._mismatch(node, f"{what} needs a number, not {typed.kind.value}.")
        return typed

    def _neg(self, node: exp.Expr, ctx: Ctx) -> Typed:
        typed = self._number(node.this, ctx, "Negation")
        number = -typed.number if typed.number is not None else None
        return Typed(Kind.NUMBER, literal=typed.literal, number=number)

    def _arithmetic(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "expression"}))
        left = self._number(node.this, ctx, "Arithmetic")
        right = self._number(node.expression, ctx, "Arithmetic")
        return Typed(Kind.NUMBER, literal=left.literal and right.literal)

    def _div(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "expression", "typed", "safe"}))
        left = self._number(node.this, ctx, "Division")
        right = self._number(node.expression, ctx, "Division")
        if not (right.literal and right.number is not None and right.number != 0):
            self.out.add(
                "division_by_expression",
                sql_of(node),
                "Division is allowed only by a non-zero numeric literal: a divisor that can be "
                "zero would make the job fail on some data.",
                "Divide by a literal such as 10 or 2.5.",
            )
        return Typed(Kind.NUMBER, literal=left.literal and right.literal)

    def _numeric_unary(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this"}))
        self._number(node.this, ctx, function_name(node).upper())
        return Typed(Kind.NUMBER)

    def _round(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "decimals"}))
        self._number(node.this, ctx, "ROUND")
        digits = node.args.get("decimals")
        if digits is not None:
            typed = self.check(digits, ctx)
            if not (
                typed.literal
                and typed.number is not None
                and typed.number.is_integer()
                and abs(typed.number) <= MAX_ROUND_DIGITS
            ):
                self.out.add(
                    "unsupported_expression",
                    sql_of(node),
                    "ROUND takes its digits as an integer literal between -15 and 15.",
                    "Write e.g. ROUND(x, 1).",
                )
        return Typed(Kind.NUMBER)

    # -- text and dates ------------------------------------------------------------------

    def _text(self, node: exp.Expr, ctx: Ctx, what: str) -> None:
        typed = self.check(node, ctx)
        if typed.kind not in (Kind.TEXT, Kind.NULL) and typed is not UNKNOWN:
            self._mismatch(node, f"{what} needs text, not {typed.kind.value}.")

    def _text_unary(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this"}))
        self._text(node.this, ctx, function_name(node).upper())
        return Typed(Kind.TEXT)

    def _length(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this"}))
        self._text(node.this, ctx, "LENGTH")
        return Typed(Kind.NUMBER)

    def _temporal(self, node: exp.Expr, ctx: Ctx, what: str) -> None:
        typed = self.check(node, ctx)
        if typed.kind not in (Kind.TEMPORAL, Kind.NULL) and typed is not UNKNOWN:
            self._mismatch(node, f"{what} needs a date or timestamp, not {typed.kind.value}.")

    def _date_part(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this"}))
        self._temporal(node.this, ctx, function_name(node).upper())
        return Typed(Kind.NUMBER)

    def _extract(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "expression"}))
        part = node.this
        name = part.name.upper() if isinstance(part, exp.Var | exp.Literal) else ""
        if name not in EXTRACT_PARTS:
            self.out.add(
                "unsupported_expression",
                sql_of(node),
                f"EXTRACT supports only {', '.join(sorted(EXTRACT_PARTS))}.",
                "Extract one of the supported parts.",
            )
        self._temporal(node.expression, ctx, "EXTRACT")
        return Typed(Kind.NUMBER)

    def _trunc(self, node: exp.Expr, ctx: Ctx) -> Typed:
        self._unsupported_args(node, frozenset({"this", "unit"}))
        unit = node.args.get("unit")
        name = unit.name.upper() if isinstance(unit, exp.Var | exp.Literal) else ""
        if name not in TRUNC_UNITS:
            self.out.add(
                "unsupported_expression",
                sql_of(node),
                f"DATE_TRUNC supports only {', '.join(sorted(TRUNC_UNITS))}.",
                "Truncate to one of the supported units.",
            )
        self._temporal(node.this, ctx, "DATE_TRUNC")
        return Typed(Kind.TEMPORAL)

    # -- casts ---------------------------------------------------------------------------

    def _cast(self, node: exp.Expr, ctx: Ctx) -> Typed:
        assert isinstance(node, exp.Cast)
        self._unsupported_args(node, frozenset({"this", "to", "safe"}))
        source = self.check(node.this, ctx)
        target = node.to
        types = exp.DataType.Type
        to_double = target.is_type(types.DOUBLE)
        to_text = target.is_type(types.VARCHAR, types.TEXT)
        if source.literal and not isinstance(node, exp.TryCast):
            if source.string and (
                (target.is_type(types.DATE) and date_literal(source.text))
                or (
                    target.is_type(types.TIMESTAMP, types.TIMESTAMPNTZ)
                    and timestamp_literal(source.text)
                )
            ):
                return Typed(Kind.TEMPORAL, literal=True)
            if source.kind is Kind.NUMBER and to_double:
                return Typed(Kind.NUMBER, literal=True, number=source.number)
            if source.kind is Kind.NULL:
                return Typed(Kind.NULL, literal=True)
            if source.string and to_text:
                return Typed(Kind.TEXT, literal=True, string=True, text=source.text)
        textual = (Kind.NUMBER, Kind.TEXT, Kind.TEMPORAL, Kind.BOOLEAN, Kind.NULL)
        if not isinstance(node, exp.TryCast) and (
            (to_double and source.kind in (Kind.NUMBER, Kind.NULL))
            or (to_text and source.kind in textual)
        ):
            return Typed(Kind.NUMBER if to_double else Kind.TEXT)
        self.out.add(
            "fallible_cast",
            sql_of(node),
            "Casts are allowed only to DOUBLE (from numbers) and VARCHAR, and of literals to "
            "DATE 'YYYY-MM-DD' and TIMESTAMP 'YYYY-MM-DD HH:MM:SS': any other cast can fail "
            "on some values (engines evaluate even literal casts row by row), and TRY_CAST "
            "hides which.",
            "Compare with literals of the column's own type instead of casting.",
        )
        return UNKNOWN
