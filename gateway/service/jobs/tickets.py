"""Tickets: what the gateway sends a site for one fragment of a job.

A site decides for itself, so the gateway sends it the job exactly as the operator
submitted it and the holder's own signed statements: the asset's signed policy, the
licences the holder offered on the asset, the holder's signed approvals of this job and
its signed licence revocations (see :mod:`contracts.tickets`).  Nothing in a ticket needs
the site to trust the gateway: everything it acts on is either the operator's job (which
it judges under its holder's policy and its own ledger) or signed by its holder.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Final

from contracts.terms import terms_from_canonical
from contracts.tickets import (
    ApprovalStatement,
    PolicyStatement,
    RevocationStatement,
    SignedApproval,
    SignedLicence,
    SignedPolicy,
    SignedRevocation,
    Ticket,
)
from gateway.domain import Asset, Job, LicenceStatus
from gateway.service.jobs.kind import FailureCode, JobFailed, SiteStep
from gateway.service.jobs.support import statement_of
from gateway.store import Tx

TICKET_LIFETIME: Final = timedelta(minutes=30)
"""How long a site accepts a ticket after it was issued (a queued retry gets a new one)."""
MAX_REVOCATIONS: Final = 1000


def fragment_id(job: Job, asset: Asset) -> str:
    """The fragment's id: one per job, asset and attempt.  Calls retried within an attempt
    carry the same ticket, so a site runs it at most once; a job taken over after its
    runner died is a new attempt, which the site judges and charges anew."""
    return f"{job.id}.{asset.id}.{job.attempts}"


def ticket_for(tx: Tx, job: Job, step: SiteStep, now: datetime) -> Ticket:
    """The ticket of ``step``'s fragment; a policy its holder never signed fails the job."""
    asset = step.asset
    stored = tx.get_policy(asset.id)
    if stored is None or stored.statement is None or stored.signature is None:
        raise JobFailed(FailureCode.POLICY_UNSIGNED)
    licences = []
    for licence_id in job.licence_ids:
        licence = tx.get_licence(licence_id)
        if licence is None or licence.holder_org_id != asset.org_id:
            continue
        if asset.id in terms_from_canonical(licence.terms.encode()).asset_ids:
            licences.append(
                SignedLicence(terms=licence.terms, holder_signature=licence.holder_signature)
            )
    approvals = [
        SignedApproval(
            statement=ApprovalStatement.model_validate_json(vote["statement"]),
            signature=vote["signature"],
        )
        for vote in job.approvals
        if vote.get("org") == asset.org_id and vote.get("signature") and vote.get("statement")
    ]
    revocations = [
        SignedRevocation(
            statement=RevocationStatement.model_validate_json(revocation["statement"]),
            signature=revocation["signature"],
        )
        for licence in tx.list_licences(holder_org_id=asset.org_id)
        if licence.status == LicenceStatus.REVOKED and licence.revocation
        for revocation in [json.loads(licence.revocation)]
    ][-MAX_REVOCATIONS:]
    return Ticket(
        fragment_id=fragment_id(job, asset),
        asset_id=asset.id,
        local_ref=asset.local_ref,
        job=statement_of(job),
        policy=SignedPolicy(
            statement=PolicyStatement.model_validate_json(stored.statement),
            document=stored.document,
            signature=stored.signature,
        ),
        licences=tuple(licences),
        approvals=tuple(approvals),
        revocations=tuple(revocations),
        attachments=step.attachments,
        issued_at=now,
        expires_at=now + TICKET_LIFETIME,
    )
