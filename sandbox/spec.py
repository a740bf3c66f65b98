"""Fragment specifications, limits, results and output validation.

A *fragment* is one piece of a job run against exactly one asset file in an
isolated process.  The parent describes it with a :class:`FragmentSpec` and gets
back a :class:`FragmentResult`: either a validated :class:`ResultTable` or a
:class:`FailureReason` code.  Failures never carry internal detail (stderr, paths,
data); that detail is only written to the local debug log, and never with rows.
"""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024

Scalar = None | bool | int | float | str

MAX_COLUMNS = 4096
MAX_NAME_CHARS = 1024


class FailureReason(enum.StrEnum):
    """The only failure codes a fragment can produce."""

    TIMEOUT = "timeout"
    MEMORY = "memory"
    SANDBOX_VIOLATION = "sandbox_violation"
    OUTPUT_TOO_LARGE = "output_too_large"
    BAD_INPUT = "bad_input"
    INTERNAL = "internal"


class OutputValidationError(ValueError):
    """The child's output document does not have the required structure."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one fragment."""

    memory_bytes: int = 512 * MIB
    pids: int = 64
    cpu_seconds: int = 10
    wall_seconds: float = 30.0
    output_bytes: int = 8 * MIB
    tmpfs_bytes: int = 64 * MIB
    open_files: int = 256
    file_size_bytes: int = 64 * MIB
    threads: int = 2

    def __post_init__(self) -> None:
        if self.memory_bytes < 32 * MIB:
            raise ValueError("memory_bytes must be at least 32 MiB")
        if self.pids < 4:
            raise ValueError("pids must be at least 4")
        if self.cpu_seconds < 1:
            raise ValueError("cpu_seconds must be at least 1")
        if self.wall_seconds <= 0:
            raise ValueError("wall_seconds must be positive")
        if self.output_bytes < 1024:
            raise ValueError("output_bytes must be at least 1 KiB")
        if self.tmpfs_bytes < MIB or self.file_size_bytes < MIB:
            raise ValueError("tmpfs_bytes and file_size_bytes must be at least 1 MiB")
        if self.open_files < 32:
            raise ValueError("open_files must be at least 32")
        if not 1 <= self.threads <= self.pids:
            raise ValueError("threads must be between 1 and pids")


@dataclass(frozen=True)
class Bound:
    """Contribution bounding the sandbox applies to its asset before any fragment:
    each ``unit`` keeps at most ``rows`` rows, chosen by a keyed hash under ``seed``
    (hex, secret to the site, one per asset version)."""

    unit: str
    rows: int
    seed: str = field(repr=False)

    def as_dict(self) -> dict[str, object]:
        """The worker's view of the bound."""
        return {"unit": self.unit, "rows": self.rows, "seed": self.seed}


@dataclass(frozen=True)
class FragmentSpec:
    """One fragment: an executor, its program text, one asset and limits.

    ``program`` is what the executor runs (for ``duckdb_sql`` one SQL SELECT over
    the view ``asset``).  ``input_dir`` is an optional read-only job input
    directory, exposed inside the sandbox at ``/input``.  ``bound`` asks for the asset's
    contribution-bounded view (``duckdb_sql`` and ``tenseal_he``)."""

    executor: str
    program: str
    asset_path: Path
    input_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    bound: Bound | None = None
    writable_input: str | None = None
    """A directory inside ``input_dir`` mounted as a capped tmpfs (a Python job's
    ``outputs/``); namespace sandboxes only."""


@dataclass(frozen=True)
class ResultTable:
    """A validated tabular result: column names, type names and scalar rows."""

    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: tuple[tuple[Scalar, ...], ...]


@dataclass(frozen=True)
class FragmentResult:
    """Outcome of one fragment: ``ok`` with ``table``, or a ``failure`` code."""

    ok: bool
    table: ResultTable | None = None
    failure: FailureReason | None = None
    elapsed_ms: float = 0.0

    @classmethod
    def success(cls, table: ResultTable, elapsed_ms: float) -> FragmentResult:
        """A successful result."""
        return cls(ok=True, table=table, elapsed_ms=elapsed_ms)

    @classmethod
    def failed(cls, reason: FailureReason, elapsed_ms: float = 0.0) -> FragmentResult:
        """A failed result that carries only the reason code."""
        return cls(ok=False, failure=reason, elapsed_ms=elapsed_ms)


def _is_scalar(value: object) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    return isinstance(value, float) and math.isfinite(value)


def _string_list(value: object, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_COLUMNS:
        raise OutputValidationError(f"{what} must be a list of at most {MAX_COLUMNS}")
    for item in value:
        if not isinstance(item, str) or len(item) > MAX_NAME_CHARS:
            raise OutputValidationError(f"{what} must hold short strings")
    return tuple(value)


def _reject_constant(name: str) -> float:
    raise OutputValidationError(f"non-finite number {name} in output")


def parse_output(raw: bytes) -> dict[str, object]:
    """Parse the child's JSON document strictly (no NaN/Infinity, one object)."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputValidationError("output is not one JSON document") from exc
    if not isinstance(doc, dict):
        raise OutputValidationError("output must be a JSON object")
    return doc


def validate_table(doc: dict[str, object]) -> ResultTable:
    """Check a successful output document and convert it to a :class:`ResultTable`."""
    if set(doc) != {"ok", "columns", "types", "rows"} or doc["ok"] is not True:
        raise OutputValidationError("unexpected keys in output")
    columns = _string_list(doc["columns"], "columns")
    types = _string_list(doc["types"], "types")
    if len(types) != len(columns):
        raise OutputValidationError("types and columns differ in length")
    raw_rows = doc["rows"]
    if not isinstance(raw_rows, list):
        raise OutputValidationError("rows must be a list")
    rows: list[tuple[Scalar, ...]] = []
    for row in raw_rows:
        if not isinstance(row, list) or len(row) != len(columns):
            raise OutputValidationError("each row must be a list as long as columns")
        if not all(_is_scalar(value) for value in row):
            raise OutputValidationError("rows may only hold scalars")
        rows.append(tuple(row))
    return ResultTable(columns=columns, types=types, rows=tuple(rows))


def error_reason(doc: dict[str, object]) -> tuple[FailureReason, str]:
    """Read a structured failure document: its reason code and a short kind label.

    The kind label (an exception class name) is for the debug log only.
    """
    if set(doc) != {"ok", "reason", "kind"} or doc["ok"] is not False:
        raise OutputValidationError("unexpected keys in failure document")
    reason, kind = doc["reason"], doc["kind"]
    if not isinstance(reason, str) or not isinstance(kind, str):
        raise OutputValidationError("reason and kind must be strings")
    try:
        code = FailureReason(reason)
    except ValueError as exc:
        raise OutputValidationError("unknown failure reason") from exc
    return code, kind[:80]


def table_from_document(doc: dict[str, object]) -> ResultTable | tuple[FailureReason, str]:
    """Dispatch on ``ok``: a validated table, or ``(reason, kind)`` for a failure."""
    if doc.get("ok") is True:
        return validate_table(doc)
    return error_reason(doc)
