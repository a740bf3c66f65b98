"""Building trace entries: who did what to which object, the decision, and digests.

An entry never carries raw rows, ciphertexts or secrets: objects are named by id and
payloads by their SHA-256 digest over canonical JSON.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from contracts.tlog.jcs import canonical_json
from gateway.domain import Actor, TraceRecord

ENTRY_VERSION = 1


def digest(payload: Any) -> str:
    """``sha256:<hex>`` of ``payload``'s canonical JSON (bytes are hashed as they are)."""
    if isinstance(payload, bytes):
        data = payload
    else:
        dump = getattr(payload, "model_dump", None)
        data = canonical_json(dump(mode="json") if callable(dump) else payload)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def timestamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_entry(
    *,
    at: datetime,
    actor: Actor | None,
    action: str,
    target: Mapping[str, str | list[str]] | None = None,
    subject_org: str | None = None,
    asset_id: str | None = None,
    decision: str = "allow",
    reasons: Sequence[Mapping[str, str]] = (),
    request_digest: str | None = None,
    result_digest: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> TraceRecord:
    """A :class:`TraceRecord` whose entry holds only ids, codes, decisions and digests."""
    entry: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "time": timestamp(at),
        "action": action,
        "actor": None
        if actor is None
        else {"principal": actor.principal_id, "org": actor.org_id, "role": str(actor.role)},
        "target": dict(target or {}),
        "decision": decision,
        "reasons": [dict(r) for r in reasons],
    }
    if subject_org is not None:
        entry["subject_org"] = subject_org
    if request_digest is not None:
        entry["request"] = request_digest
    if result_digest is not None:
        entry["result"] = result_digest
    if detail:
        entry["detail"] = dict(detail)
    return TraceRecord(
        entry=entry,
        time=at,
        action=action,
        actor_principal=actor.principal_id if actor else None,
        actor_org=actor.org_id if actor else None,
        subject_org=subject_org,
        asset_id=asset_id,
        job_id=job if isinstance(job := entry["target"].get("job"), str) else None,
        decision=decision,
    )
