"""Kinds of values, usage contexts and column-use bookkeeping for the expression checks."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Final

from sqlglot import exp

from policies import AggregateFunction, ColumnUsage, ColumnUse
from policies.jobs.schema import AssetSchema, Kind

Usage = tuple[ColumnUsage, AggregateFunction | None]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$")

FILTER: Final[Usage] = ("filter", None)
GROUP_BY: Final[Usage] = ("group_by", None)
PLAIN: Final[Usage] = ("select_plain", None)

FIX_FUNCTION = (
    "Use only: arithmetic (+ - * and / by a non-zero literal), comparisons, AND/OR/NOT, IS NULL, "
    "IN, BETWEEN, LIKE/ILIKE with a literal pattern, CASE/IF, COALESCE, LEAST, GREATEST, ABS, "
    "ROUND, FLOOR, CEIL, LOWER, UPPER, TRIM, LENGTH, YEAR, MONTH, DAY, EXTRACT and DATE_TRUNC."
)
EXTRACT_PARTS: Final = frozenset({"YEAR", "QUARTER", "MONTH", "DAY", "HOUR"})
TRUNC_UNITS: Final = frozenset({"YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "HOUR"})
MAX_ROUND_DIGITS: Final = 15

COMPARISONS: Final = (
    exp.EQ,
    exp.NEQ,
    exp.GT,
    exp.GTE,
    exp.LT,
    exp.LTE,
    exp.NullSafeEQ,
    exp.NullSafeNEQ,
)


@dataclass(frozen=True, slots=True)
class Typed:
    """What an expression yields: its kind and, for literals, what is known statically."""

    kind: Kind
    literal: bool = False
    string: bool = False
    number: float | None = None
    text: str | None = None


#: The type of an expression already refused; checks on it add no further reasons.
UNKNOWN: Final = Typed(Kind.OTHER)
BOOLEAN: Final = Typed(Kind.BOOLEAN)


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where an expression stands: the usage of its value columns and of its conditions."""

    value: Usage
    cond: Usage
    clause: str

    def conditions(self) -> Ctx:
        return replace(self, value=self.cond)


class Uses:
    """The column uses of a query, in first-seen order, without repeats."""

    def __init__(self, asset: str) -> None:
        self._asset = asset
        self._items: dict[tuple[str, Usage], ColumnUse] = {}

    def add(self, column: str, usage: Usage) -> None:
        key = (column, usage)
        if key not in self._items:
            self._items[key] = ColumnUse(
                asset=self._asset, column=column, usage=usage[0], function=usage[1]
            )

    def items(self) -> tuple[ColumnUse, ...]:
        return tuple(self._items.values())


def sql_of(node: exp.Expr) -> str:
    """The DuckDB text of a node, without comments."""
    try:
        return node.sql(dialect="duckdb", comments=False)
    except Exception:
        return type(node).__name__


def function_name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return type(node).__name__.lower()


def date_literal(text: str | None) -> bool:
    """Whether ``text`` is a valid ``YYYY-MM-DD`` date, which every engine casts alike."""
    if text is None or not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def timestamp_literal(text: str | None) -> bool:
    """Whether ``text`` is a valid ``YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]`` timestamp."""
    if text is None or not _TIMESTAMP.match(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def compatible(a: Typed, b: Typed) -> bool:
    """Whether comparing ``a`` with ``b`` needs no cast that data could make fail.

    Engines cast a string literal compared with a date *per row*, so an invalid date
    literal fails only when some row reaches it: only valid ``YYYY-MM-DD`` literals may
    stand for dates.
    """
    if Kind.NULL in (a.kind, b.kind):
        return True
    if Kind.OTHER in (a.kind, b.kind):
        return False
    if a.kind == b.kind:
        return True
    if a.kind is Kind.TEMPORAL and b.string:
        return date_literal(b.text)
    if b.kind is Kind.TEMPORAL and a.string:
        return date_literal(a.text)
    return False


def unify(items: list[Typed]) -> Typed | None:
    """The common type of branches, or ``None`` when some pair is incompatible."""
    known = [t for t in items if t.kind is not Kind.NULL]
    if not known:
        return Typed(Kind.NULL, literal=all(t.literal for t in items))
    base = next((t for t in known if not t.string), known[0])
    if not all(compatible(base, t) for t in known):
        return None
    return Typed(base.kind, literal=all(t.literal for t in items))


def extra_args(node: exp.Expr, allowed: frozenset[str]) -> list[str]:
    return [
        key
        for key, value in node.args.items()
        if key not in allowed and value not in (None, False, [], "")
    ]


def clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unwrap(node: exp.Expr) -> exp.Expr:
    """``node`` without enclosing parentheses."""
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def canonical(node: exp.Expr, schema: AssetSchema) -> str:
    """DuckDB SQL of ``node`` with columns quoted by their schema names, unqualified."""

    def rename(n: exp.Expr) -> exp.Expr:
        if isinstance(n, exp.Column) and not n.is_star:
            spec = schema.column(n.name)
            if spec is not None:
                return exp.column(spec.name, quoted=True)
        return n

    return unwrap(node.copy()).transform(rename).sql(dialect="duckdb", comments=False)


def columns_of(node: exp.Expr, schema: AssetSchema) -> tuple[str, ...]:
    """The schema names of the columns ``node`` reads, in first-seen order."""
    names: dict[str, None] = {}
    for column in node.find_all(exp.Column):
        spec = schema.column(column.name) if not column.is_star else None
        if spec is not None:
            names[spec.name] = None
    return tuple(names)
