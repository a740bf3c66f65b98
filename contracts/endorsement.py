"""A holder's endorsement of its site agent, and the agent's proof of possession.

A site agent has an Ed25519 identity key of its own.  Its holder organisation endorses that
key with the organisation's signing key (the key it registers at the gateway and signs
licences with), naming the organisation and, optionally, the site::

    {"terms": {"version": 1, "organisation": "org_…", "agent_key": "<base64>",
               "name": "north-site", "issued_at": "2026-05-01T08:00:00Z"},
     "signature": "<base64 of the 64-byte Ed25519 signature>"}

The signature covers ``b"blindgate/site-endorsement/v1\\0" + canonical(terms)``, where the
canonical form is JSON with sorted keys, no whitespace, UTF-8 and the time in RFC 3339 UTC.

When a site is registered the agent proves it holds the endorsed key by signing a fresh
challenge together with its TLS certificate's fingerprint and its endorsement::

    Ed25519(b"blindgate/site-proof/v1\\0" + challenge + SHA-256(DER certificate)
            + SHA-256(canonical(endorsement)))

so a proof is valid for one challenge, one certificate and one endorsement only.  Nothing
here reads files, clocks or the network.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.terms import rfc3339_utc

ENDORSEMENT_CONTEXT: Final = b"blindgate/site-endorsement/v1\x00"
PROOF_CONTEXT: Final = b"blindgate/site-proof/v1\x00"
CHALLENGE_SIZE: Final = 32
SIGNATURE_BYTES: Final = 64
MAX_DOCUMENT_BYTES: Final = 16 * 1024
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")

EndorsementErrorCode = Literal[
    "malformed", "bad_key", "bad_signature", "wrong_organisation", "wrong_agent", "bad_proof"
]

ENDORSEMENT_ERROR_CODES: Final[dict[EndorsementErrorCode, str]] = {
    "malformed": "The endorsement is not a readable endorsement document.",
    "bad_key": "A key could not be read or is not an Ed25519 key.",
    "bad_signature": "The endorsement was not signed by any of the expected keys.",
    "wrong_organisation": "The endorsement names another organisation.",
    "wrong_agent": "The endorsement names another agent key.",
    "bad_proof": "The agent's signature over the challenge does not verify.",
}


class EndorsementError(Exception):
    """An endorsement or proof was refused; ``code`` says why."""

    def __init__(self, code: EndorsementErrorCode, detail: str | None = None) -> None:
        self.code: EndorsementErrorCode = code
        self.detail = detail or ENDORSEMENT_ERROR_CODES[code]
        super().__init__(f"{code}: {self.detail}")


def _raw(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def encode_agent_key(public_key: Ed25519PublicKey) -> str:
    """Standard base64 of the raw 32-byte public key."""
    return base64.b64encode(_raw(public_key)).decode("ascii")


def decode_agent_key(text: str) -> Ed25519PublicKey:
    """Inverse of :func:`encode_agent_key`; raises ``EndorsementError('bad_key')``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        if len(raw) != 32:
            raise ValueError("wrong length")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise EndorsementError("bad_key", "not a base64 raw Ed25519 public key") from exc


def _check_key_text(value: str) -> str:
    decode_agent_key(value)
    return value


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class EndorsementTerms(_Frozen):
    """What the holder vouches for: this agent key belongs to this organisation."""

    version: Literal[1] = 1
    organisation: Annotated[str, Field(min_length=1, max_length=200)]
    agent_key: str
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    issued_at: AwareDatetime

    @field_validator("agent_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            return _check_key_text(value)
        except EndorsementError as exc:
            raise ValueError(exc.detail) from None


class Endorsement(_Frozen):
    """Signed terms, as kept in the agent's ``endorsement.json``."""

    terms: EndorsementTerms
    signature: str

    @field_validator("signature")
    @classmethod
    def _signature(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise ValueError("the signature is not base64") from exc
        if len(raw) != SIGNATURE_BYTES:
            raise ValueError(f"the signature is {SIGNATURE_BYTES} bytes")
        return value


def _plain_terms(terms: EndorsementTerms) -> dict[str, object]:
    plain: dict[str, object] = {
        "version": terms.version,
        "organisation": terms.organisation,
        "agent_key": terms.agent_key,
        "issued_at": rfc3339_utc(terms.issued_at),
    }
    if terms.name is not None:
        plain["name"] = terms.name
    return plain


def _dumps(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def terms_bytes(terms: EndorsementTerms) -> bytes:
    """The canonical bytes the holder's signature covers (after the context)."""
    return _dumps(_plain_terms(terms))


def canonical_endorsement(endorsement: Endorsement) -> bytes:
    """The canonical bytes of the whole signed document (what a proof binds)."""
    return _dumps({"terms": _plain_terms(endorsement.terms), "signature": endorsement.signature})


def endorsement_digest(endorsement: Endorsement) -> bytes:
    """SHA-256 of :func:`canonical_endorsement` (32 bytes)."""
    return hashlib.sha256(canonical_endorsement(endorsement)).digest()


def endorse(
    organisation: str,
    agent_key: Ed25519PublicKey | str,
    holder_key: Ed25519PrivateKey,
    *,
    issued_at: datetime,
    name: str | None = None,
) -> Endorsement:
    """The holder's signed endorsement of ``agent_key`` for ``organisation``."""
    text = agent_key if isinstance(agent_key, str) else encode_agent_key(agent_key)
    try:
        terms = EndorsementTerms(
            organisation=organisation, agent_key=text, name=name, issued_at=issued_at
        )
    except ValidationError as exc:
        raise EndorsementError("malformed", _first_error(exc)) from None
    signature = holder_key.sign(ENDORSEMENT_CONTEXT + terms_bytes(terms))
    return Endorsement(terms=terms, signature=base64.b64encode(signature).decode("ascii"))


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def parse_endorsement(data: bytes | str) -> Endorsement:
    """Read an endorsement document (any JSON layout); raises ``EndorsementError``."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise EndorsementError("malformed", "the endorsement document is too large")
    try:
        return Endorsement.model_validate_json(data)
    except ValidationError as exc:
        raise EndorsementError("malformed", _first_error(exc)) from None


def dump_endorsement(endorsement: Endorsement) -> bytes:
    """The endorsement as an indented JSON file (parses back to the same document)."""
    document = {"terms": _plain_terms(endorsement.terms), "signature": endorsement.signature}
    return json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def verify_endorsement(
    endorsement: Endorsement,
    holder_keys: Sequence[Ed25519PublicKey],
    *,
    organisation: str | None = None,
    agent_key: str | None = None,
) -> Ed25519PublicKey:
    """Check the endorsement was signed by one of ``holder_keys`` and, when given, names
    ``organisation`` and ``agent_key``.  Returns the key that signed it.

    Raises ``EndorsementError`` with code ``bad_signature``, ``wrong_organisation`` or
    ``wrong_agent`` (checked in that order).
    """
    message = ENDORSEMENT_CONTEXT + terms_bytes(endorsement.terms)
    signature = base64.b64decode(endorsement.signature)
    signer = None
    for key in holder_keys:
        try:
            key.verify(signature, message)
        except InvalidSignature:
            continue
        signer = key
        break
    if signer is None:
        raise EndorsementError("bad_signature")
    if organisation is not None and endorsement.terms.organisation != organisation:
        raise EndorsementError("wrong_organisation")
    if agent_key is not None and endorsement.terms.agent_key != agent_key:
        raise EndorsementError("wrong_agent")
    return signer


def _fingerprint(tls_fingerprint: str) -> bytes:
    text = tls_fingerprint.strip().lower().replace(":", "")
    if not _FINGERPRINT.match(text):
        raise EndorsementError("bad_proof", "a TLS fingerprint is 64 hex digits")
    return bytes.fromhex(text)


def proof_message(challenge: bytes, tls_fingerprint: str, endorsement: Endorsement) -> bytes:
    """What the agent signs to prove it holds the endorsed key, here and now."""
    if len(challenge) != CHALLENGE_SIZE:
        raise EndorsementError("bad_proof", f"a challenge is {CHALLENGE_SIZE} bytes")
    return (
        PROOF_CONTEXT + challenge + _fingerprint(tls_fingerprint) + endorsement_digest(endorsement)
    )


def sign_proof(
    agent_key: Ed25519PrivateKey,
    challenge: bytes,
    tls_fingerprint: str,
    endorsement: Endorsement,
) -> bytes:
    """The agent's 64-byte signature over :func:`proof_message`."""
    return agent_key.sign(proof_message(challenge, tls_fingerprint, endorsement))


def verify_proof(
    signature: bytes,
    challenge: bytes,
    tls_fingerprint: str,
    endorsement: Endorsement,
) -> None:
    """Check the proof was made by the endorsed agent key over exactly these values.

    Raises ``EndorsementError('bad_proof')``.
    """
    key = decode_agent_key(endorsement.terms.agent_key)
    try:
        key.verify(signature, proof_message(challenge, tls_fingerprint, endorsement))
    except InvalidSignature as exc:
        raise EndorsementError("bad_proof") from exc
