"""Analysis of an operator's SQL: one safe aggregate SELECT over one asset, or a refusal.

:func:`analyse` parses the SQL with sqlglot (DuckDB dialect), refuses every construct
outside the v1 language and describes what is left as an :class:`Analysis`: the column
uses the policy engine decides on, the group keys, the filter and the output columns. The
SQL a site runs is generated from this description (:mod:`policies.jobs.rewrite`), never
copied from the operator's text, so comments and anything sqlglot did not understand
cannot reach a site.

The v1 language: ``SELECT <group keys and aggregates> FROM <asset table> [WHERE <filter>]
[GROUP BY <keys>] [ORDER BY <keys>]``; one statement; no joins, subqueries, CTEs, set
operations, windows, ``HAVING``, ``DISTINCT``, ``LIMIT``/``OFFSET`` or sampling. Scalar
expressions are limited to :mod:`policies.jobs.expressions`. Aggregates: ``COUNT(*)``,
``COUNT(expr)``, ``COUNT(DISTINCT <privacy unit>)``, ``SUM``, ``AVG``, ``VARIANCE``/
``VAR_SAMP``/``VAR_POP``, ``STDDEV``/``STDDEV_SAMP``/``STDDEV_POP``, ``MIN`` and ``MAX``
(the last two need the policy's explicit permission to be released). The argument of a
value aggregate must be a numeric column or a ``CASE``/``IF`` whose results are that
column, numeric literals or ``NULL``, so that its clip bounds bound it.

Refusals are collected, not stopped at the first: :class:`AnalysisError` lists them all.
Results are cached by SQL text and schema.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.qualify import qualify

from policies import ColumnUse
from policies.jobs.aggregates import AggregateName, OutputColumn
from policies.jobs.clauses import check_from, check_select_clauses, check_statements
from policies.jobs.errors import AnalysisError, Refusal, Refusals
from policies.jobs.expressions import ExpressionChecker
from policies.jobs.query import GroupKey, QueryBuilder
from policies.jobs.schema import AssetSchema
from policies.jobs.values import Uses, sql_of

MAX_SQL_LENGTH: Final = 20_000
_CACHE_SIZE: Final = 512

__all__ = [
    "MAX_SQL_LENGTH",
    "AggregateName",
    "Analysis",
    "GroupKey",
    "OutputColumn",
    "analyse",
]


@dataclass(frozen=True, slots=True)
class Analysis:
    """An accepted query, described for the policy engine and the rewrite.

    ``where`` and the SQL of group keys and aggregate arguments are canonical DuckDB
    expressions over the asset's columns (quoted, unqualified). ``column_uses`` lists
    every column with how it is used; ``needs_permission`` names aggregates (``min``,
    ``max``) whose release needs the policy's explicit permission; ``columns`` every
    column the query reads.
    """

    sql: str
    schema: AssetSchema
    where: str | None
    group_by: tuple[GroupKey, ...]
    outputs: tuple[OutputColumn, ...]
    column_uses: tuple[ColumnUse, ...]
    needs_permission: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def aggregates(self) -> tuple[OutputColumn, ...]:
        return tuple(o for o in self.outputs if o.kind == "aggregate")


@dataclass(frozen=True, slots=True)
class _Refused:
    reasons: tuple[Refusal, ...]
    column_uses: tuple[ColumnUse, ...]


def analyse(sql: str, schema: AssetSchema) -> Analysis:
    """Check ``sql`` against ``schema``; raise :class:`AnalysisError` with every reason."""
    outcome = _analyse_cached(sql, schema)
    if isinstance(outcome, _Refused):
        raise AnalysisError(outcome.reasons, column_uses=outcome.column_uses)
    return outcome


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _analyse_cached(sql: str, schema: AssetSchema) -> Analysis | _Refused:
    out = Refusals()
    uses = Uses(schema.asset_id)
    try:
        result = _analyse(sql, schema, out, uses)
    except Exception:
        out.add(
            "analysis_failed",
            "query",
            "The query could not be analysed.",
            "Simplify the query to the supported SQL subset.",
        )
        result = None
    if out or result is None:
        if not out:
            out.add("analysis_failed", "query", "The query could not be analysed.", "")
        return _Refused(out.items(), uses.items())
    return result


def _analyse(sql: str, schema: AssetSchema, out: Refusals, uses: Uses) -> Analysis | None:
    if len(sql) > MAX_SQL_LENGTH:
        out.add(
            "query_too_long",
            "query",
            f"The query is longer than {MAX_SQL_LENGTH} characters.",
            "Shorten the query.",
        )
        return None
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except Exception:
        out.add(
            "parse_error",
            "query",
            "The query is not valid SQL in the DuckDB dialect.",
            "Check the syntax of the query.",
        )
        return None
    select = check_statements(statements, out)
    if select is None:
        return None
    qualifiers = check_from(select, schema, out)
    check_select_clauses(select, out)
    checker = ExpressionChecker(schema, qualifiers, out, uses)
    builder = QueryBuilder(select, schema, checker)
    where = builder.where()
    group_by = builder.group_by()
    outputs = builder.outputs(group_by)
    builder.order_by(group_by, outputs)
    if not out:
        _cross_check(select, schema, out)
    if out:
        return None
    return Analysis(
        sql=sql,
        schema=schema,
        where=where,
        group_by=group_by,
        outputs=outputs,
        column_uses=uses.items(),
        needs_permission=builder.needs_permission(),
        columns=tuple(dict.fromkeys(use.column for use in uses.items())),
    )


def _cross_check(select: exp.Select, schema: AssetSchema, out: Refusals) -> None:
    """sqlglot's own resolution must agree that every column exists."""
    try:
        qualify(
            select.copy(),
            schema=dict(schema.sqlglot_schema()),
            dialect="duckdb",
            validate_qualify_columns=True,
        )
    except Exception:
        out.add(
            "unknown_column",
            sql_of(select),
            "The query's columns could not be resolved against the asset's schema.",
            "Refer only to columns of the asset, by name.",
        )
