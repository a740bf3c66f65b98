"""The site's own tamper-evident log: every ticket, accepted or refused, and the agent's
start-ups and proofs, in an RFC 6962 Merkle tree with signed checkpoints.

The log lives in ``<state_dir>/log.db`` (SQLite, WAL, ``synchronous=FULL``).  Each entry is
a JSON object; its leaf is the entry's RFC 8785 canonical JSON, its leaf hash
``SHA-256(0x00 || leaf)`` (:mod:`contracts.tlog`, the same code as the gateway's trace).
Every append commits the entry together with a checkpoint of the new tree — a C2SP signed
note with origin ``blindgate.site/<first 16 hex digits of the agent's key>``, signed with
the agent's identity key — and returns only once both are on disk.

:meth:`SiteLog.verify` recomputes the tree from the stored entries and checks every
checkpoint's signature and root: an edited, deleted, inserted or reordered entry makes it
fail, naming the first position that differs.  An agent refuses to start on a log that does
not verify (it would otherwise sign new checkpoints over altered history).  A copy of the log
truncated back to one of its own earlier checkpoints is consistent by itself; comparing it
with the gateway's trace (``blindgate site audit``) or with a checkpoint kept elsewhere
shows what is missing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.tlog.checkpoint import (
    encode_verifier_key,
    parse_and_verify_checkpoint,
    sign_checkpoint,
)
from contracts.tlog.errors import TraceError
from contracts.tlog.jcs import canonical_json, loads_strict
from contracts.tlog.merkle import leaf_hash
from contracts.tlog.tree import CompactRange

ORIGIN_PREFIX = "blindgate.site/"
LOG_FILE = "log.db"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entry (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS checkpoint (size INTEGER PRIMARY KEY, note TEXT NOT NULL)",
)
_BATCH = 4096


def utc_now() -> str:
    """The time now as RFC 3339 UTC (``2026-05-01T08:00:00.123456Z``), for an entry's ``at``."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class SiteLogError(Exception):
    """The log cannot be opened, read or written, or it does not verify."""


def log_origin(public_key: Ed25519PublicKey) -> str:
    """``blindgate.site/<first 16 hex digits of the agent's raw public key>``."""
    return ORIGIN_PREFIX + public_key.public_bytes_raw().hex()[:16]


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One stored entry: its position and the object it holds."""

    index: int
    entry: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LogReport:
    """What :meth:`SiteLog.verify` found."""

    ok: bool
    size: int
    checkpoints: int
    problem: str | None = None
    first_bad_index: int | None = None


class SiteLog:
    """An append-only, signed log in one SQLite file; thread-safe.

    Open it with :meth:`open` to append (the agent, holding its key) or :meth:`read` to read
    and verify only (``blindgate site audit``, holding the agent's public key).
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        public_key: Ed25519PublicKey,
        signing_key: Ed25519PrivateKey | None,
    ) -> None:
        self._db = connection
        self.public_key = public_key
        self.origin = log_origin(public_key)
        self.verifier_key = encode_verifier_key(self.origin, public_key)
        self._signing_key = signing_key
        self._lock = threading.Lock()
        self._tree = CompactRange()

    @classmethod
    def open(cls, path: Path, signing_key: Ed25519PrivateKey) -> SiteLog:
        """Open (or create) the log for appending; refuses a log that does not verify."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                connection.execute(statement)
        except sqlite3.Error as exc:
            raise SiteLogError(f"cannot open the site log {path}: {exc}") from None
        log = cls(connection, signing_key.public_key(), signing_key)
        try:
            report, tree = log._check(every=False)
            if not report.ok:
                raise SiteLogError(
                    f"the site log {path} does not verify ({report.problem}); keep it for "
                    "investigation and move it aside to start a new log"
                )
            log._tree = tree
            if report.checkpoints == 0:
                log._commit(None, log._tree)
        except BaseException:
            connection.close()
            raise
        return log

    @classmethod
    def read(cls, path: Path, public_key: Ed25519PublicKey) -> SiteLog:
        """Open an existing log read-only (to list and verify its entries)."""
        if not path.is_file():
            raise SiteLogError(f"no site log at {path}")
        try:
            connection = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            connection.execute("SELECT COUNT(*) FROM entry").fetchone()
        except sqlite3.Error as exc:
            raise SiteLogError(f"cannot read the site log {path}: {exc}") from None
        return cls(connection, public_key, None)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def size(self) -> int:
        """Entries appended so far (as this process knows them)."""
        with self._lock:
            return self._tree.size

    def append(self, entry: Mapping[str, Any]) -> int:
        """Append one entry; returns its index once it and its checkpoint are on disk.

        Raises ``EntryError`` (a ``ValueError``) for a value JSON cannot carry exactly.
        """
        leaf = canonical_json(dict(entry))
        with self._lock:
            if self._signing_key is None:
                raise SiteLogError("the site log was opened read-only")
            tree = self._tree.copy()
            index = tree.size
            tree.push(leaf_hash(leaf))
            self._commit((index, leaf), tree)
            self._tree = tree
        return index

    def _commit(self, row: tuple[int, bytes] | None, tree: CompactRange) -> None:
        assert self._signing_key is not None
        note = sign_checkpoint(self.origin, tree.size, tree.root(), self._signing_key, self.origin)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if row is not None:
                    self._db.execute("INSERT INTO entry (idx, leaf) VALUES (?, ?)", row)
                self._db.execute(
                    "INSERT INTO checkpoint (size, note) VALUES (?, ?)", (tree.size, note)
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise SiteLogError(f"cannot write the site log: {exc}") from None

    def checkpoint(self) -> str:
        """The newest signed checkpoint (a C2SP signed note)."""
        with self._lock:
            row = self._db.execute(
                "SELECT note FROM checkpoint ORDER BY size DESC LIMIT 1"
            ).fetchone()
        if row is None:
            raise SiteLogError("the site log has no checkpoint")
        return str(row[0])

    def entries(self, after: int = -1, limit: int = 1000) -> list[LogEntry]:
        """Up to ``limit`` entries with an index above ``after``, in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, leaf FROM entry WHERE idx > ? ORDER BY idx LIMIT ?",
                (after, limit),
            ).fetchall()
        return [LogEntry(int(idx), _parse(bytes(leaf), int(idx))) for idx, leaf in rows]

    def all_entries(self) -> Iterator[LogEntry]:
        """Every entry, in order (read in batches)."""
        after = -1
        while batch := self.entries(after, _BATCH):
            yield from batch
            after = batch[-1].index

    def verify(self) -> LogReport:
        """Recompute the tree from the entries; check every checkpoint against it."""
        return self._check(every=True)[0]

    def _check(self, *, every: bool) -> tuple[LogReport, CompactRange]:
        """Recompute the tree; check every checkpoint, or (``every=False``, when the agent
        opens its log) only the newest, which alone proves the entries are those signed."""
        with self._lock:
            checkpoints = [
                (int(size), str(note))
                for size, note in self._db.execute(
                    "SELECT size, note FROM checkpoint ORDER BY size"
                )
            ]
            if not every:
                checkpoints = checkpoints[-1:]
            wanted = {size for size, _ in checkpoints}
            tree = CompactRange()
            roots = {0: tree.root()}
            for idx, leaf in self._db.execute("SELECT idx, leaf FROM entry ORDER BY idx"):
                if idx != tree.size:
                    bad = LogReport(
                        False,
                        tree.size,
                        len(checkpoints),
                        f"entry {tree.size} is missing",
                        tree.size,
                    )
                    return bad, tree
                tree.push(leaf_hash(bytes(leaf)))
                if tree.size in wanted:
                    roots[tree.size] = tree.root()
        return self._compare(checkpoints, roots, tree.size), tree

    def _compare(
        self, checkpoints: list[tuple[int, str]], roots: dict[int, bytes], size: int
    ) -> LogReport:
        count = len(checkpoints)

        def bad(problem: str, index: int | None) -> LogReport:
            return LogReport(False, size, count, problem, index)

        good = 0
        for stored_size, note in checkpoints:
            try:
                found = parse_and_verify_checkpoint(note, self.verifier_key)
            except TraceError as exc:
                return bad(f"checkpoint {stored_size}: {exc.message}", None)
            if found.size != stored_size:
                return bad(f"checkpoint {stored_size} is stored under another size", None)
            if found.size > size:
                return bad(f"entries from {size} are missing (signed size {found.size})", size)
            if roots[found.size] != found.root:
                where = (
                    f"entry {good}"
                    if found.size == good + 1
                    else f"an entry from {good} to {found.size - 1}"
                )
                return bad(f"{where} differs from what was signed", good)
            good = found.size
        if good != size:
            return bad(f"entries from {good} were never signed", good)
        return LogReport(True, size, count)


def _parse(leaf: bytes, index: int) -> dict[str, Any]:
    try:
        value = loads_strict(leaf.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SiteLogError(f"entry {index} is not a JSON object") from exc
    if not isinstance(value, dict):
        raise SiteLogError(f"entry {index} is not a JSON object")
    return value
