"""Shared types for executors (standard library only)."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""The largest request (program and parameters) a worker or a forked child reads."""


@dataclass(frozen=True)
class WorkerContext:
    """What the worker knows before the fragment arrives.

    Paths are as seen *inside* the sandbox.  ``forks`` says the executor is prepared once
    in a fork server and runs in a forked child (start no engine threads before the fork;
    :meth:`Executor.run` is then preceded by an optional ``after_fork()``).  ``bound``
    asks for the asset's contribution-bounded view (see
    :func:`sandbox.executors.duckdb_sql.bounded_source`).
    """

    asset_path: str
    asset_format: str
    input_dir: str | None
    tmp_dir: str
    memory_bytes: int
    output_bytes: int
    threads: int
    tmpfs_bytes: int
    forks: bool = False
    bound: dict[str, object] | None = None


class FragmentError(Exception):
    """A failure with a public reason code and a short kind label for the debug log."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class Executor(Protocol):
    """An engine prepared in the sandbox; ``run`` is called exactly once."""

    def run(self, program: str) -> str:
        """Run ``program`` and return the JSON result document."""
        ...


def to_scalar(value: object) -> bool | int | float | str | None:
    """Convert an engine value to a JSON scalar (refusing nested or binary values)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal | uuid.UUID | datetime.timedelta):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise FragmentError("bad_input", "UnsupportedResultType")


def table_document(
    columns: Sequence[str],
    types: Sequence[str],
    rows: Iterable[Sequence[object]],
    output_bytes: int,
) -> str:
    """Serialise a table, failing with ``output_too_large`` past ``output_bytes``."""
    head = json.dumps({"ok": True, "columns": list(columns), "types": list(types)})
    size = len(head) + 16
    parts: list[str] = []
    for row in rows:
        encoded = json.dumps([to_scalar(value) for value in row], allow_nan=False)
        size += len(encoded) + 1
        if size > output_bytes:
            raise FragmentError("output_too_large", "ResultTooLarge")
        parts.append(encoded)
    return head[:-1] + ', "rows": [' + ",".join(parts) + "]}"


def failure_document(reason: str, kind: str) -> str:
    """The JSON document reporting a failure (reason code and kind label only)."""
    return json.dumps({"ok": False, "reason": reason, "kind": kind})


def read_request(fd: int) -> dict[str, Any]:
    """The fragment's request from ``fd`` (read to its end): a JSON object whose
    ``program`` is text, at most :data:`MAX_REQUEST_BYTES`; :class:`FragmentError` if not."""
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 65536):
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            raise FragmentError("bad_input", "RequestTooLarge")
        chunks.append(chunk)
    try:
        request = json.loads(b"".join(chunks))
    except ValueError:
        raise FragmentError("internal", "BadRequest") from None
    if not isinstance(request, dict) or not isinstance(request.get("program"), str):
        raise FragmentError("internal", "BadRequest")
    return request


def run_document(run: Callable[[], str]) -> str:
    """The result document of ``run()``, or the failure document of what it raised."""
    try:
        return run()
    except FragmentError as exc:
        return failure_document(exc.reason, exc.kind)
    except MemoryError:
        return failure_document("memory", "MemoryError")
    except RecursionError:
        return failure_document("bad_input", "RecursionError")
    except Exception as exc:
        return failure_document("internal", type(exc).__name__)
