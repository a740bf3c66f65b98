"""Blindgate licences: signed data-use agreements.

A holder offers :class:`LicenceTerms` with :func:`sign_offer`; the operator accepts
with :func:`countersign`; anyone holding both public keys checks the agreement with
:func:`verify_agreement`. Nothing here reads files, clocks or the network: keys are
passed as objects or bytes and ``now`` is passed in.
"""

from contracts.errors import LICENCE_ERROR_CODES, LicenceError, LicenceErrorCode
from contracts.signing import (
    ACCEPT_CONTEXT,
    OFFER_CONTEXT,
    SIGNATURE_SIZE,
    KeyPair,
    countersign,
    decode_public_key,
    encode_public_key,
    generate_keypair,
    private_key_from_pem,
    private_key_to_pem,
    sign_offer,
    verify_agreement,
    verify_offer,
)
from contracts.terms import (
    FeeTerms,
    LicenceTerms,
    canonical_bytes,
    rfc3339_utc,
    terms_digest,
    terms_from_canonical,
)

__all__ = [
    "ACCEPT_CONTEXT",
    "LICENCE_ERROR_CODES",
    "OFFER_CONTEXT",
    "SIGNATURE_SIZE",
    "FeeTerms",
    "KeyPair",
    "LicenceError",
    "LicenceErrorCode",
    "LicenceTerms",
    "canonical_bytes",
    "countersign",
    "decode_public_key",
    "encode_public_key",
    "generate_keypair",
    "private_key_from_pem",
    "private_key_to_pem",
    "rfc3339_utc",
    "sign_offer",
    "terms_digest",
    "terms_from_canonical",
    "verify_agreement",
    "verify_offer",
]
