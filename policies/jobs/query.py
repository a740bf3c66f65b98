"""The parts of an aggregate SELECT: filter, group keys, outputs and ordering.

Every non-aggregate output must be one of the GROUP BY expressions (which may be referred
to by position or by output alias); anything else would release row-level values. ORDER BY
may use group keys, output names, positions and aggregates; it is checked and then ignored,
since the released order carries no information.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlglot import exp

from policies.jobs.aggregates import AggregateChecker, OutputColumn
from policies.jobs.expressions import ExpressionChecker
from policies.jobs.schema import AssetSchema
from policies.jobs.values import (
    FILTER,
    GROUP_BY,
    PLAIN,
    Ctx,
    canonical,
    columns_of,
    sql_of,
    unwrap,
)

_MAX_NAME: Final = 128


@dataclass(frozen=True, slots=True)
class GroupKey:
    """One GROUP BY expression: canonical DuckDB SQL and the columns it reads."""

    sql: str
    columns: tuple[str, ...]


def _int_literal(node: exp.Expr) -> int | None:
    if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
        return int(node.this)
    return None


class QueryBuilder:
    """Walks the clauses of one SELECT, checking them and building its description."""

    def __init__(self, select: exp.Select, schema: AssetSchema, checker: ExpressionChecker):
        self.select = select
        self.schema = schema
        self.checker = checker
        self.out = checker.out
        self.aggregates = AggregateChecker(schema, checker)
        self._items: list[tuple[str | None, exp.Expr]] = []
        for item in select.expressions:
            if isinstance(item, exp.Alias):
                self._items.append((item.alias, unwrap(item.this)))
            else:
                self._items.append((None, unwrap(item)))

    def needs_permission(self) -> tuple[str, ...]:
        return self.aggregates.needs_permission()

    def canonical(self, node: exp.Expr) -> str:
        return canonical(node, self.schema)

    def _columns(self, node: exp.Expr) -> tuple[str, ...]:
        return columns_of(node, self.schema)

    # -- WHERE ---------------------------------------------------------------------------

    def where(self) -> str | None:
        where = self.select.args.get("where")
        if not isinstance(where, exp.Where):
            return None
        self.checker.check_condition(where.this, Ctx(FILTER, FILTER, "WHERE"))
        return self.canonical(where.this)

    # -- GROUP BY ------------------------------------------------------------------------

    def _resolve_reference(self, node: exp.Expr, clause: str) -> exp.Expr | None:
        """A positional or alias reference to a select item, resolved; else ``node``."""
        position = _int_literal(node)
        if position is not None:
            if 1 <= position <= len(self._items):
                return self._items[position - 1][1]
            self.out.add(
                "unknown_column",
                f"{clause} {position}",
                f"{clause} {position} does not name a select item.",
                f"Use a position between 1 and {len(self._items)}.",
            )
            return None
        if (
            isinstance(node, exp.Column)
            and not node.table
            and self.schema.column(node.name) is None
        ):
            for alias, item in self._items:
                if alias is not None and alias.lower() == node.name.lower():
                    return item
        return node

    def group_by(self) -> tuple[GroupKey, ...]:
        group = self.select.args.get("group")
        if not isinstance(group, exp.Group):
            return ()
        keys: dict[str, GroupKey] = {}
        for raw in group.expressions:
            node = self._resolve_reference(unwrap(raw), "GROUP BY")
            if node is None:
                continue
            if node.find(exp.AggFunc, exp.Window) is not None:
                self.out.add(
                    "aggregate_not_allowed_here",
                    sql_of(node),
                    "GROUP BY cannot use an aggregate or window function.",
                    "Group by columns or expressions of columns.",
                )
                self.checker.record_columns(node, GROUP_BY)
                continue
            self.checker.check(node, Ctx(GROUP_BY, GROUP_BY, "GROUP BY"))
            key = GroupKey(sql=self.canonical(node), columns=self._columns(node))
            keys.setdefault(key.sql, key)
            for column in key.columns:
                spec = self.schema.column(column)
                if spec is not None and (spec.tag == "identifier" or spec == self.schema.unit):
                    self.out.add(
                        "group_by_identifier",
                        column,
                        f"Grouping by the identifier '{column}' would release one group per "
                        "person.",
                        "Group by a coarser attribute.",
                    )
        return tuple(keys.values())

    # -- SELECT list ---------------------------------------------------------------------

    def outputs(self, group_by: tuple[GroupKey, ...]) -> tuple[OutputColumn, ...]:
        key_index = {key.sql: i for i, key in enumerate(group_by)}
        outputs: list[OutputColumn] = []
        names: dict[str, None] = {}
        for position, (alias, node) in enumerate(self._items, start=1):
            output = self._output(alias, node, key_index, position)
            if output is None:
                continue
            name = output.name
            if alias is not None and name.lower() in names:
                self.out.add(
                    "duplicate_output_name",
                    name,
                    f"Two output columns are called '{name}'.",
                    "Give every output column its own alias.",
                )
            elif alias is None:
                name = _unique(name, names)
            names[name.lower()] = None
            outputs.append(_renamed(output, name))
        if not outputs and not self.out:
            self.out.add(
                "non_aggregate_select",
                "SELECT",
                "The query selects nothing that can be released.",
                "Select group keys and aggregates.",
            )
        return tuple(outputs)

    def _output(
        self, alias: str | None, node: exp.Expr, key_index: dict[str, int], position: int
    ) -> OutputColumn | None:
        if isinstance(node, exp.Star | exp.Columns) or (
            isinstance(node, exp.Column) and node.is_star
        ):
            self.out.add(
                "select_star",
                sql_of(node),
                "SELECT * is not allowed: it would release row-level values.",
                "Select group keys and aggregates by name.",
            )
            return None
        if node.find(exp.Window) is not None:
            self.checker.check(node, Ctx(PLAIN, PLAIN, "SELECT"))
            return None
        if isinstance(node, exp.AggFunc | exp.Filter):
            return self.aggregates.check(node, alias)
        if node.find(exp.AggFunc) is not None:
            self._aggregate_expression(node)
            return None
        sql = self.canonical(node)
        if sql in key_index:
            self.checker.check(node, Ctx(GROUP_BY, GROUP_BY, "SELECT"))
            columns = self._columns(node)
            default = columns[0] if isinstance(node, exp.Column) and columns else ""
            return OutputColumn(
                name=alias or default or f"group_{key_index[sql] + 1}",
                kind="group_key",
                group_index=key_index[sql],
            )
        self.checker.check(node, Ctx(PLAIN, PLAIN, "SELECT"))
        self.out.add(
            "non_aggregate_select",
            sql_of(node),
            f"Select item {position} is neither a GROUP BY expression nor an aggregate, so it "
            "would release row-level values.",
            "Add the expression to GROUP BY or wrap it in an aggregate.",
        )
        return None

    def _aggregate_expression(self, node: exp.Expr) -> None:
        self.out.add(
            "aggregate_expression_not_supported",
            sql_of(node),
            "Expressions over aggregates are not supported in v1.",
            "Select the aggregates themselves and compute with the released values.",
        )
        for inner in node.find_all(exp.AggFunc):
            self.aggregates.check(inner, None)
        outside = node.copy()
        for inner in list(outside.find_all(exp.AggFunc)):
            inner.replace(exp.Null())
        self.checker.record_columns(outside, PLAIN)

    # -- ORDER BY ------------------------------------------------------------------------

    def order_by(self, group_by: tuple[GroupKey, ...], outputs: tuple[OutputColumn, ...]) -> None:
        """Check ORDER BY: group keys, output names, positions or aggregates (all ignored)."""
        order = self.select.args.get("order")
        if not isinstance(order, exp.Order):
            return
        keys = {key.sql for key in group_by}
        names = {output.name.lower() for output in outputs}
        for ordered in order.expressions:
            node = unwrap(ordered.this if isinstance(ordered, exp.Ordered) else ordered)
            if isinstance(ordered, exp.Ordered) and ordered.args.get("with_fill"):
                self.out.add("unsupported_clause", "WITH FILL", "WITH FILL is not supported.", "")
            position = _int_literal(node)
            if position is not None:
                self._resolve_reference(node, "ORDER BY")
                continue
            if (
                isinstance(node, exp.Column)
                and not node.table
                and node.name.lower() in names
                and self.schema.column(node.name) is None
            ):
                continue
            if isinstance(node, exp.AggFunc | exp.Filter):
                self.aggregates.check(node, None)
                continue
            if node.find(exp.AggFunc, exp.Window) is not None:
                self._aggregate_expression(node)
                continue
            if self.canonical(node) in keys:
                self.checker.check(node, Ctx(GROUP_BY, GROUP_BY, "ORDER BY"))
                continue
            self.checker.check(node, Ctx(PLAIN, PLAIN, "ORDER BY"))
            self.out.add(
                "order_by_not_allowed",
                sql_of(node),
                "ORDER BY may use only group keys, output names and aggregates.",
                "Order by a GROUP BY expression, or drop ORDER BY.",
            )


def _unique(name: str, taken: dict[str, None]) -> str:
    name = name[:_MAX_NAME]
    candidate, n = name, 2
    while candidate.lower() in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate


def _renamed(output: OutputColumn, name: str) -> OutputColumn:
    if output.name == name:
        return output
    return OutputColumn(
        name=name,
        kind=output.kind,
        group_index=output.group_index,
        function=output.function,
        argument=output.argument,
        value_column=output.value_column,
        literals=output.literals,
    )
