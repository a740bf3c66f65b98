"""Tickets minted as a gateway would send them, signed with a holder key held here.

For benchmarks and tests that talk to a site agent without a gateway: a :class:`Minter`
holds a holder organisation's key, its policy for one asset and that asset's columns, and
mints tickets, approvals and revocations; every field can be spoiled to play a hostile or
careless gateway.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import LicenceTerms, canonical_bytes, encode_public_key, sign_offer
from contracts.tickets import (
    ApprovalStatement,
    JobStatement,
    RevocationStatement,
    SignedApproval,
    SignedLicence,
    SignedPolicy,
    SignedRevocation,
    Ticket,
    encode_ticket,
    policy_statement,
    sign_statement,
)
from sandbox.wire import FragmentRequest, RequestedLimits

_counter = itertools.count()


def asset_id(local_ref: str) -> str:
    """The gateway's id of an asset the site calls ``local_ref`` (what policies name)."""
    return f"ast_{local_ref}".replace("-", "_")


def fresh_id(prefix: str = "frag") -> str:
    return f"{prefix}-{time.monotonic_ns()}-{next(_counter)}"


@dataclass
class Minter:
    """Mints tickets; every field can be spoiled to play a hostile or careless gateway."""

    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    organisation: str = "org_holder"
    operator: str = "org_operator"
    policy: str = ""
    columns: list[tuple[str, str, str]] = field(default_factory=list)
    asset_name: str = "admissions"
    privacy_unit: str = "patient_id"
    licence_id: str = "lic-1"
    default_sql: str = ""
    local_ref: str = "admissions"
    """The asset's name in the site's configuration (tickets may name another)."""
    signed_at: datetime | None = None

    def holder_section(self) -> dict[str, Any]:
        """``site.yaml``'s ``holder`` section for an agent that trusts this minter's key."""
        return {
            "organisation": self.organisation,
            "keys": [encode_public_key(self.key.public_key())],
        }

    def licence(self, asset: str, **over: Any) -> SignedLicence:
        now = datetime.now(UTC).replace(microsecond=0)
        data: dict[str, Any] = {
            "licence_id": self.licence_id,
            "holder_org_id": self.organisation,
            "operator_org_id": self.operator,
            "asset_ids": [asset],
            "purposes": ["research"],
            "job_kinds": ["sql_aggregate", "he_aggregate", "he_linear", "python_test"],
            "valid_from": now - timedelta(days=1),
            "valid_until": now + timedelta(days=30),
            "fee": {"amount": "0", "currency": "CNY"},
        }
        terms = LicenceTerms.model_validate({**data, **over})
        signature = sign_offer(terms, self.key)
        return SignedLicence(
            terms=canonical_bytes(terms).decode(),
            holder_signature=base64.b64encode(signature).decode(),
        )

    def signed_policy(self, asset: str, document: str | None = None) -> SignedPolicy:
        document = self.policy if document is None else document
        statement = policy_statement(
            holder_org_id=self.organisation,
            asset_id=asset,
            asset_name=self.asset_name,
            privacy_unit=self.privacy_unit,
            columns=self.columns,
            document=document,
            signed_at=self.signed_at or datetime.now(UTC),
        )
        return SignedPolicy(
            statement=statement, document=document, signature=sign_statement(statement, self.key)
        )

    def job(
        self,
        *,
        kind: str,
        sql: str = "",
        spec: dict[str, Any] | None = None,
        asset: str,
        epsilon: float = 1.0,
        delta: float = 0.0,
        job_id: str | None = None,
    ) -> JobStatement:
        return JobStatement(
            id=job_id or fresh_id("job"),
            kind=kind,
            operator_org_id=self.operator,
            sql=sql,
            spec=spec,
            purpose="research",
            epsilon=epsilon,
            delta=delta,
            asset_ids=(asset,),
            licence_ids=(self.licence_id,),
            submitted_at=datetime.now(UTC),
        )

    def ticket(
        self,
        *,
        kind: str = "sql_aggregate",
        sql: str | None = None,
        spec: dict[str, Any] | None = None,
        local_ref: str | None = None,
        fragment_id: str | None = None,
        epsilon: float = 1.0,
        delta: float = 0.0,
        issued: datetime | None = None,
        lifetime: timedelta = timedelta(minutes=10),
        licences: tuple[SignedLicence, ...] | None = None,
        approvals: tuple[SignedApproval, ...] = (),
        revocations: tuple[SignedRevocation, ...] = (),
        attachments: dict[str, str] | None = None,
        policy: SignedPolicy | None = None,
        job: JobStatement | None = None,
    ) -> Ticket:
        local_ref = local_ref or self.local_ref
        asset = asset_id(local_ref)
        issued = issued or datetime.now(UTC)
        return Ticket(
            fragment_id=fragment_id or fresh_id(),
            asset_id=asset,
            local_ref=local_ref,
            job=job
            or self.job(
                kind=kind,
                sql=self.default_sql if sql is None else sql,
                spec=spec,
                asset=asset,
                epsilon=epsilon,
                delta=delta,
            ),
            policy=policy or self.signed_policy(asset),
            licences=licences if licences is not None else (self.licence(asset),),
            approvals=approvals,
            revocations=revocations,
            attachments=attachments or {},
            issued_at=issued,
            expires_at=issued + lifetime,
        )

    def approval(self, ticket: Ticket, principal: str = "p1") -> SignedApproval:
        statement = ApprovalStatement(
            holder_org_id=self.organisation,
            principal_id=principal,
            job_id=ticket.job.id,
            job_sha256=ticket.job.digest,
            signed_at=datetime.now(UTC),
        )
        return SignedApproval(statement=statement, signature=sign_statement(statement, self.key))

    def revocation(self, licence_id: str | None = None) -> SignedRevocation:
        statement = RevocationStatement(
            holder_org_id=self.organisation,
            licence_id=licence_id or self.licence_id,
            signed_at=datetime.now(UTC),
        )
        return SignedRevocation(statement=statement, signature=sign_statement(statement, self.key))


def request(ticket: Ticket, **fields: Any) -> FragmentRequest:
    """The ticket as a RunFragment request."""
    limits = fields.pop("limits", RequestedLimits())
    return FragmentRequest(
        fragment_id=ticket.fragment_id, ticket=encode_ticket(ticket), limits=limits, **fields
    )


def release_of(outcome: Any) -> dict[str, Any]:
    """How the site said it noised its partials."""
    meta: dict[str, Any] = json.loads(outcome.release)
    return meta
