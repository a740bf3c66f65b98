"""Pinpointing an altered entry with the committed leaf hashes of an export.

``leaf_hashes.txt`` (optional in an export) lists, one base64 hash per line, the leaf hash
the log committed to for each index. Those hashes are untrusted until the tree they form
matches the signed checkpoints; once it does, they are authentic (SHA-256 collision
resistance), and any entry whose own leaf hash differs from its listed hash is exactly an
altered entry. Without the file, or if it does not match, the verifier's range stands.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from pathlib import Path

from contracts.tlog.checkpoint import parse_checkpoint_body, split_notes
from contracts.tlog.merkle import leaf_hash
from contracts.tlog.tree import CompactRange
from gateway.audit.export import CHECKPOINTS_FILE, ENTRIES_FILE, parse_entry_line
from gateway.audit.verify import VerifyReport

LEAF_HASHES_FILE = "leaf_hashes.txt"


def _committed_hashes(directory: Path) -> list[bytes] | None:
    path = directory / LEAF_HASHES_FILE
    if not path.exists():
        return None
    try:
        return [base64.b64decode(line, validate=True) for line in path.read_text().split()]
    except (binascii.Error, ValueError):
        return None


def _hashes_match_checkpoints(directory: Path, hashes: list[bytes]) -> bool:
    """Whether the tree over ``hashes`` has every signed root the export's checkpoints state.

    Signatures were already checked by ``verify_export``; only bodies are read here.
    """
    wanted: dict[int, bytes] = {}
    for note in split_notes((directory / CHECKPOINTS_FILE).read_text(encoding="utf-8")):
        body = note.split("\n\n", 1)[0] + "\n"
        checkpoint = parse_checkpoint_body(body)
        wanted[checkpoint.size] = checkpoint.root
    if not wanted or max(wanted) > len(hashes):
        return False
    compact = CompactRange()
    for size in range(1, max(wanted) + 1):
        if len(hashes[size - 1]) != 32:
            return False
        compact.push(hashes[size - 1])
        if size in wanted and compact.root() != wanted[size]:
            return False
    return True


def pinpoint(directory: Path | str, report: VerifyReport) -> VerifyReport:
    """Narrow a ``root_mismatch`` failure to the first altered entry, when possible."""
    failure = report.failure
    if failure is None or failure.kind != "root_mismatch" or failure.first_bad_index is None:
        return report
    directory = Path(directory)
    hashes = _committed_hashes(directory)
    if hashes is None or not _hashes_match_checkpoints(directory, hashes):
        return report
    with (directory / ENTRIES_FILE).open("rb") as fh:
        for raw in fh:
            index, leaf = parse_entry_line(raw)
            if index < failure.first_bad_index:
                continue
            if index > (failure.last_bad_index or index):
                break
            if index < len(hashes) and leaf_hash(leaf) != hashes[index]:
                message = (
                    f"entry {index} was altered: its leaf hash differs from the one the log "
                    f"committed to (checkpoint {failure.checkpoint} confirms the committed hashes)"
                )
                narrowed = dataclasses.replace(
                    failure, message=message, first_bad_index=index, last_bad_index=index
                )
                return dataclasses.replace(report, failure=narrowed)
    return report
