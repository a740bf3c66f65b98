"""SQL persistence of the trace: entries, complete Merkle nodes, the head row, checkpoints.

Positions are assigned at the end of a write transaction, under the head row's lock
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's single writer lock), so concurrent gateway
processes sharing one database extend one consistent tree.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from contracts.tlog.errors import ProofError
from contracts.tlog.jcs import canonical_json
from contracts.tlog.merkle import NodeId, frontier_ids, leaf_hash
from contracts.tlog.tree import CompactRange
from gateway.domain import PendingTrace, StoredTrace, TraceRecord
from gateway.store.models import (
    JobAssetRow,
    TraceCheckpointRow,
    TraceEntryRow,
    TraceHeadRow,
    TraceNodeRow,
)

_LEVEL_SHIFT = 56
_entry = TraceEntryRow.__table__  # type: ignore[attr-defined]
_node = TraceNodeRow.__table__  # type: ignore[attr-defined]
_head = TraceHeadRow.__table__  # type: ignore[attr-defined]
_checkpoint = TraceCheckpointRow.__table__  # type: ignore[attr-defined]
_job_asset = JobAssetRow.__table__  # type: ignore[attr-defined]


def node_key(node: NodeId) -> int:
    return (node.level << _LEVEL_SHIFT) | node.index


def fetch_nodes(session: Session, ids: Sequence[NodeId]) -> list[bytes]:
    """Hashes of complete nodes in ``ids`` order; ``ProofError`` if one is missing."""
    if not ids:
        return []
    keys = [node_key(n) for n in ids]
    rows = session.execute(select(_node.c.key, _node.c.hash).where(_node.c.key.in_(set(keys))))
    found = {int(k): bytes(h) for k, h in rows}
    missing = [n for n, k in zip(ids, keys, strict=True) if k not in found]
    if missing:
        raise ProofError(f"trace node ({missing[0].level}, {missing[0].index}) is missing")
    return [found[k] for k in keys]


class TraceBatch:
    """Entries appended in one write transaction, in order, with savepoint marks."""

    def __init__(self) -> None:
        self.records: list[tuple[TraceRecord, PendingTrace]] = []
        self._marks: list[int] = []

    def add(self, record: TraceRecord) -> PendingTrace:
        leaf = canonical_json(record.entry)
        pending = PendingTrace(leaf=leaf, leaf_hash=leaf_hash(leaf))
        self.records.append((record, pending))
        return pending

    def mark(self) -> None:
        self._marks.append(len(self.records))

    def release(self) -> None:
        self._marks.pop()

    def rollback_to_mark(self) -> None:
        del self.records[self._marks.pop() :]


class TraceWriter:
    """Assigns positions and persists a batch; keeps the compact range between batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._range = CompactRange()

    def _current(self, session: Session, size: int) -> CompactRange:
        with self._lock:
            cached = self._range.copy()
        if cached.size == size:
            return cached
        return CompactRange.restore(size, lambda ids: fetch_nodes(session, ids))

    def finish(self, session: Session, batch: TraceBatch, *, postgres: bool) -> CompactRange | None:
        """Write the batch's entries and nodes and move the head; return the new range."""
        if not batch.records:
            return None
        q = select(_head.c.size).where(_head.c.id == 1)
        if postgres:
            q = q.with_for_update()
        size = int(session.execute(q).scalar_one())
        compact = self._current(session, size)
        entries = []
        nodes = []
        for offset, (record, pending) in enumerate(batch.records):
            index = size + offset
            pending.index = index
            entries.append(
                {
                    "idx": index,
                    "leaf": pending.leaf,
                    "time": record.time,
                    "action": record.action,
                    "actor_principal": record.actor_principal,
                    "actor_org": record.actor_org,
                    "subject_org": record.subject_org,
                    "asset_id": record.asset_id,
                    "job_id": record.job_id,
                    "decision": record.decision,
                }
            )
            for node, digest in compact.append(pending.leaf_hash):
                nodes.append({"key": node_key(node), "hash": digest})
        session.execute(insert(TraceEntryRow), entries)
        session.execute(insert(TraceNodeRow), nodes)
        session.execute(update(_head).where(_head.c.id == 1).values(size=compact.size))
        return compact

    def committed(self, compact: CompactRange | None) -> None:
        """Adopt ``compact`` after its transaction committed (never move backwards)."""
        if compact is None:
            return
        with self._lock:
            if compact.size > self._range.size:
                self._range = compact

    def forget(self) -> None:
        """Drop the cached range (after a failed commit); it is rebuilt from the store."""
        with self._lock:
            self._range = CompactRange()


def trace_size(session: Session) -> int:
    return int(session.execute(select(_head.c.size).where(_head.c.id == 1)).scalar_one())


def trace_entries(
    session: Session,
    *,
    after: int | None,
    limit: int,
    action: str | None = None,
    actor_principal: str | None = None,
    actor_org: str | None = None,
    subject_org: str | None = None,
    holder_org: str | None = None,
    asset_id: str | None = None,
    decision: str | None = None,
    org: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    newest: bool = False,
) -> list[StoredTrace]:
    """Entries in log order after ``after`` (or, with ``newest``, the newest first, before
    ``before``) that match every filter given; ``org`` matches the actor's organisation or
    the subject's; ``holder_org`` keeps the entries whose subject is that organisation and
    those of every job on its assets (a job across several holders names one subject)."""
    q = (
        select(_entry.c.idx, _entry.c.leaf, _node.c.hash)
        .outerjoin(_node, _node.c.key == _entry.c.idx)
        .order_by(_entry.c.idx.desc() if newest else _entry.c.idx)
        .limit(limit)
    )
    if after is not None:
        q = q.where(_entry.c.idx > after)
    if before is not None:
        q = q.where(_entry.c.idx < before)
    for column, value in (
        (_entry.c.action, action),
        (_entry.c.actor_principal, actor_principal),
        (_entry.c.actor_org, actor_org),
        (_entry.c.subject_org, subject_org),
        (_entry.c.asset_id, asset_id),
        (_entry.c.decision, decision),
    ):
        if value is not None:
            q = q.where(column == value)
    if holder_org is not None:
        jobs = select(_job_asset.c.job_id).where(_job_asset.c.holder_org_id == holder_org)
        q = q.where(or_(_entry.c.subject_org == holder_org, _entry.c.job_id.in_(jobs)))
    if org is not None:
        q = q.where(or_(_entry.c.actor_org == org, _entry.c.subject_org == org))
    if since is not None:
        q = q.where(_entry.c.time >= since)
    if until is not None:
        q = q.where(_entry.c.time < until)
    return [
        StoredTrace(int(i), bytes(leaf), bytes(h) if h is not None else None)
        for i, leaf, h in session.execute(q)
    ]


def add_checkpoint(session: Session, size: int, note: str, at: datetime) -> None:
    exists = session.execute(select(_checkpoint.c.size).where(_checkpoint.c.size == size)).first()
    if exists is None:
        session.execute(insert(TraceCheckpointRow).values(size=size, note=note, created_at=at))


def latest_checkpoint(session: Session) -> tuple[int, str] | None:
    row = session.execute(
        select(_checkpoint.c.size, _checkpoint.c.note).order_by(_checkpoint.c.size.desc()).limit(1)
    ).first()
    return (int(row[0]), str(row[1])) if row else None


def checkpoints(session: Session, *, after_size: int | None, limit: int) -> list[tuple[int, str]]:
    q = select(_checkpoint.c.size, _checkpoint.c.note).order_by(_checkpoint.c.size).limit(limit)
    if after_size is not None:
        q = q.where(_checkpoint.c.size > after_size)
    return [(int(s), str(n)) for s, n in session.execute(q)]


__all__ = ["TraceBatch", "TraceWriter", "fetch_nodes", "frontier_ids", "node_key"]
