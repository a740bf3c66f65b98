"""``duckdb_sql``: one SQL SELECT over the asset, exposed as the view ``asset``.

DuckDB runs with external access disabled (only the asset file is an allowed
path), extension loading and installation off, and its configuration locked, so
that SQL cannot reach other files even before the sandbox's own layers apply.
Its progress bar is off: DuckDB prints it on standard output once a query runs
longer than two seconds (as a heavy query does when fragments share the CPU).
"""

from __future__ import annotations

from collections.abc import Iterator

import duckdb

from sandbox.executors.base import FragmentError, WorkerContext, table_document

_READERS = {"csv": "read_csv", "parquet": "read_parquet"}

_BAD_INPUT = (
    "ParserException",
    "SyntaxException",
    "BinderException",
    "CatalogException",
    "ConversionException",
    "InvalidInputException",
    "TypeMismatchException",
    "OutOfRangeException",
    "NotImplementedException",
    "InvalidTypeException",
    "ConstraintException",
)
_REASONS = dict.fromkeys(_BAD_INPUT, "bad_input") | {
    "OutOfMemoryException": "memory",
    "PermissionException": "sandbox_violation",
    "InterruptException": "timeout",
}

_FETCH_ROWS = 2048


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_asset(context: WorkerContext) -> duckdb.DuckDBPyConnection:
    """A locked-down in-memory DuckDB connection with the asset as the view ``asset``."""
    if context.asset_format not in _READERS:
        raise FragmentError("bad_input", "UnsupportedAssetFormat")
    memory_limit = max(24 * 1024 * 1024, int(context.memory_bytes * 0.6))
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": context.threads,
            "memory_limit": f"{memory_limit}B",
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
            "temp_directory": context.tmp_dir + "/duckdb",
            "max_temp_directory_size": f"{context.tmpfs_bytes // 2}B",
        },
    )
    path = _quote(context.asset_path)
    source = f"{_READERS[context.asset_format]}({path})"
    con.execute("SET enable_progress_bar = false")
    try:
        con.execute(f"SET allowed_paths = [{path}]")
        con.execute("SET enable_external_access = false")
        con.execute(f"CREATE VIEW asset AS SELECT * FROM {source}")  # noqa: S608
    except duckdb.InvalidInputException:
        con.execute(f"CREATE TABLE asset AS SELECT * FROM {source}")  # noqa: S608
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def error_reason(exc: duckdb.Error) -> FragmentError:
    """The fragment failure a DuckDB error stands for."""
    kind = type(exc).__name__
    return FragmentError(_REASONS.get(kind, "internal"), kind)


class Executor:
    """A DuckDB connection with the asset view created, waiting for one query."""

    def __init__(self, context: WorkerContext) -> None:
        self._context = context
        self._con = open_asset(context)

    def run(self, program: str) -> str:
        """Check that ``program`` is exactly one SELECT, run it and serialise the rows."""
        try:
            statements = self._con.extract_statements(program)
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                raise FragmentError("bad_input", "NotASingleSelect")
            cursor = self._con.execute(program)
            description = cursor.description or []
            columns = [str(item[0]) for item in description]
            types = [str(item[1]) for item in description]
            return table_document(columns, types, _rows(cursor), self._context.output_bytes)
        except duckdb.Error as exc:
            raise error_reason(exc) from None


def _rows(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple[object, ...]]:
    while chunk := cursor.fetchmany(_FETCH_ROWS):
        yield from chunk
