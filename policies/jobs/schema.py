"""The schema an operator's SQL is checked against: one asset, its columns and privacy unit."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from policies import ColumnTag

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_TABLE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def sql_identifier(name: str) -> str:
    """``name`` as SQL writes it: as is when it is a plain identifier, else double-quoted."""
    if _NAME.match(name):
        return name
    return '"' + name.replace('"', '""') + '"'


class Kind(StrEnum):
    """What a value is, as far as the checks care."""

    NUMBER = "number"
    TEXT = "text"
    TEMPORAL = "temporal"
    BOOLEAN = "boolean"
    NULL = "null"
    OTHER = "other"


_KIND_PREFIXES: Final[tuple[tuple[Kind, tuple[str, ...]], ...]] = (
    (Kind.TEMPORAL, ("timestamp", "timestamptz", "date", "datetime")),
    (
        Kind.NUMBER,
        (
            "tinyint",
            "smallint",
            "integer",
            "int",
            "bigint",
            "hugeint",
            "utinyint",
            "usmallint",
            "uinteger",
            "ubigint",
            "uhugeint",
            "double",
            "float",
            "real",
            "decimal",
            "numeric",
        ),
    ),
    (Kind.TEXT, ("text", "varchar", "string", "char", "character", "bpchar")),
    (Kind.BOOLEAN, ("boolean", "bool")),
)


def kind_of_type(sql_type: str) -> Kind:
    """The kind of a column type given as a DuckDB or gateway type name."""
    name = sql_type.strip().lower()
    base = re.split(r"[\s(\[]", name, maxsplit=1)[0]
    if "[" in name or base in ("interval", "time", "timetz"):
        return Kind.OTHER
    for kind, prefixes in _KIND_PREFIXES:
        if base in prefixes or (base.rstrip("0123456789") in prefixes and base[-1:].isdigit()):
            return kind
    return Kind.OTHER


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of an asset: its name, SQL type and tag."""

    name: str
    type: str
    tag: ColumnTag

    @property
    def kind(self) -> Kind:
        return kind_of_type(self.type)


@dataclass(frozen=True, slots=True)
class AssetSchema:
    """The asset a query reads: ``table`` is the name operators write in SQL.

    A table name that is not a plain identifier (``bed-occupancy``) is written as a quoted
    identifier (``"bed-occupancy"``, see :attr:`table_sql`); it may not hold control
    characters.

    Column names are matched case-insensitively (as DuckDB does), so two columns may not
    differ only in case; names starting with ``__`` are reserved for the fragments.
    ``privacy_unit`` names the column that identifies a person.
    """

    asset_id: str
    table: str
    columns: tuple[ColumnSpec, ...]
    privacy_unit: str
    _by_key: Mapping[str, ColumnSpec] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.asset_id:
            raise ValueError("asset_id must not be empty")
        if not _TABLE.match(self.table) or self.table != self.table.strip():
            raise ValueError(f"table name {self.table!r} is not a usable SQL name")
        by_key: dict[str, ColumnSpec] = {}
        for column in self.columns:
            if not _NAME.match(column.name):
                raise ValueError(f"column name {column.name!r} is not a plain SQL identifier")
            if column.name.startswith("__"):
                raise ValueError(f"column name {column.name!r} uses the reserved prefix '__'")
            key = column.name.lower()
            if key in by_key:
                raise ValueError(f"column {column.name!r} is listed twice (names ignore case)")
            by_key[key] = column
        if self.privacy_unit.lower() not in by_key:
            raise ValueError(f"privacy unit {self.privacy_unit!r} is not a column")
        object.__setattr__(self, "_by_key", by_key)

    @classmethod
    def build(
        cls,
        asset_id: str,
        table: str,
        columns: Iterable[tuple[str, str, ColumnTag]],
        privacy_unit: str,
    ) -> AssetSchema:
        """A schema from ``(name, type, tag)`` triples."""
        return cls(
            asset_id=asset_id,
            table=table,
            columns=tuple(ColumnSpec(name, type_, tag) for name, type_, tag in columns),
            privacy_unit=privacy_unit,
        )

    @property
    def table_sql(self) -> str:
        """The table name as a query writes it (quoted when it is not a plain identifier)."""
        return sql_identifier(self.table)

    def column(self, name: str) -> ColumnSpec | None:
        """The column called ``name`` (any case), or ``None``."""
        return self._by_key.get(name.lower())

    @property
    def unit(self) -> ColumnSpec:
        """The privacy-unit column."""
        return self._by_key[self.privacy_unit.lower()]

    def sqlglot_schema(self) -> dict[str, object]:
        """The mapping :func:`sqlglot.optimizer.qualify.qualify` takes."""
        return {self.table: {c.name: _sqlglot_type(c.type) for c in self.columns}}


def _sqlglot_type(sql_type: str) -> str:
    kind = kind_of_type(sql_type)
    if kind is Kind.OTHER:
        return "UNKNOWN"
    return {
        Kind.NUMBER: "DOUBLE",
        Kind.TEXT: "VARCHAR",
        Kind.TEMPORAL: "TIMESTAMP",
        Kind.BOOLEAN: "BOOLEAN",
    }.get(kind, "UNKNOWN")
