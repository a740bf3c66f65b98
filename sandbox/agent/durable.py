"""One SQLite file a site agent keeps durable (its ledger, its held outputs).

WAL with ``synchronous=FULL``: a write is on disk when its transaction returns. One
connection behind a lock serves every thread; writes take the database's write lock at
once (``BEGIN IMMEDIATE``), so a check and the change it guards are one transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class DurableSqlite:
    """A thread-safe, fully synchronous SQLite database created with ``schema``."""

    def __init__(self, path: Path, schema: str) -> None:
        self._lock = threading.Lock()
        self._con = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._con.executescript(schema)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: committed when the block ends, rolled back if it
        raises."""
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on the connection, under the lock."""
        with self._lock:
            return fn(self._con)
