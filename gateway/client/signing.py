"""A holder's signatures, made where its key lives: on policies, approvals and revocations.

The gateway keeps them and forwards them to the holder's sites, which accept a policy, an
approval or a revocation only if the holder's pinned key signed it.  Each statement is
built here from what the holder was shown (the asset card, the job), so a holder never
signs something the gateway merely asserts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.tickets import (
    ApprovalStatement,
    RevocationStatement,
    job_statement,
    policy_statement,
    sign_statement,
)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def sign_policy(
    key: Ed25519PrivateKey, card: dict[str, Any], org_id: str, document: str
) -> dict[str, str]:
    """``{"signature", "signed_at"}`` for ``document`` on the asset of ``card``."""
    signed_at = _now()
    basic = card["basic"]
    statement = policy_statement(
        holder_org_id=org_id,
        asset_id=card["id"],
        asset_name=basic["name"],
        privacy_unit=basic["privacy_unit"],
        columns=[(c["name"], c["type"], c["tag"]) for c in basic["columns"]],
        document=document,
        signed_at=signed_at,
    )
    return {"signature": sign_statement(statement, key), "signed_at": signed_at.isoformat()}


def sign_approval(
    key: Ed25519PrivateKey, job: dict[str, Any], principal_id: str, org_id: str
) -> dict[str, str]:
    """``{"signature", "signed_at"}`` approving ``job`` (as the gateway showed it)."""
    signed_at = _now()
    statement = ApprovalStatement(
        holder_org_id=org_id,
        principal_id=principal_id,
        job_id=job["id"],
        job_sha256=job_statement(job).digest,
        signed_at=signed_at,
    )
    return {"signature": sign_statement(statement, key), "signed_at": signed_at.isoformat()}


def sign_revocation(key: Ed25519PrivateKey, licence_id: str, org_id: str) -> dict[str, str]:
    """``{"signature", "signed_at"}`` revoking ``licence_id``."""
    signed_at = _now()
    statement = RevocationStatement(
        holder_org_id=org_id, licence_id=licence_id, signed_at=signed_at
    )
    return {"signature": sign_statement(statement, key), "signed_at": signed_at.isoformat()}
