"""The copy of an asset a Python job reads: only the columns its policy permits.

A Python job never sees the asset itself.  Before it runs, the agent writes a CSV of
the asset projected to the policy's ``python.columns`` and mounts only that in the
job's sandbox.  The projection is DuckDB run by the agent on the holder's own file, with
SQL the agent builds from the signed policy's column names (quoted identifiers; nothing
of the operator's), as the PostgreSQL export is; it is kept per asset version (the
file's identity and content digest) and column set, readable by the sandbox user.

The same pass keeps, for the automatic checks of the job's outputs, keyed hashes (HMAC
with a secret of the site's) of every value of the asset's identifier columns and of
every row's combination of quasi-identifiers: the agent can then recognise such values
in an output without keeping them.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_READERS = {"csv": "read_csv", "parquet": "read_parquet"}
MAX_SENSITIVE = 2_000_000
MIN_IDENTIFIER_CHARS = 4
"""Shorter identifier values are not looked for (they would match ordinary text)."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def normalise(value: object) -> str:
    """How a value is compared with an output's tokens: text, trimmed, lower case; a
    whole float written as an integer."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


@dataclass(frozen=True)
class Sensitive:
    """Keyed hashes of identifier values, and of quasi-identifier combinations (each a
    sorted tuple of the row's values' hashes)."""

    key: bytes
    identifiers: frozenset[str]
    combinations: frozenset[tuple[str, ...]]
    width: int
    """How many quasi-identifier columns a combination holds (0: none are kept)."""
    by_first: dict[str, list[frozenset[str]]] = field(default_factory=dict)
    """Each combination under its first (smallest) hash: a line holding a combination holds
    that hash, so only its candidates are compared."""

    def __post_init__(self) -> None:
        if not self.by_first:
            for combination in self.combinations:
                self.by_first.setdefault(combination[0], []).append(frozenset(combination))

    def combination_in(self, hashed: set[str]) -> bool:
        """Whether ``hashed`` (one line's token hashes) holds a complete combination."""
        return any(
            candidate <= hashed for token in hashed for candidate in self.by_first.get(token, ())
        )

    def digest(self, token: str) -> str:
        return hmac.new(self.key, normalise(token).encode(), hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Projection:
    path: Path
    asset_sha256: str
    sensitive: Sensitive


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class Projections:
    """Projections of this site's assets, made once per asset version and column set."""

    def __init__(self, root: Path, state_dir: Path) -> None:
        self.root = root
        root.mkdir(mode=0o755, parents=True, exist_ok=True)
        root.chmod(0o755)
        key_file = state_dir / "output-check.key"
        if not key_file.exists():
            state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        self.key = key_file.read_bytes()
        self._lock = threading.Lock()
        self._sensitive: dict[str, Sensitive] = {}

    def get(
        self,
        asset: Path,
        fmt: str,
        columns: tuple[str, ...],
        identifiers: tuple[str, ...],
        quasi: tuple[str, ...],
    ) -> Projection:
        """The projection of ``asset`` to ``columns`` (made now if this version has none)."""
        if fmt not in _READERS:
            raise ValueError("unsupported asset format")
        info = asset.stat()
        identity = f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{asset}"
        with self._lock:
            marker = self.root / (hashlib.sha256(identity.encode()).hexdigest() + ".sha256")
            if marker.exists():
                digest = marker.read_text(encoding="ascii").strip()
            else:
                digest = file_sha256(asset)
                marker.write_text(digest, encoding="ascii")
            name = hashlib.sha256(
                json.dumps([digest, columns, identifiers, quasi]).encode()
            ).hexdigest()
            target = self.root / f"{name}.csv"
            if not target.exists() or name not in self._sensitive:
                self._sensitive[name] = self._make(asset, fmt, columns, identifiers, quasi, target)
            return Projection(target, digest, self._sensitive[name])

    def _make(
        self,
        asset: Path,
        fmt: str,
        columns: tuple[str, ...],
        identifiers: tuple[str, ...],
        quasi: tuple[str, ...],
        target: Path,
    ) -> Sensitive:
        source = f"{_READERS[fmt]}({_literal(str(asset))})"
        partial = target.with_suffix(".partial")
        import duckdb  # here: an agent that never projects need not load DuckDB

        con = duckdb.connect(":memory:", config={"threads": 1})
        try:
            con.execute("SET enable_progress_bar = false")
            selected = ", ".join(_quote(c) for c in columns)
            con.execute(
                f"COPY (SELECT {selected} FROM {source}) "  # noqa: S608 - quoted names
                f"TO {_literal(str(partial))} (HEADER, DELIMITER ',')"
            )
            found: set[str] = set()
            for column in identifiers:
                rows = con.execute(
                    f"SELECT DISTINCT {_quote(column)} FROM {source} "  # noqa: S608
                    f"WHERE {_quote(column)} IS NOT NULL LIMIT {MAX_SENSITIVE}"
                ).fetchall()
                found.update(
                    self._digest(v) for (v,) in rows if len(normalise(v)) >= MIN_IDENTIFIER_CHARS
                )
            combinations: set[tuple[str, ...]] = set()
            if len(quasi) >= 2:
                listed = ", ".join(_quote(c) for c in quasi)
                rows = con.execute(
                    f"SELECT DISTINCT {listed} FROM {source} LIMIT {MAX_SENSITIVE}"  # noqa: S608
                ).fetchall()
                combinations = {
                    tuple(sorted(self._digest(v) for v in row))
                    for row in rows
                    if all(v is not None for v in row)
                }
        finally:
            con.close()
        os.chmod(partial, 0o644)
        os.replace(partial, target)
        return Sensitive(
            self.key, frozenset(found), frozenset(combinations), len(quasi) if combinations else 0
        )

    def _digest(self, value: object) -> str:
        return hmac.new(self.key, normalise(value).encode(), hashlib.sha256).hexdigest()[:32]

    def clear(self) -> None:
        with self._lock:
            for path in self.root.glob("*.csv"):
                with contextlib.suppress(OSError):
                    path.unlink()
            self._sensitive.clear()


def columns_tagged(columns: Iterable[tuple[str, str, str]], tag: str) -> tuple[str, ...]:
    """The names of the signed schema's columns with ``tag``."""
    return tuple(name for name, _, t in columns if t == tag)
