"""Statement- and clause-level checks: one SELECT, FROM the asset table, no other clause."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from sqlglot import exp

from policies.jobs.errors import Refusals
from policies.jobs.schema import AssetSchema
from policies.jobs.values import function_name, sql_of

_ALLOWED_CLAUSES: Final = frozenset({"expressions", "from_", "where", "group", "order"})
_PATH_LIKE = re.compile(r"[/\\.:*?~$]|^(https?|s3|gs|az|hf|file)")

_COMMANDS: Final = (
    exp.DDL,
    exp.DML,
    exp.Command,
    exp.Copy,
    exp.Attach,
    exp.Detach,
    exp.Install,
    exp.Pragma,
    exp.Set,
    exp.Describe,
    exp.Summarize,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Alter,
    exp.Drop,
)

_ONE_SELECT_FIX = "Send exactly one SELECT over the asset table."


def check_statements(statements: Sequence[exp.Expr | None], out: Refusals) -> exp.Select | None:
    """The single SELECT of ``statements``, refusing anything else."""
    real = [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]
    if not real:
        out.add("parse_error", "query", "The query is empty.", _ONE_SELECT_FIX)
        return None
    if len(real) > 1:
        out.add(
            "multiple_statements",
            "; ".join(type(s).__name__.upper() for s in real),
            f"The query holds {len(real)} statements; exactly one is allowed.",
            _ONE_SELECT_FIX,
        )
    for statement in real:
        _check_statement_kind(statement, out)
    if len(real) == 1 and isinstance(real[0], exp.Select):
        return real[0]
    return None


def _check_statement_kind(statement: exp.Expr, out: Refusals) -> None:
    if isinstance(statement, exp.Select):
        return
    if isinstance(statement, exp.SetOperation):
        out.add(
            "set_operation",
            type(statement).__name__.upper(),
            "UNION, INTERSECT and EXCEPT are not allowed: they can copy or cancel rows.",
            "Write a single SELECT; use WHERE and GROUP BY to shape the result.",
        )
    elif isinstance(statement, _COMMANDS):
        keyword = _keyword(statement)
        out.add(
            "forbidden_command",
            keyword,
            f"{keyword} statements are not allowed; only a SELECT can be submitted.",
            _ONE_SELECT_FIX,
        )
    elif isinstance(statement, exp.Subquery | exp.Values):
        out.add(
            "subquery_not_supported",
            type(statement).__name__.upper(),
            "Parenthesised queries and VALUES lists are not supported.",
            _ONE_SELECT_FIX,
        )
    else:
        out.add(
            "not_select",
            type(statement).__name__.upper(),
            "Only SELECT is allowed.",
            _ONE_SELECT_FIX,
        )


def _keyword(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Command):
        return str(statement.this).upper().split()[0] if statement.this else "COMMAND"
    return type(statement).__name__.upper()


def check_select_clauses(select: exp.Select, out: Refusals) -> None:
    """Refuse every clause of ``select`` outside the v1 language."""
    args = select.args
    if args.get("with_"):
        out.add(
            "subquery_not_supported",
            "WITH",
            "Common table expressions (WITH) are not supported.",
            "Write a single SELECT over the asset table.",
        )
    if args.get("distinct"):
        out.add(
            "distinct_not_allowed",
            "DISTINCT",
            "SELECT DISTINCT is not allowed: it releases the distinct values of rows.",
            "Use GROUP BY with an aggregate such as COUNT(*).",
        )
    for key in ("limit", "offset"):
        if args.get(key):
            out.add(
                "limit_not_allowed",
                key.upper(),
                f"{key.upper()} is not allowed: it selects individual rows or groups.",
                f"Remove {key.upper()}; every released group is already bounded.",
            )
    if args.get("sample"):
        _refuse_sample(out)
    if args.get("having"):
        out.add(
            "having_not_supported",
            "HAVING",
            "HAVING is not supported: groups are filtered by the minimum group size instead.",
            "Remove HAVING; small groups are suppressed automatically.",
        )
    if args.get("qualify") or args.get("windows"):
        out.add(
            "window_not_allowed",
            "QUALIFY" if args.get("qualify") else "WINDOW",
            "Window functions are not allowed.",
            "Aggregate with GROUP BY instead.",
        )
    handled = {
        "with_",
        "distinct",
        "limit",
        "offset",
        "sample",
        "having",
        "qualify",
        "windows",
        "laterals",
        "joins",
    }  # joins and laterals are refused by check_from
    for key, value in args.items():
        if key in _ALLOWED_CLAUSES or key in handled or value in (None, False, [], ""):
            continue
        out.add(
            "unsupported_clause",
            key.rstrip("_").upper(),
            f"The clause {key.rstrip('_').upper()} is not supported.",
            "Use only SELECT, FROM, WHERE, GROUP BY and ORDER BY.",
        )
    group = args.get("group")
    if isinstance(group, exp.Group):
        if group.args.get("all"):
            out.add(
                "group_by_all_not_supported",
                "GROUP BY ALL",
                "GROUP BY ALL is not supported.",
                "List the group keys explicitly.",
            )
        for key in ("grouping_sets", "cube", "rollup", "totals"):
            if group.args.get(key):
                out.add(
                    "grouping_sets_not_supported",
                    key.upper(),
                    "GROUPING SETS, ROLLUP and CUBE are not supported.",
                    "Send one query per grouping.",
                )
        for item in group.expressions:
            if isinstance(item, exp.GroupingSets | exp.Rollup | exp.Cube):
                out.add(
                    "grouping_sets_not_supported",
                    type(item).__name__.upper(),
                    "GROUPING SETS, ROLLUP and CUBE are not supported.",
                    "Send one query per grouping.",
                )


def _refuse_sample(out: Refusals) -> None:
    out.add(
        "sample_not_allowed",
        "SAMPLE",
        "Sampling (USING SAMPLE, TABLESAMPLE) is not allowed.",
        "Remove the sample clause; aggregates run over all rows.",
    )


def check_from(select: exp.Select, schema: AssetSchema, out: Refusals) -> frozenset[str]:
    """Check the FROM clause and joins; the names columns may be qualified with."""
    qualifiers = {schema.table.lower()}
    source = select.args.get("from_")
    if not isinstance(source, exp.From):
        out.add(
            "unknown_table",
            "FROM",
            f"The query reads no table; it must read '{schema.table}'.",
            f"Add FROM {schema.table_sql}.",
        )
        return frozenset(qualifiers)
    table = source.this
    alias = _check_source(table, schema, out)
    if alias:
        qualifiers.add(alias.lower())
    for join in select.args.get("joins") or []:
        joined = join.this
        self_join = isinstance(joined, exp.Table) and joined.name.lower() == schema.table.lower()
        out.add(
            "join_not_supported",
            sql_of(join),
            "Self-joins are not supported: they can multiply one person's rows."
            if self_join
            else "Joins are not supported in v1.",
            "Query the asset table alone.",
        )
        if not self_join:
            _check_source(joined, schema, out, quiet_unknown=True)
    for lateral in select.args.get("laterals") or []:
        out.add(
            "join_not_supported",
            sql_of(lateral),
            "LATERAL joins are not supported.",
            "Query the asset table alone.",
        )
    return frozenset(qualifiers)


def _check_source(
    source: exp.Expr, schema: AssetSchema, out: Refusals, *, quiet_unknown: bool = False
) -> str | None:
    """Check one FROM source; return its alias if it is the asset table."""
    if isinstance(source, exp.Subquery | exp.Query | exp.Values):
        out.add(
            "subquery_not_supported",
            sql_of(source),
            "Subqueries in FROM are not supported.",
            f"Read the asset table '{schema.table}' directly.",
        )
        return None
    inner = source.this if isinstance(source, exp.Table) else source
    if not isinstance(source, exp.Table) or not isinstance(inner, exp.Identifier):
        name = function_name(inner) if isinstance(inner, exp.Expr) else "table"
        out.add(
            "table_function",
            name,
            f"Table functions and file readers ('{name}') are not allowed.",
            f"Read the asset table '{schema.table}'.",
        )
        return None
    name = inner.name
    own = name.lower() == schema.table.lower()
    if not own and _PATH_LIKE.search(name):
        out.add(
            "table_function",
            name,
            "A path or URL cannot be read as a table.",
            f"Read the asset table '{schema.table}'.",
        )
        return None
    if source.args.get("db") or source.args.get("catalog") or not own:
        if not quiet_unknown:
            out.add(
                "unknown_table",
                sql_of(source),
                f"The query may read only the asset table '{schema.table}'.",
                f"Use FROM {schema.table_sql}.",
            )
        return None
    if source.args.get("sample"):
        _refuse_sample(out)
    for key in ("joins", "laterals", "pivots"):
        if source.args.get(key):
            out.add(
                "join_not_supported" if key != "pivots" else "unsupported_clause",
                key.upper(),
                f"{key.upper()} on the asset table is not supported.",
                "Query the asset table alone.",
            )
    ignored = {"this", "alias", "sample", "joins", "laterals", "pivots"}
    for key, value in source.args.items():
        if key not in ignored and value not in (None, False, [], ""):
            out.add(
                "unsupported_clause",
                key.upper(),
                f"The table modifier {key.upper()} is not supported.",
                f"Use FROM {schema.table_sql}.",
            )
    alias = source.args.get("alias")
    if isinstance(alias, exp.TableAlias):
        if alias.columns:
            out.add(
                "unsupported_clause",
                sql_of(alias),
                "Renaming the asset's columns in a table alias is not supported.",
                "Alias the table only, e.g. FROM admissions AS a.",
            )
        return alias.name or None
    return None
