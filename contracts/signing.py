"""Ed25519 signatures on licences: the holder offers, the operator countersigns.

A licence signature is 96 bytes: the 32-byte SHA-256 digest of the canonical terms it
was made over, then the 64-byte Ed25519 signature. Carrying the digest lets a verifier
tell a forged signature (``bad_signature``) from a genuine one over other terms
(``tampered``). Messages are domain-separated:

* holder: ``Ed25519(b"blindgate/licence-offer/v1\\0" + digest)``
* operator: ``Ed25519(b"blindgate/licence-accept/v1\\0" + digest + holder_signature)``

so the operator's signature also binds the exact offer it accepted.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Final, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.errors import LicenceError
from contracts.terms import LicenceTerms, terms_digest

OFFER_CONTEXT: Final = b"blindgate/licence-offer/v1\x00"
ACCEPT_CONTEXT: Final = b"blindgate/licence-accept/v1\x00"
DIGEST_SIZE: Final = 32
SIGNATURE_SIZE: Final = DIGEST_SIZE + 64
PUBLIC_KEY_SIZE: Final = 32


class KeyPair(NamedTuple):
    """An Ed25519 private key and its public key."""

    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey


def generate_keypair() -> KeyPair:
    """A fresh Ed25519 key pair from the operating system's random source."""
    private_key = Ed25519PrivateKey.generate()
    return KeyPair(private_key, private_key.public_key())


def encode_public_key(public_key: Ed25519PublicKey) -> str:
    """Standard base64 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def decode_public_key(text: str) -> Ed25519PublicKey:
    """Inverse of :func:`encode_public_key`; raises ``LicenceError('bad_key')``."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        if len(raw) != PUBLIC_KEY_SIZE:
            raise ValueError("wrong length")
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error, UnicodeEncodeError, AttributeError) as exc:
        raise LicenceError("bad_key", "not a base64 raw Ed25519 public key") from exc


def private_key_to_pem(private_key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM of the private key, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def private_key_from_pem(data: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """Read a PEM private key; raises ``LicenceError('bad_key')`` unless it is Ed25519."""
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise LicenceError("bad_key", "not a readable PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LicenceError("bad_key", "the PEM key is not an Ed25519 key")
    return key


def sign_offer(terms: LicenceTerms, holder_private_key: Ed25519PrivateKey) -> bytes:
    """The holder's 96-byte signature offering ``terms``."""
    digest = terms_digest(terms)
    return digest + holder_private_key.sign(OFFER_CONTEXT + digest)


def _check(
    signature: object, message_after_digest: bytes, context: bytes, key: object, digest: bytes
) -> None:
    """Verify one licence signature: first genuine, then over these terms."""
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise LicenceError("bad_signature", f"a licence signature is {SIGNATURE_SIZE} bytes")
    if not isinstance(key, Ed25519PublicKey):
        raise LicenceError("bad_key", "the public key is not an Ed25519 key")
    signed_digest, raw = signature[:DIGEST_SIZE], signature[DIGEST_SIZE:]
    try:
        key.verify(raw, context + signed_digest + message_after_digest)
    except InvalidSignature as exc:
        raise LicenceError("bad_signature") from exc
    if not hmac.compare_digest(signed_digest, digest):
        raise LicenceError("tampered")


def verify_offer(
    terms: LicenceTerms, holder_signature: bytes, holder_public_key: Ed25519PublicKey
) -> None:
    """Check the holder's signature on ``terms``; raises ``LicenceError``."""
    _check(holder_signature, b"", OFFER_CONTEXT, holder_public_key, terms_digest(terms))


def countersign(
    terms: LicenceTerms,
    holder_signature: bytes,
    operator_private_key: Ed25519PrivateKey,
    *,
    holder_public_key: Ed25519PublicKey | None = None,
) -> bytes:
    """The operator's 96-byte signature accepting the holder's offer of ``terms``.

    The offer is always checked to be over these terms; with ``holder_public_key`` it
    is fully verified first, so an operator never accepts a forged offer.
    """
    digest = terms_digest(terms)
    if holder_public_key is not None:
        _check(holder_signature, b"", OFFER_CONTEXT, holder_public_key, digest)
    elif not isinstance(holder_signature, bytes) or len(holder_signature) != SIGNATURE_SIZE:
        raise LicenceError("bad_signature", f"a licence signature is {SIGNATURE_SIZE} bytes")
    elif not hmac.compare_digest(holder_signature[:DIGEST_SIZE], digest):
        raise LicenceError("tampered")
    return digest + operator_private_key.sign(ACCEPT_CONTEXT + digest + holder_signature)


def verify_signatures(
    terms: LicenceTerms,
    holder_signature: bytes,
    operator_signature: bytes,
    holder_public_key: Ed25519PublicKey,
    operator_public_key: Ed25519PublicKey,
) -> None:
    """Check both signatures of an agreement under these keys (nothing about time or
    revocation); raises ``LicenceError`` (``bad_signature``, ``bad_key`` or ``tampered``)."""
    digest = terms_digest(terms)
    _check(holder_signature, b"", OFFER_CONTEXT, holder_public_key, digest)
    _check(operator_signature, holder_signature, ACCEPT_CONTEXT, operator_public_key, digest)


def verify_agreement(
    terms: LicenceTerms,
    holder_signature: bytes,
    operator_signature: bytes,
    holder_public_key: Ed25519PublicKey,
    operator_public_key: Ed25519PublicKey,
    *,
    now: datetime,
    revoked: bool = False,
) -> None:
    """Check a signed licence is genuine, unaltered, not revoked and in force at ``now``.

    Raises ``LicenceError`` with code ``bad_signature``, ``tampered``, ``revoked``,
    ``not_yet_valid`` or ``expired`` (checked in that order); returns ``None`` if the
    agreement holds. ``now`` must be timezone-aware.
    """
    verify_signatures(
        terms, holder_signature, operator_signature, holder_public_key, operator_public_key
    )
    if revoked:
        raise LicenceError("revoked")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    if now < terms.valid_from:
        raise LicenceError("not_yet_valid")
    if not now < terms.valid_until:
        raise LicenceError("expired")
