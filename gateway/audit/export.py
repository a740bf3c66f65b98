"""The export directory: what an auditor needs to verify the trace offline.

Layout (all files UTF-8)::

    <dir>/entries.jsonl    one line per entry, in index order, each ending with "\\n":
                           {"index": <i>, "entry": <JSON object>}
                           The leaf bytes of entry i are canonical_json(entry) (RFC 8785);
                           its leaf hash is SHA-256(0x00 || leaf bytes).
    <dir>/checkpoints.txt  signed checkpoint notes (see ``checkpoint``) in order of
                           non-decreasing tree size, separated by one blank line.
    <dir>/public_key.txt   the log's verifier key string, one line.

Nothing else is needed: ``verify.verify_export`` recomputes the tree from the entries and
checks it against the signed checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from contracts.tlog.checkpoint import join_notes, parse_verifier_key, split_notes
from contracts.tlog.errors import EntryError, ExportError
from contracts.tlog.jcs import canonical_json, loads_strict
from contracts.tlog.merkle import leaf_hash

ENTRIES_FILE = "entries.jsonl"
CHECKPOINTS_FILE = "checkpoints.txt"
PUBLIC_KEY_FILE = "public_key.txt"

MAX_LINE_BYTES = 1024 * 1024
"""Longest entry line accepted by the reader."""


def entry_leaf(entry: Mapping[str, object]) -> bytes:
    """The leaf bytes recorded for a trace entry: its RFC 8785 canonical JSON."""
    if not isinstance(entry, Mapping):
        raise EntryError("a trace entry must be a JSON object")
    return canonical_json(dict(entry))


def entry_leaf_hash(entry: Mapping[str, object]) -> bytes:
    """The Merkle leaf hash of a trace entry."""
    return leaf_hash(entry_leaf(entry))


def entry_line(index: int, entry: Mapping[str, object]) -> bytes:
    """One ``entries.jsonl`` line (with its newline) for entry ``index``."""
    return b'{"index":%d,"entry":%s}\n' % (index, entry_leaf(entry))


def parse_entry_line(raw: bytes) -> tuple[int, bytes]:
    """Parse one ``entries.jsonl`` line (including its newline).

    Returns ``(index, leaf bytes)``. Raises ``EntryError`` if the line is truncated, not UTF-8,
    not strict JSON, not exactly ``{"index": int, "entry": object}``, or if the entry cannot
    be canonicalised.
    """
    if len(raw) > MAX_LINE_BYTES:
        raise EntryError(f"line is longer than {MAX_LINE_BYTES} bytes")
    if not raw.endswith(b"\n"):
        raise EntryError("line does not end with a newline (file truncated?)")
    try:
        text = raw[:-1].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EntryError("line is not valid UTF-8") from exc
    record = loads_strict(text)
    if not isinstance(record, dict) or set(record) != {"index", "entry"}:
        raise EntryError('line must be a JSON object with exactly "index" and "entry"')
    index = record["index"]
    if type(index) is not int or index < 0:
        raise EntryError('"index" must be a non-negative integer')
    entry = record["entry"]
    if not isinstance(entry, dict):
        raise EntryError('"entry" must be a JSON object')
    return index, canonical_json(entry)


def write_export(
    directory: Path,
    entries: Iterable[Mapping[str, object]],
    checkpoint_notes: Sequence[str],
    verifier_key: str,
) -> int:
    """Write an export directory (created if needed); return the number of entries written.

    ``entries`` are written with indexes 0, 1, 2... in iteration order; ``checkpoint_notes``
    must be signed notes in order of non-decreasing size; ``verifier_key`` must parse.
    """
    parse_verifier_key(verifier_key)
    notes_text = join_notes(checkpoint_notes)
    if len(split_notes(notes_text)) != len(checkpoint_notes):
        raise ExportError("checkpoint notes do not round-trip through the checkpoint file")
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    with (directory / ENTRIES_FILE).open("wb") as out:
        for count, entry in enumerate(entries, start=1):
            out.write(entry_line(count - 1, entry))
    (directory / CHECKPOINTS_FILE).write_text(notes_text, encoding="utf-8", newline="")
    (directory / PUBLIC_KEY_FILE).write_text(verifier_key + "\n", encoding="utf-8", newline="")
    return count
