"""The trace for its readers: entries by role, checkpoints, proofs, receipts."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from contracts.tlog.errors import ProofError
from contracts.tlog.merkle import leaf_hash
from gateway.domain import Actor, PendingTrace, Role, StoredTrace
from gateway.errors import BadPagination, BadRequest, NotFound, ValidationFailed
from gateway.service.core.access import require_role
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.trace.log import TraceLog, b64
from gateway.service.trace.schemas import (
    CheckpointOut,
    ConsistencyProofOut,
    InclusionProofOut,
    LogInfo,
    Receipt,
    TraceEntryOut,
    TracePage,
)


def _scope(actor: Actor) -> dict[str, str]:
    """Which entries a role sees: auditors all; holders those on their organisation's
    objects (every job on one of their assets included); operators and admins their
    organisation's own actions."""
    if actor.role == Role.AUDITOR:
        return {}
    if actor.role == Role.HOLDER:
        return {"holder_org": actor.org_id}
    return {"actor_org": actor.org_id}


def _out(stored: StoredTrace) -> TraceEntryOut:
    return TraceEntryOut(
        index=stored.index,
        leaf_hash=b64(stored.committed_hash or b""),
        entry=json.loads(stored.leaf),
    )


class AuditService:
    """Use cases over the trace."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer, log: TraceLog) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.log = log

    def receipt(self, pending: PendingTrace) -> Receipt:
        return Receipt(**self.log.receipt(pending))

    def info(self, actor: Actor) -> LogInfo:
        return LogInfo(
            origin=self.log.key.origin, verifier_key=self.log.verifier_key, size=self.log.size()
        )

    def entries(
        self,
        actor: Actor,
        *,
        limit: int | None,
        cursor: str | None,
        action: str | None = None,
        asset_id: str | None = None,
        actor_org: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        principal: str | None = None,
        org: str | None = None,
        decision: str | None = None,
        newest: bool = False,
    ) -> TracePage:
        """Entries the actor may read that match every filter, in log order after
        ``cursor`` — or, with ``newest``, newest first before ``cursor``."""
        settings = self.ctx.settings
        limit = settings.page_size_default if limit is None else limit
        if not 1 <= limit <= 1000:
            raise BadPagination("limit must be between 1 and 1000")
        position = None
        if cursor is not None:
            if not cursor.isdigit() or len(cursor) > 19:
                raise BadPagination("cursor is not valid")
            position = int(cursor)
        if decision is not None and decision not in ("allow", "deny"):
            raise BadRequest("decision must be 'allow' or 'deny'")
        filters: dict[str, Any] = {
            "action": action,
            "asset_id": asset_id,
            "since": since,
            "until": until,
            "actor_principal": principal,
            "org": org,
            "decision": decision,
        }
        scope = _scope(actor)
        if actor_org is not None:
            if "actor_org" in scope and scope["actor_org"] != actor_org:
                return TracePage(items=[], next_cursor=None)
            filters["actor_org"] = actor_org
        filters.update(scope)
        if newest:
            filters.update(before=position, newest=True)
            position = None
        with self.ctx.store.read() as tx:
            rows = tx.trace_entries(after=position, limit=limit, **filters)
        nxt = str(rows[-1].index) if len(rows) == limit else None
        return TracePage(items=[_out(r) for r in rows], next_cursor=nxt)

    def checkpoint(self, actor: Actor, *, fresh: bool) -> CheckpointOut:
        """The latest checkpoint; ``fresh`` signs one at the current size (auditors, admins)."""
        if fresh:
            require_role(actor, Role.AUDITOR, Role.ADMIN)

            def work(_tx: Any, note: Note) -> None:
                return None

            self.tracer.write(actor, "trace.checkpoint", work)  # covered by the new checkpoint
            size, text = self.log.checkpoint()
            return CheckpointOut(size=size, checkpoint=text)
        latest = self.log.latest_checkpoint()
        if latest is None:
            size, text = self.log.checkpoint()
        else:
            size, text = latest
        return CheckpointOut(size=size, checkpoint=text)

    def checkpoints(
        self, actor: Actor, *, after_size: int | None, limit: int
    ) -> list[CheckpointOut]:
        require_role(actor, Role.AUDITOR)
        if not 1 <= limit <= 1000:
            raise BadPagination("limit must be between 1 and 1000")
        with self.ctx.store.read() as tx:
            rows = tx.checkpoints(after_size=after_size, limit=limit)
        return [CheckpointOut(size=s, checkpoint=n) for s, n in rows]

    def inclusion(self, actor: Actor, index: int, size: int) -> InclusionProofOut:
        """An inclusion proof for an entry the caller may see."""
        with self.ctx.store.read() as tx:
            scope = _scope(actor)
            rows = tx.trace_entries(after=index - 1 if index > 0 else None, limit=1, **scope)
        if not rows or rows[0].index != index:
            raise NotFound("no such trace entry")
        try:
            proof = self.log.inclusion(index, size)
        except ProofError as exc:
            raise ValidationFailed(str(exc)) from None
        return InclusionProofOut(
            index=index,
            tree_size=size,
            leaf_hash=b64(leaf_hash(rows[0].leaf)),
            proof=[b64(p) for p in proof],
        )

    def consistency(self, actor: Actor, old_size: int, new_size: int) -> ConsistencyProofOut:
        try:
            proof = self.log.consistency(old_size, new_size)
        except ProofError as exc:
            raise ValidationFailed(str(exc)) from None
        return ConsistencyProofOut(
            from_size=old_size, to_size=new_size, proof=[b64(p) for p in proof]
        )
