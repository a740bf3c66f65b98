"""Tracing use cases: every state change commits with its trace entry; reads and refusals
are traced before the caller gets an answer."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.audit.entry import digest, make_entry
from gateway.clock import Clock
from gateway.domain import Actor, PendingTrace, TraceRecord
from gateway.errors import BlindgateError
from gateway.store import Store, Tx

R = TypeVar("R")


@dataclass
class Note:
    """What a use case tells the trace about the object it touched."""

    target: dict[str, str | list[str]] = field(default_factory=dict)
    subject_org: str | None = None
    asset_id: str | None = None
    result: Any = None
    detail: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    reasons: list[dict[str, str]] = field(default_factory=list)
    """A use case that decides (a policy decision) records its own outcome and reasons."""

    def record_decision(self, allow: bool, reasons: Iterable[Any]) -> None:
        """Record a policy decision's outcome and its reasons' codes and clauses."""
        self.decision = "allow" if allow else "deny"
        self.reasons = [{"code": r.code, "clause": r.clause} for r in reasons]


class Tracer:
    """Runs use cases so that the trace records each of them."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def record(
        self,
        actor: Actor | None,
        action: str,
        note: Note,
        *,
        decision: str = "allow",
        reasons: list[dict[str, str]] | None = None,
        request: Any = None,
    ) -> TraceRecord:
        return make_entry(
            at=self.clock.now(),
            actor=actor,
            action=action,
            target=note.target,
            subject_org=note.subject_org,
            asset_id=note.asset_id,
            decision=note.decision or decision,
            reasons=reasons or note.reasons,
            request_digest=digest(request) if request is not None else None,
            result_digest=digest(note.result) if note.result is not None else None,
            detail=note.detail,
        )

    def write(
        self,
        actor: Actor | None,
        action: str,
        work: Callable[[Tx, Note], R],
        *,
        request: Any = None,
        target: dict[str, str | list[str]] | None = None,
    ) -> tuple[R, PendingTrace]:
        """Run ``work`` and append its entry in one group-committed transaction.

        On a refusal the transaction is rolled back and a ``deny`` entry is written instead.
        """
        note = Note(target=dict(target or {}))

        def unit(tx: Tx) -> tuple[R, PendingTrace]:
            result = work(tx, note)
            return result, tx.append_trace(self.record(actor, action, note, request=request))

        try:
            return self.store.transact(unit)
        except BlindgateError as exc:
            self.deny(actor, action, exc, note, request=request)
            raise

    def read(
        self,
        actor: Actor | None,
        action: str,
        work: Callable[[Tx, Note], R],
        *,
        target: dict[str, str | list[str]] | None = None,
    ) -> R:
        """Run ``work`` in a read transaction; the read is traced (durably) before returning."""
        note = Note(target=dict(target or {}))
        try:
            with self.store.read() as tx:
                result = work(tx, note)
        except BlindgateError as exc:
            self.deny(actor, action, exc, note)
            raise
        self.store.append_trace(self.record(actor, action, note))
        return result

    def deny(
        self,
        actor: Actor | None,
        action: str,
        error: BlindgateError,
        note: Note | None = None,
        *,
        request: Any = None,
    ) -> PendingTrace:
        """Durably record that ``action`` was refused with ``error``'s code."""
        reason = {"code": error.code, "message": error.detail or error.spec.message}
        entry = self.record(
            actor, action, note or Note(), decision="deny", reasons=[reason], request=request
        )
        return self.store.append_trace(entry)
