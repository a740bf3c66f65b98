"""What a site needs to decide a job for itself: the job as submitted, and the holder's
signed statements about it.

A **ticket** is what the gateway sends a site agent for one fragment: the operator's job
exactly as submitted (its SQL or HE specification), the licences covering the site's asset
(signed by the holder), the holder's signed policy for the asset, the holder's signed
approvals of the job and signed licence revocations.  The agent verifies every holder
signature against the keys pinned in its own configuration; it trusts nothing else the
gateway says.

Holder statements are Ed25519 signatures over domain-separated canonical JSON (sorted
keys, no insignificant whitespace, UTF-8), so that a signature made for one purpose can
never be replayed for another:

* a policy: ``b"blindgate/policy/v1\\0" + canonical(PolicyStatement)`` — the asset's id,
  name, privacy unit and column schema, the SHA-256 of the policy document and when it was
  signed (a site refuses a policy older than the newest it has seen for the asset);
* an approval: ``b"blindgate/approval/v1\\0" + canonical(ApprovalStatement)`` — the job's
  digest, the approving principal and the holder organisation;
* a revocation: ``b"blindgate/revocation/v1\\0" + canonical(RevocationStatement)``;
* a review of a Python job's outputs held at a site:
  ``b"blindgate/review/v1\\0" + canonical(ReviewStatement)``.

Licence offers are signed as in :mod:`contracts.signing`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from contracts.errors import LicenceError
from contracts.terms import rfc3339_utc

POLICY_CONTEXT: Final = b"blindgate/policy/v1\x00"
APPROVAL_CONTEXT: Final = b"blindgate/approval/v1\x00"
REVOCATION_CONTEXT: Final = b"blindgate/revocation/v1\x00"
REVIEW_CONTEXT: Final = b"blindgate/review/v1\x00"
MAX_TICKET_BYTES: Final = 24 * 1024 * 1024

Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, datetime):
        return rfc3339_utc(value)
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def canonical(model: BaseModel) -> bytes:
    """The deterministic bytes of ``model`` that signatures and digests cover."""
    return json.dumps(
        _plain(model), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# statements a holder signs ------------------------------------------------------------
class PolicyStatement(_Frozen):
    """A holder's policy for one asset, with the asset's schema as the holder registered it.

    The schema travels signed because a site decides with it: the privacy unit bounds each
    person's rows, and the column tags decide what may be released.
    """

    version: Literal[1] = 1
    holder_org_id: Text
    asset_id: Text
    asset_name: Text
    privacy_unit: Text
    columns: tuple[tuple[str, str, str], ...] = Field(min_length=1, max_length=4096)
    """(name, type, tag) of every column."""
    document_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: AwareDatetime


class ApprovalStatement(_Frozen):
    """A holder principal's approval of one job, signed with the organisation's key."""

    version: Literal[1] = 1
    holder_org_id: Text
    principal_id: Text
    job_id: Text
    job_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    signed_at: AwareDatetime


class RevocationStatement(_Frozen):
    """A holder's revocation of one licence: permanent at every site that sees it."""

    version: Literal[1] = 1
    holder_org_id: Text
    licence_id: Text
    signed_at: AwareDatetime


class ReviewStatement(_Frozen):
    """A holder's review of the outputs a Python job left at one site: release them to
    the operator, or reject them with a reason the operator is shown.

    ``outputs_sha256`` is the SHA-256 of the held outputs' manifest (``sha256sum`` form),
    so a signature releases exactly the files the reviewer saw.
    """

    version: Literal[1] = 1
    holder_org_id: Text
    reviewer: Text
    fragment_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    job_id: Text
    job_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    outputs_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    decision: Literal["release", "reject"]
    reason: str = Field(default="", max_length=1000)
    signed_at: AwareDatetime


_CONTEXTS: Final = {
    PolicyStatement: POLICY_CONTEXT,
    ApprovalStatement: APPROVAL_CONTEXT,
    RevocationStatement: REVOCATION_CONTEXT,
    ReviewStatement: REVIEW_CONTEXT,
}

Statement = PolicyStatement | ApprovalStatement | RevocationStatement | ReviewStatement


def sign_statement(statement: Statement, key: Ed25519PrivateKey) -> str:
    """The holder's signature on ``statement`` (standard base64 of 64 bytes)."""
    raw = key.sign(_CONTEXTS[type(statement)] + canonical(statement))
    return base64.b64encode(raw).decode("ascii")


def verify_statement(
    statement: Statement, signature: str, keys: tuple[Ed25519PublicKey, ...]
) -> None:
    """Check that one of ``keys`` signed ``statement``; raises ``LicenceError``."""
    try:
        raw = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise LicenceError("bad_signature", "a signature is standard base64") from exc
    message = _CONTEXTS[type(statement)] + canonical(statement)
    for key in keys:
        try:
            key.verify(raw, message)
        except InvalidSignature:
            continue
        return
    raise LicenceError("bad_signature", "no pinned key signed this statement")


# the job as submitted -----------------------------------------------------------------
class JobStatement(_Frozen):
    """An operator's job exactly as submitted (the gateway stores and forwards it)."""

    version: Literal[1] = 1
    id: Text
    kind: Text
    operator_org_id: Text
    sql: str = Field(default="", max_length=20_000)
    spec: dict[str, Any] | None = None
    purpose: Text
    epsilon: float = Field(ge=0)
    """More than 0 for every kind but ``python``, which spends none (the policy engine
    refuses any other combination)."""
    delta: float = Field(ge=0, lt=1)
    asset_ids: tuple[Text, ...] = Field(min_length=1, max_length=50)
    licence_ids: tuple[Text, ...] = Field(max_length=50)
    submitted_at: AwareDatetime

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical job: what approvals sign."""
        return sha256_hex(canonical(self))


# the ticket ---------------------------------------------------------------------------
class SignedPolicy(_Frozen):
    statement: PolicyStatement
    document: str = Field(max_length=256 * 1024)
    signature: str


class SignedLicence(_Frozen):
    """A licence as the holder offered it: its canonical terms and the offer signature."""

    terms: str = Field(max_length=64 * 1024)
    """The canonical terms (as :func:`contracts.terms.canonical_bytes`, UTF-8 text)."""
    holder_signature: str


class SignedApproval(_Frozen):
    statement: ApprovalStatement
    signature: str


class SignedRevocation(_Frozen):
    statement: RevocationStatement
    signature: str


class Ticket(_Frozen):
    """One fragment of one job for one site, with everything the site checks."""

    version: Literal[1] = 1
    fragment_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    asset_id: Text
    """The gateway's id of the asset at this site (the policy names it)."""
    local_ref: Text
    """The asset's name in the site's own configuration."""
    job: JobStatement
    policy: SignedPolicy
    licences: tuple[SignedLicence, ...] = Field(max_length=50)
    approvals: tuple[SignedApproval, ...] = Field(default=(), max_length=100)
    revocations: tuple[SignedRevocation, ...] = Field(default=(), max_length=1000)
    attachments: dict[str, str] = Field(default_factory=dict)
    """Inputs the job carries besides its specification (base64), by name."""
    issued_at: AwareDatetime
    expires_at: AwareDatetime


def encode_ticket(ticket: Ticket) -> bytes:
    """The ticket's canonical bytes (what travels, and what the site logs by digest)."""
    return canonical(ticket)


def decode_ticket(data: bytes) -> Ticket:
    """Parse a ticket; anything malformed raises ``LicenceError('invalid_ticket')``."""
    if len(data) > MAX_TICKET_BYTES:
        raise LicenceError("invalid_ticket", "the ticket is too large")
    try:
        return Ticket.model_validate(json.loads(data.decode("utf-8")))
    except (UnicodeDecodeError, ValueError, ValidationError) as exc:
        raise LicenceError("invalid_ticket", "the ticket cannot be read") from exc


def policy_statement(
    *,
    holder_org_id: str,
    asset_id: str,
    asset_name: str,
    privacy_unit: str,
    columns: list[tuple[str, str, str]],
    document: str,
    signed_at: datetime,
) -> PolicyStatement:
    """The statement a holder signs for a policy document on one asset."""
    return PolicyStatement(
        holder_org_id=holder_org_id,
        asset_id=asset_id,
        asset_name=asset_name,
        privacy_unit=privacy_unit,
        columns=tuple(columns),
        document_sha256=sha256_hex(document.encode("utf-8")),
        signed_at=signed_at,
    )


def job_statement(job: dict[str, Any]) -> JobStatement:
    """A job as both the gateway and a holder's client read it (from the job's fields:
    ``id``, ``kind``, ``operator_org_id``, ``sql``, ``spec``, ``purpose``, ``epsilon``,
    ``delta``, ``assets``, ``licence_ids``, ``created_at``), so that a holder signs the
    digest of the job it was shown."""
    return JobStatement(
        id=job["id"],
        kind=job["kind"],
        operator_org_id=job["operator_org_id"],
        sql=job.get("sql") or "",
        spec=job.get("spec"),
        purpose=job["purpose"],
        epsilon=job["epsilon"],
        delta=job["delta"],
        asset_ids=tuple(job["assets"]),
        licence_ids=tuple(job.get("licence_ids") or ()),
        submitted_at=job["created_at"],
    )
