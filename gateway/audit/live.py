"""Re-hashing a live log's entries against its signed checkpoints.

Proofs from a live gateway are computed from the Merkle nodes it stored when each entry
was appended; they say nothing about the entry rows as they are now. An entry edited or a
row deleted directly in the database leaves the nodes, the checkpoints and every proof
intact. :func:`verify_entries` closes that gap: it recomputes the tree from the entries
themselves and compares the root with a signed checkpoint.

It starts from a checkpoint the verifier already trusts (size ``p``): the log's frontier
at ``p`` (the roots of the perfect subtrees covering ``[0, p)``) must give that
checkpoint's root; then every entry from ``p`` on is re-hashed and appended, and the tree
must give the latest checkpoint's root. Without a trusted start, every entry from 0 is
re-hashed. A failure names the entry: a missing index, an entry whose content no longer
hashes to the leaf the log committed to, or, when the committed leaf hashes were edited
too, the range the signed root does not cover.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from contracts.tlog.checkpoint import Checkpoint
from contracts.tlog.errors import EntryError, ForkError, ProofError, TamperedError
from contracts.tlog.tree import CompactRange
from gateway.audit.export import entry_leaf_hash

LiveEntry = tuple[int, Mapping[str, object], bytes | None]
"""An entry as the gateway serves it: index, content, the leaf hash it says it committed."""


def verify_entries(
    latest: Checkpoint,
    entries: Iterable[LiveEntry],
    *,
    start: Checkpoint | None = None,
    frontier: Sequence[bytes] = (),
    also: Sequence[Checkpoint] = (),
) -> int:
    """Check that the entries from ``start`` (or from 0) to ``latest`` give its root.

    ``frontier`` is the log's frontier at ``start.size``; ``also`` are further trusted
    checkpoints (sizes between the first entry re-hashed and ``latest``) whose roots must
    match on the way. Returns how many entries were re-hashed. Raises ``TamperedError``
    (naming the entry) or ``ForkError`` (the stored tree disagrees with ``start``).
    """
    begin = start.size if start is not None else 0
    if start is not None and start.size > 0:
        try:
            compact = CompactRange.from_hashes(start.size, frontier)
        except ProofError as exc:
            raise ForkError(f"the log's frontier at size {start.size}: {exc.message}") from exc
        if compact.root() != start.root:
            raise ForkError(
                f"the log's stored tree at size {start.size} does not give the root of the "
                f"checkpoint held for that size: history was rewritten"
            )
    else:
        compact = CompactRange()
    wanted = {c.size: c.root for c in also if begin < c.size <= latest.size}
    expected = begin
    altered: int | None = None
    for index, entry, committed in entries:
        if expected >= latest.size:
            break
        if index != expected:
            what = "is missing" if index > expected else "is repeated or out of order"
            raise TamperedError(f"entry {expected} {what} (the log served {index})", index=expected)
        try:
            leaf = entry_leaf_hash(entry)
        except EntryError as exc:
            raise TamperedError(f"entry {index} is unreadable: {exc.message}", index=index) from exc
        if committed is not None and committed != leaf and altered is None:
            altered = index
        compact.push(leaf)
        expected += 1
        root = wanted.get(expected)
        if root is not None and compact.root() != root:
            _mismatch(begin, expected, altered)
    if expected < latest.size:
        raise TamperedError(
            f"entry {expected} is missing: the log serves {expected} of the "
            f"{latest.size} entries its checkpoint signs",
            index=expected,
        )
    if compact.root() != latest.root:
        _mismatch(begin, latest.size, altered)
    return expected - begin


def _mismatch(begin: int, size: int, altered: int | None) -> None:
    if altered is not None:
        raise TamperedError(
            f"entry {altered} was altered: its content does not hash to the leaf the log "
            f"committed to, and the entries do not give the signed root of size {size}",
            index=altered,
        )
    raise TamperedError(
        f"entries {begin}..{size - 1} do not give the signed root of size {size}: "
        f"an entry and its committed leaf hash were altered",
        index=begin,
    )
