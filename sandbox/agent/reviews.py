"""The holder's review of held Python outputs: signed at the site, verified by the agent.

The holder's reviewer runs ``blindgate site outputs release|reject`` on the site's
machine with the holder organisation's signing key.  The command signs a
:class:`~contracts.tickets.ReviewStatement` naming the fragment, the job's digest and the
SHA-256 of the held files' manifest, and records it beside the held outputs
(:meth:`~sandbox.agent.held.HeldOutputs.propose`).  The agent acts on a review only when
one of the keys pinned in its ``site.yaml`` signed it for this organisation, this
fragment, this job and exactly these files (:func:`settle`); anything else is dropped
with a warning and the outputs stay held.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from contracts import LicenceError
from contracts.tickets import ReviewStatement, canonical, sign_statement, verify_statement
from sandbox.agent.held import HELD, REJECTED, RELEASED, Held, HeldOutputs
from sandbox.wire import HeldFile, HeldOutcome

log = logging.getLogger(__name__)


def review_statement(
    held: Held,
    *,
    organisation: str,
    reviewer: str,
    release: bool,
    reason: str,
    signed_at: datetime,
) -> ReviewStatement:
    """The statement a reviewer signs for ``held``."""
    return ReviewStatement(
        holder_org_id=organisation,
        reviewer=reviewer,
        fragment_id=held.fragment_id,
        job_id=held.job_id,
        job_sha256=held.job_sha256,
        outputs_sha256=held.outputs_sha256,
        decision="release" if release else "reject",
        reason=reason,
        signed_at=signed_at,
    )


def sign_review(store: HeldOutputs, statement: ReviewStatement, key: Ed25519PrivateKey) -> bool:
    """Sign ``statement`` and record it for the agent; whether the outputs were held."""
    signature = sign_statement(statement, key)
    return store.propose(statement.fragment_id, canonical(statement).decode(), signature)


def settle(
    store: HeldOutputs,
    fragment_id: str,
    organisation: str,
    keys: tuple[Ed25519PublicKey, ...],
    now: datetime,
) -> Held | None:
    """The fragment's held outputs, decided by a recorded review if a pinned key signed it
    for exactly these outputs."""
    held = store.get(fragment_id)
    if held is None or held.state != HELD or not held.proposed_statement:
        return held
    try:
        statement = ReviewStatement.model_validate_json(held.proposed_statement)
        verify_statement(statement, held.proposed_signature, keys)
    except (ValidationError, ValueError, LicenceError):
        log.warning("fragment %s: a review not signed by a pinned key was dropped", fragment_id)
        store.drop_proposal(fragment_id)
        return store.get(fragment_id)
    if (
        statement.holder_org_id != organisation
        or statement.fragment_id != held.fragment_id
        or statement.job_id != held.job_id
        or statement.job_sha256 != held.job_sha256
        or statement.outputs_sha256 != held.outputs_sha256
    ):
        log.warning("fragment %s: a review of other outputs was dropped", fragment_id)
        store.drop_proposal(fragment_id)
        return store.get(fragment_id)
    state = RELEASED if statement.decision == "release" else REJECTED
    store.decide(fragment_id, state, statement.reason, statement.reviewer, now)
    return store.get(fragment_id)


def outcome_of(store: HeldOutputs, held: Held) -> HeldOutcome:
    """What the gateway is told of ``held``: the state, and the files once decided (their
    content only once released)."""
    files: tuple[HeldFile, ...] = ()
    if held.state != HELD:
        files = tuple(
            HeldFile(
                f.kind,
                f.path,
                f.size,
                f.sha256,
                store.read(held, f.path) if held.state == RELEASED else b"",
            )
            for f in held.files
        )
    return HeldOutcome(
        fragment_id=held.fragment_id,
        state=held.state,
        reason=held.reason,
        reviewer=held.reviewer,
        review_statement=held.review_statement,
        review_signature=held.review_signature,
        outputs_sha256=held.outputs_sha256,
        detail=json.dumps(held.detail, sort_keys=True),
        files=files,
    )
