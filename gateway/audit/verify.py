"""Offline verification of an exported trace, and live checks between tree heads.

``verify_export`` needs only the export directory (layout in ``gateway.audit.export``). It

1. parses the verifier key and every checkpoint note, checking each signature and origin;
2. checks the checkpoints' sizes never decrease and equal sizes carry equal roots;
3. streams ``entries.jsonl`` once, checking indexes run 0, 1, 2... and recomputing the tree
   with a compact range, taking the root at every checkpoint size;
4. compares each checkpoint's root with the recomputed one.

Because every checkpoint is compared with the same recomputed tree, agreeing checkpoints are
consistent with each other by construction. A failure names the first bad position: the
exact index of a missing, repeated, reordered or unreadable line; for edited content, the
range between the last checkpoint that still matches and the first that does not (exact when
checkpoints are taken after every entry). A checkpoint that disagrees while a later one
agrees with the entries is reported as a fork rather than as tampering.

Undetectable offline: dropping entries *together with* every checkpoint that covers them.
Pass ``trusted`` (a checkpoint seen earlier) to catch that as a rollback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from contracts.tlog.checkpoint import (
    Checkpoint,
    parse_and_verify_checkpoint,
    parse_verifier_key,
    split_notes,
)
from contracts.tlog.errors import (
    CheckpointError,
    EntryError,
    ExportError,
    ForkError,
    ProofError,
    RollbackError,
    TamperedError,
    TraceError,
)
from contracts.tlog.merkle import EMPTY_ROOT, check_consistency, leaf_hash
from contracts.tlog.tree import CompactRange
from gateway.audit.export import (
    CHECKPOINTS_FILE,
    ENTRIES_FILE,
    MAX_LINE_BYTES,
    PUBLIC_KEY_FILE,
    parse_entry_line,
)

FailureKind = Literal[
    "bad_export",
    "bad_checkpoint",
    "checkpoint_order",
    "fork",
    "bad_entry",
    "bad_index",
    "root_mismatch",
    "truncated",
    "rollback",
]

_ERRORS: dict[FailureKind, type[TraceError]] = {
    "bad_export": ExportError,
    "bad_checkpoint": CheckpointError,
    "checkpoint_order": TamperedError,
    "fork": ForkError,
    "bad_entry": TamperedError,
    "bad_index": TamperedError,
    "root_mismatch": TamperedError,
    "truncated": TamperedError,
    "rollback": RollbackError,
}


@dataclass(frozen=True, slots=True)
class VerifyFailure:
    """The first defect found in an export.

    ``first_bad_index``..``last_bad_index`` (inclusive) is the smallest entry range known to
    contain the first bad entry (equal when pinpointed; ``None`` when the defect is not in
    the entries). ``checkpoint`` is the 0-based position of the note involved in
    ``checkpoints.txt``, if any.
    """

    kind: FailureKind
    message: str
    first_bad_index: int | None = None
    last_bad_index: int | None = None
    checkpoint: int | None = None

    def error(self) -> TraceError:
        """The exception for this failure (its ``code`` depends on ``kind``)."""
        return _ERRORS[self.kind](self.message, index=self.first_bad_index)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of ``verify_export``.

    ``entries`` counts the well-formed entry lines read before any defect; ``verified_size``
    is the largest tree size whose signed root matched the entries (entries beyond it are
    not covered by any checkpoint); ``latest`` is the last checkpoint in the file.
    """

    entries: int
    checkpoints: int
    verified_size: int
    latest: Checkpoint | None
    failure: VerifyFailure | None

    @property
    def ok(self) -> bool:
        """True when no defect was found."""
        return self.failure is None

    def raise_for_failure(self) -> None:
        """Raise the failure's ``TraceError`` subclass, if there is one."""
        if self.failure is not None:
            raise self.failure.error()


class _Abort(Exception):
    def __init__(self, failure: VerifyFailure) -> None:
        super().__init__(failure.message)
        self.failure = failure


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Abort(VerifyFailure("bad_export", f"cannot read {path.name}: {exc}")) from exc


def _load_checkpoints(directory: Path, origin: str | None) -> list[Checkpoint]:
    key_text = _read_text(directory / PUBLIC_KEY_FILE).strip()
    try:
        key = parse_verifier_key(key_text)
    except CheckpointError as exc:
        raise _Abort(VerifyFailure("bad_export", f"{PUBLIC_KEY_FILE}: {exc.message}")) from exc
    try:
        notes = split_notes(_read_text(directory / CHECKPOINTS_FILE))
    except CheckpointError as exc:
        message = f"{CHECKPOINTS_FILE}: {exc.message}"
        raise _Abort(VerifyFailure("bad_checkpoint", message)) from exc
    if not notes:
        raise _Abort(VerifyFailure("bad_export", "the export has no checkpoint"))
    checkpoints: list[Checkpoint] = []
    for position, note in enumerate(notes):
        try:
            checkpoint = parse_and_verify_checkpoint(note, key, origin=origin)
        except CheckpointError as exc:
            message = f"checkpoint {position}: {exc.message}"
            raise _Abort(VerifyFailure("bad_checkpoint", message, checkpoint=position)) from exc
        if checkpoints:
            previous = checkpoints[-1]
            if checkpoint.size < previous.size:
                message = (
                    f"checkpoint {position} has size {checkpoint.size}, smaller than the "
                    f"{previous.size} before it"
                )
                raise _Abort(VerifyFailure("checkpoint_order", message, checkpoint=position))
            if checkpoint.size == previous.size and checkpoint.root != previous.root:
                message = (
                    f"checkpoints {position - 1} and {position} sign different roots for "
                    f"size {checkpoint.size}"
                )
                raise _Abort(VerifyFailure("fork", message, checkpoint=position))
        checkpoints.append(checkpoint)
    return checkpoints


def _index_failure(expected: int, found: int) -> VerifyFailure:
    if found > expected:
        message = f"entry {expected} is missing or out of order (line has index {found})"
    else:
        message = f"entry {expected} is a repeat or out of order (line has index {found})"
    return VerifyFailure("bad_index", message, expected, expected)


_CANONICAL_LINE = re.compile(rb'\{"index":(0|[1-9][0-9]{0,18}),"entry":(\{[^\n]*\})\}\n\Z')


def _stream_roots(
    path: Path, sizes: set[int], *, fast: bool = False
) -> tuple[int, dict[int, bytes], VerifyFailure | None]:
    """Read entries, return (count of good entries, root at each wanted size, first defect).

    With ``fast``, a line in the exporter's exact layout is hashed as it stands, without
    parsing its JSON: if the roots then match the signed checkpoints, those bytes are the
    committed leaves. Any other line is parsed and canonicalised as in the full pass.
    """
    match = _CANONICAL_LINE.match
    roots: dict[int, bytes] = {0: EMPTY_ROOT} if 0 in sizes else {}
    compact = CompactRange()
    push = compact.push
    expected = 0
    try:
        with path.open("rb") as handle:
            for raw in iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""):
                found = match(raw) if fast else None
                try:
                    if found is not None:
                        index, leaf = int(found.group(1)), found.group(2)
                    else:
                        index, leaf = parse_entry_line(raw)
                except EntryError as exc:
                    message = f"entry {expected}: {exc.message}"
                    return expected, roots, VerifyFailure("bad_entry", message, expected, expected)
                if index != expected:
                    return expected, roots, _index_failure(expected, index)
                push(leaf_hash(leaf))
                expected += 1
                if expected in sizes:
                    roots[expected] = compact.root()
    except OSError as exc:
        raise _Abort(VerifyFailure("bad_export", f"cannot read {path.name}: {exc}")) from exc
    return expected, roots, None


def verify_export(
    directory: Path | str, *, trusted: Checkpoint | None = None, origin: str | None = None
) -> VerifyReport:
    """Verify an export directory; never raises for defects in the export, it reports them.

    ``origin`` is the expected log origin (default: the verifier key's name). ``trusted`` is
    a checkpoint the caller saw earlier (already verified); the export must contain a tree
    of its size with its root, or the report names a rollback or fork.
    """
    directory = Path(directory)
    checkpoints: list[Checkpoint] = []
    try:
        checkpoints = _load_checkpoints(directory, origin)
        sizes = {checkpoint.size for checkpoint in checkpoints}
        if trusted is not None:
            sizes.add(trusted.size)
        count, roots, structural = _stream_roots(directory / ENTRIES_FILE, sizes, fast=True)
        if structural is not None or any(roots.get(c.size, c.root) != c.root for c in checkpoints):
            # Something is off: redo the pass parsing every line, for a precise report.
            count, roots, structural = _stream_roots(directory / ENTRIES_FILE, sizes)
    except _Abort as abort:
        latest = checkpoints[-1] if checkpoints else None
        return VerifyReport(0, len(checkpoints), 0, latest, abort.failure)

    verified_size = 0
    first_mismatch: int | None = None
    failure: VerifyFailure | None = None
    for position, checkpoint in enumerate(checkpoints):
        if checkpoint.size > count:
            break
        if roots[checkpoint.size] == checkpoint.root:
            verified_size = max(verified_size, checkpoint.size)
            if first_mismatch is not None and failure is None:
                bad = checkpoints[first_mismatch]
                message = (
                    f"checkpoint {first_mismatch} (size {bad.size}) disagrees with entries "
                    f"that checkpoint {position} (size {checkpoint.size}) confirms: the log "
                    f"signed inconsistent tree heads"
                )
                failure = VerifyFailure("fork", message, checkpoint=first_mismatch)
        elif first_mismatch is None:
            first_mismatch = position
    if failure is None and first_mismatch is not None:
        bad = checkpoints[first_mismatch]
        start = checkpoints[first_mismatch - 1].size if first_mismatch else 0
        where = f"entry {start}" if start == bad.size - 1 else f"entries {start}..{bad.size - 1}"
        message = (
            f"checkpoint {first_mismatch} (size {bad.size}) does not match the entries: "
            f"{where} altered"
        )
        failure = VerifyFailure("root_mismatch", message, start, bad.size - 1, first_mismatch)
    if failure is None and structural is not None:
        failure = structural
    if failure is None and checkpoints[-1].size > count:
        position = next(i for i, cp in enumerate(checkpoints) if cp.size > count)
        message = (
            f"checkpoint {position} covers {checkpoints[position].size} entries but the "
            f"export has only {count}"
        )
        failure = VerifyFailure("truncated", message, count, count, position)
    if failure is None and trusted is not None:
        failure = _check_trusted(trusted, checkpoints[-1], roots)
    return VerifyReport(count, len(checkpoints), verified_size, checkpoints[-1], failure)


def _check_trusted(
    trusted: Checkpoint, latest: Checkpoint, roots: dict[int, bytes]
) -> VerifyFailure | None:
    if trusted.origin != latest.origin:
        message = f"trusted checkpoint is for origin {trusted.origin!r}, not {latest.origin!r}"
        return VerifyFailure("bad_checkpoint", message)
    if trusted.size > latest.size:
        message = (
            f"the export ends at size {latest.size}, before the trusted size {trusted.size}: "
            f"the log was rolled back"
        )
        return VerifyFailure("rollback", message, latest.size, trusted.size - 1)
    if roots.get(trusted.size) != trusted.root:
        message = f"the entries give a different root at the trusted size {trusted.size}"
        return VerifyFailure("fork", message)
    return None


def verify_live_state(
    previous: Checkpoint, latest: Checkpoint, consistency_proof: Sequence[bytes]
) -> Checkpoint:
    """Check that ``latest`` extends ``previous`` (both already signature-verified).

    Returns ``latest`` when it does. Raises ``CheckpointError`` for a different origin,
    ``RollbackError`` when ``latest`` is smaller than ``previous``, and ``ForkError`` when
    the roots differ at the same size or the consistency proof does not verify.
    """
    if previous.origin != latest.origin:
        raise CheckpointError(f"origin changed from {previous.origin!r} to {latest.origin!r}")
    if latest.size < previous.size:
        raise RollbackError(f"log shrank from size {previous.size} to {latest.size}: rollback")
    if latest.size == previous.size and latest.root != previous.root:
        raise ForkError(f"two different roots signed for size {latest.size}: fork")
    try:
        check_consistency(previous.size, latest.size, previous.root, latest.root, consistency_proof)
    except ProofError as exc:
        raise ForkError(
            f"size {latest.size} is not consistent with size {previous.size}: {exc.message}"
        ) from exc
    return latest
