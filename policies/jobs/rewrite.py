"""Partial aggregates: the fragment every site runs for an analysed query.

A site never returns what the operator asked for, only *partials* per group that the
gateway can add up across sites: the group keys, ``__units`` (distinct privacy units, for
thresholds) and, per aggregate, counts, sums of clipped values, sums of their squares, or
the minimum and maximum of clipped values.

Privacy guarantees built into the fragment:

* **Contribution bounding.** Rows whose privacy unit is NULL are dropped; of the rows
  that pass the filter, each unit keeps at most ``max_rows_per_unit`` chosen at random
  (``ROW_NUMBER() OVER (PARTITION BY unit ORDER BY RANDOM())``), before any aggregation.
* **Clipping what is aggregated.** The argument of every value aggregate is evaluated
  first and then clipped, ``LEAST(GREATEST(v, lower), upper)``, to the bounds of the
  column it reads (NULL stays NULL). Arguments are restricted by the analysis to that
  column or a ``CASE`` yielding it, literals or NULL; a literal outside the bounds is
  refused here as well, so nothing the operator writes can escape the bounds.
* **No error oracles.** Numeric columns and literals are evaluated in DOUBLE wherever
  they meet an operator or function (DuckDB raises on integer and decimal overflow, not
  on DOUBLE overflow), so no data value can make the fragment fail. A numeric column
  standing alone as a group key keeps its type. Clip bounds are limited to
  ``MAX_CLIP_MAGNITUDE`` so that sums of squares stay finite.

:meth:`PartialPlan.pushdown_sql` transpiles the fragment (sqlglot) for a holder's own
PostgreSQL table. PostgreSQL raises on DOUBLE overflow, so fragments with arithmetic
that could overflow are refused for pushdown; PostgreSQL 14 or later is assumed (it
accepts infinite numerics, which ``ROUND`` of an infinite value produces).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import sqlglot
from sqlglot import exp

from policies import ClipBounds, EffectiveParameters
from policies.jobs.aggregates import AggregateName, OutputColumn
from policies.jobs.errors import PlanError, Refusal, Refusals
from policies.jobs.schema import AssetSchema, Kind
from policies.jobs.sql_analysis import Analysis

PartialKind = Literal["count", "sum", "sum_squares", "min", "max"]
Role = Literal["count", "sum", "sum_squares", "min", "max", "units"]

UNITS: Final = "__units"
#: Largest clip bound magnitude: squares and sums of squares then stay far from overflow.
MAX_CLIP_MAGNITUDE: Final = 1e15
ASSET_VIEW: Final = "asset"
_ROW: Final = "__bg_row"
_RAND: Final = "__bg_rand"
_ROWS: Final = "__bg_rows"
_BOUNDED: Final = "__bg_bounded"
_TABLE_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")

#: Which partials each aggregate is computed from.
ROLES: Final[Mapping[AggregateName, tuple[Role, ...]]] = {
    "count": ("count",),
    "count_units": ("units",),
    "sum": ("sum",),
    "avg": ("sum", "count"),
    "var_samp": ("sum", "sum_squares", "count"),
    "var_pop": ("sum", "sum_squares", "count"),
    "stddev_samp": ("sum", "sum_squares", "count"),
    "stddev_pop": ("sum", "sum_squares", "count"),
    "min": ("min",),
    "max": ("max",),
}


@dataclass(frozen=True, slots=True)
class PlanKey:
    """A group key of the fragment: its column (``__g0``...), canonical SQL and, when the
    key reads exactly one column, that column (whose declared keys it may release)."""

    name: str
    sql: str
    column: str | None = None


@dataclass(frozen=True, slots=True)
class Partial:
    """One partial aggregate column of the fragment.

    ``value`` names the per-row column it aggregates (``None`` for ``COUNT(*)``) and
    ``sql`` is the aggregate call over it; ``column`` and ``bounds`` say which clip
    bounds bound it (``None`` for counts).
    """

    name: str
    kind: PartialKind
    sql: str
    value: str | None = None
    column: str | None = None
    bounds: ClipBounds | None = None


@dataclass(frozen=True, slots=True)
class RowValue:
    """A per-row expression the fragment evaluates before aggregation (``__v0``...)."""

    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class PlannedOutput:
    """An output column and where it comes from: a group key or named partials."""

    name: str
    kind: Literal["group_key", "aggregate"]
    function: AggregateName | None = None
    key: int | None = None
    partials: tuple[tuple[Role, str], ...] = ()
    column: str | None = None
    bounds: ClipBounds | None = None

    def partial(self, role: Role) -> str:
        """The fragment column holding the ``role`` partial of this output."""
        return dict(self.partials)[role]


@dataclass(frozen=True, slots=True)
class PartialPlan:
    """The fragment SQL for every site and how to read its columns back."""

    asset_id: str
    unit: str
    max_rows_per_unit: int
    keys: tuple[PlanKey, ...]
    values: tuple[RowValue, ...]
    partials: tuple[Partial, ...]
    outputs: tuple[PlannedOutput, ...]
    needs_permission: tuple[str, ...]
    sql: str
    bounded_sql: str = ""
    """The same fragment over a view that is already contribution-bounded (each unit
    keeps at most ``max_rows_per_unit`` rows, chosen once per asset version at the site):
    no per-job ranking, the filter applies to the rows kept."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The fragment's output columns, in order."""
        return (*(k.name for k in self.keys), UNITS, *(p.name for p in self.partials))

    def pushdown_sql(self, table: str, dialect: str = "postgres") -> str:
        """The fragment over the holder's own ``table`` (``name`` or ``schema.name``).

        PostgreSQL raises on DOUBLE overflow where DuckDB yields infinity, so a fragment
        with arithmetic that can overflow (``+``, ``-``, ``*``, or ``/`` by a literal
        smaller than 1) is refused with ``pushdown_unsafe``: it must run in the sandbox.
        """
        parts = table.split(".")
        if not 1 <= len(parts) <= 2 or not all(_TABLE_PART.match(p) for p in parts):
            raise ValueError(f"{table!r} is not a plain table name")
        target = exp.table_(parts[-1], db=parts[0] if len(parts) == 2 else None, quoted=True)
        tree = sqlglot.parse_one(self.sql, read="duckdb")
        risky = [
            node
            for node in tree.find_all(exp.Add, exp.Sub, exp.Mul, exp.Div)
            if _can_overflow(node)
        ]
        if risky:
            raise PlanError(
                [
                    Refusal(
                        "pushdown_unsafe",
                        risky[0].sql(dialect="duckdb"),
                        "Arithmetic that can overflow fails on PostgreSQL for some values, so "
                        "this fragment cannot be pushed down.",
                        "Run the fragment in the site's sandbox instead.",
                    )
                ]
            )
        for node in list(tree.find_all(exp.Table)):
            if node.name == ASSET_VIEW and not node.args.get("db"):
                node.replace(target.copy())
        return tree.sql(dialect=dialect, comments=False)


def _can_overflow(node: exp.Expr) -> bool:
    """Whether DOUBLE arithmetic ``node`` can overflow (the fragment's own squares cannot)."""
    if isinstance(node, exp.Mul) and all(
        isinstance(side, exp.Column) and side.name.startswith("__v")
        for side in (node.this, node.expression)
    ):
        return False
    if isinstance(node, exp.Div):
        literal = node.expression.find(exp.Literal)
        try:
            return literal is None or abs(float(literal.this)) < 1
        except ValueError:
            return True
    return True


def _double(node: exp.Expr) -> exp.Expr:
    return exp.Cast(this=node, to=exp.DataType.build("DOUBLE"))


def _portable(sql: str, schema: AssetSchema, *, keep_bare: bool) -> exp.Expr:
    """Parse canonical ``sql`` into the form every engine evaluates alike and without errors.

    Numeric columns and literals are cast to DOUBLE (unless the whole expression is a
    bare column and ``keep_bare``), and DATE_TRUNC truncates a TIMESTAMP, so that DuckDB
    and PostgreSQL return the same key type.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    if keep_bare and isinstance(tree, exp.Column):
        return tree
    targets: list[tuple[exp.Expr, str]] = []
    for node in tree.walk():
        if isinstance(node, exp.Column):
            spec = schema.column(node.name)
            if (
                spec is not None
                and spec.kind is Kind.NUMBER
                and not isinstance(node.parent, exp.Cast)
            ):
                targets.append((node, "DOUBLE"))
        elif isinstance(node, exp.Literal) and not node.is_string and node.arg_key != "decimals":
            targets.append((node, "DOUBLE"))
        elif isinstance(node, exp.TimestampTrunc | exp.DateTrunc):
            targets.append((node.this, "TIMESTAMP"))
    for node, to in reversed(targets):
        cast = exp.Cast(this=node.copy(), to=exp.DataType.build(to))
        if node is tree:
            tree = cast
        else:
            node.replace(cast)
    return tree


def _number(value: float) -> exp.Expr:
    return _double(exp.Literal.number(repr(float(value))))


def _clipped(value: exp.Expr, bounds: ClipBounds) -> exp.Expr:
    clipped = exp.Least(
        this=exp.Greatest(
            this=value.copy(), expressions=[_number(bounds.lower)], ignore_nulls=True
        ),
        expressions=[_number(bounds.upper)],
        ignore_nulls=True,
    )
    return exp.Case(
        ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()), true=exp.Null())],
        default=clipped,
    )


def _sql(node: exp.Expr) -> str:
    return node.sql(dialect="duckdb", comments=False)


class _Planner:
    def __init__(self, analysis: Analysis, params: EffectiveParameters) -> None:
        self.analysis = analysis
        self.schema = analysis.schema
        self.params = params
        self.out = Refusals()
        self.values: dict[str, RowValue] = {}
        self.partials: dict[tuple[PartialKind, str | None], Partial] = {}

    def value(self, node: exp.Expr) -> str:
        sql = _sql(node)
        existing = self.values.get(sql)
        if existing is None:
            existing = RowValue(f"__v{len(self.values)}", sql)
            self.values[sql] = existing
        return existing.name

    def partial(
        self,
        kind: PartialKind,
        value: str | None,
        column: str | None = None,
        bounds: ClipBounds | None = None,
    ) -> str:
        existing = self.partials.get((kind, value))
        if existing is None:
            ref = exp.column(value, quoted=True) if value is not None else None
            call: exp.Expr
            if kind == "count":
                call = exp.Count(this=ref if ref is not None else exp.Star())
            elif kind == "sum_squares":
                assert ref is not None
                call = exp.Sum(this=exp.Mul(this=ref, expression=ref.copy()))
            else:
                call = {"sum": exp.Sum, "min": exp.Min, "max": exp.Max}[kind](this=ref)
            existing = Partial(f"__p{len(self.partials)}", kind, _sql(call), value, column, bounds)
            self.partials[(kind, value)] = existing
        return existing.name

    def check_parameters(self) -> None:
        aid = self.schema.asset_id
        if self.params.job_kind != "sql_aggregate":
            self.out.add(
                "job_kind_mismatch",
                self.params.job_kind,
                "The parameters are for another job kind.",
                "Evaluate the job as sql_aggregate.",
            )
        unit = self.params.privacy_units.get(aid)
        if unit is None or unit.lower() != self.schema.privacy_unit.lower():
            self.out.add(
                "privacy_unit_mismatch",
                str(unit),
                f"The policy's privacy unit for '{aid}' is not the schema's "
                f"'{self.schema.privacy_unit}'.",
                "Re-evaluate the job against the asset's current card.",
            )

    def bounds(self, output: OutputColumn) -> ClipBounds | None:
        column = output.value_column
        bounds = self.params.clip.get(self.schema.asset_id, {}).get(column or "")
        if bounds is None:
            self.out.add(
                "clip_bounds_missing",
                f"{output.function}({column})",
                f"No clip bounds are given for column '{column}', so {output.function} over it "
                "cannot be bounded.",
                "The policy must set clip bounds for every aggregated column.",
            )
            return None
        if max(abs(bounds.lower), abs(bounds.upper)) > MAX_CLIP_MAGNITUDE:
            self.out.add(
                "clip_bounds_too_wide",
                f"{output.function}({column})",
                f"The clip bounds of column '{column}' exceed {MAX_CLIP_MAGNITUDE:g} in "
                "magnitude; sums of their squares could overflow.",
                "Set tighter clip bounds in the policy.",
            )
        for literal in output.literals:
            if not bounds.lower <= literal <= bounds.upper:
                self.out.add(
                    "unbounded_expression",
                    output.argument or output.name,
                    f"The literal {literal:g} lies outside the clip bounds "
                    f"[{bounds.lower:g}, {bounds.upper:g}] of column '{column}'.",
                    "Use literals within the column's bounds, or NULL.",
                )
        return bounds

    def output(self, output: OutputColumn) -> PlannedOutput | None:
        if output.kind == "group_key":
            return PlannedOutput(output.name, "group_key", key=output.group_index)
        function = output.function
        assert function is not None
        if function == "count_units":
            return PlannedOutput(output.name, "aggregate", function, partials=(("units", UNITS),))
        if function == "count":
            value = None
            if output.argument is not None:
                value = self.value(_portable(output.argument, self.schema, keep_bare=True))
            name = self.partial("count", value)
            return PlannedOutput(output.name, "aggregate", function, partials=(("count", name),))
        bounds = self.bounds(output)
        if bounds is None or output.argument is None:
            return None
        row = _portable(output.argument, self.schema, keep_bare=False)
        value = self.value(_clipped(row, bounds))
        column = output.value_column
        partials = tuple(
            (role, self.partial(role, value, column, bounds))
            for role in ROLES[function]
            if role != "units"
        )
        return PlannedOutput(
            output.name,
            "aggregate",
            function,
            partials=partials,
            column=column,
            bounds=bounds,
        )

    def fragment(self, keys: list[PlanKey]) -> tuple[str, str]:
        """The fragment bounding per job, and the one over an already bounded view."""
        schema = self.schema
        unit = exp.column(schema.unit.name, quoted=True)
        not_null: exp.Expr = exp.Not(this=exp.Is(this=unit.copy(), expression=exp.Null()))
        if self.analysis.where is not None:
            condition = _portable(self.analysis.where, schema, keep_bare=False)
            not_null = exp.And(this=not_null, expression=exp.Paren(this=condition))
        row_items = [
            *(
                exp.alias_(_portable(k.sql, schema, keep_bare=True), k.name, quoted=True)
                for k in keys
            ),
            *(
                exp.alias_(sqlglot.parse_one(v.sql, read="duckdb"), v.name, quoted=True)
                for v in self.values.values()
            ),
        ]
        rows = (
            exp.select(unit.copy(), *row_items, exp.alias_(exp.Rand(), _RAND, quoted=True))
            .from_(exp.table_(ASSET_VIEW))
            .where(not_null)
        )
        row_number = exp.Window(
            this=exp.RowNumber(),
            partition_by=[unit.copy()],
            order=exp.Order(expressions=[exp.Ordered(this=exp.column(_RAND, quoted=True))]),
        )
        carried = [unit.copy(), *(exp.column(k.name, quoted=True) for k in keys)]
        carried += [exp.column(v.name, quoted=True) for v in self.values.values()]
        bounded = exp.select(*carried, exp.alias_(row_number, _ROW, quoted=True)).from_(
            exp.Subquery(
                this=rows, alias=exp.TableAlias(this=exp.to_identifier(_ROWS, quoted=True))
            )
        )
        outer = exp.select(
            *(exp.column(k.name, quoted=True) for k in keys),
            exp.alias_(exp.Count(this=exp.Distinct(expressions=[unit.copy()])), UNITS, quoted=True),
            *(
                exp.alias_(sqlglot.parse_one(p.sql, read="duckdb"), p.name, quoted=True)
                for p in self.partials.values()
            ),
        ).from_(
            exp.Subquery(
                this=bounded, alias=exp.TableAlias(this=exp.to_identifier(_BOUNDED, quoted=True))
            )
        )
        outer = outer.where(
            exp.LTE(
                this=exp.column(_ROW, quoted=True),
                expression=exp.Literal.number(self.params.max_rows_per_unit),
            )
        )
        if keys:
            outer = outer.group_by(*(exp.column(k.name, quoted=True) for k in keys))
        plain = exp.select(unit.copy(), *(item.copy() for item in row_items))
        plain = plain.from_(exp.table_(ASSET_VIEW)).where(not_null.copy())
        # In a bounded view with one row per unit, the rows of a group are its people.
        people: exp.Expr = exp.Count(this=exp.Distinct(expressions=[unit.copy()]))
        if self.params.max_rows_per_unit == 1:
            people = exp.Count(this=unit.copy())
        over_bounded = exp.select(
            *(exp.column(k.name, quoted=True) for k in keys),
            exp.alias_(people, UNITS, quoted=True),
            *(
                exp.alias_(sqlglot.parse_one(p.sql, read="duckdb"), p.name, quoted=True)
                for p in self.partials.values()
            ),
        ).from_(
            exp.Subquery(
                this=plain, alias=exp.TableAlias(this=exp.to_identifier(_BOUNDED, quoted=True))
            )
        )
        if keys:
            over_bounded = over_bounded.group_by(*(exp.column(k.name, quoted=True) for k in keys))
        return _sql(outer), _sql(over_bounded)


def partial_plan(analysis: Analysis, params: EffectiveParameters) -> PartialPlan:
    """The fragment for ``analysis`` under ``params``; :class:`PlanError` if it cannot run."""
    planner = _Planner(analysis, params)
    planner.check_parameters()
    keys = [
        PlanKey(f"__g{i}", key.sql, key.columns[0] if len(key.columns) == 1 else None)
        for i, key in enumerate(analysis.group_by)
    ]
    outputs = [planner.output(output) for output in analysis.outputs]
    noisy = [p for p in planner.partials.values() if p.kind in ("count", "sum", "sum_squares")]
    if len(noisy) > params.max_noisy_quantities:
        planner.out.add(
            "too_many_quantities",
            f"{len(noisy)} noisy quantities",
            f"The job needs {len(noisy)} noisy quantities (counts, sums, sums of squares); the "
            f"policy allows {params.max_noisy_quantities} in one job.",
            "Ask for fewer aggregates in one job.",
        )
    if planner.out:
        raise PlanError(planner.out.items(), column_uses=analysis.column_uses)
    sql, bounded_sql = planner.fragment(keys)
    return PartialPlan(
        asset_id=analysis.schema.asset_id,
        unit=analysis.schema.unit.name,
        max_rows_per_unit=params.max_rows_per_unit,
        keys=tuple(keys),
        values=tuple(planner.values.values()),
        partials=tuple(planner.partials.values()),
        outputs=tuple(o for o in outputs if o is not None),
        needs_permission=analysis.needs_permission,
        sql=sql,
        bounded_sql=bounded_sql,
    )
