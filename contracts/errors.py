"""The one error type of the licence package, with a stable code."""

from __future__ import annotations

from typing import Final, Literal

LicenceErrorCode = Literal[
    "bad_signature",
    "tampered",
    "expired",
    "not_yet_valid",
    "revoked",
    "bad_key",
    "invalid_terms",
    "invalid_ticket",
]

#: Every code a :class:`LicenceError` can carry, with a public description.
LICENCE_ERROR_CODES: Final[dict[LicenceErrorCode, str]] = {
    "bad_signature": "A signature is malformed or was not made by the expected key.",
    "tampered": "A signature is genuine but was made over different licence terms.",
    "expired": "The licence is past its valid_until time.",
    "not_yet_valid": "The licence is before its valid_from time.",
    "revoked": "The licence has been revoked.",
    "bad_key": "A key could not be read or is not an Ed25519 key.",
    "invalid_terms": "The licence terms are malformed or not in canonical form.",
    "invalid_ticket": "A ticket is malformed.",
}


class LicenceError(Exception):
    """A licence or key was refused; ``code`` says why (see :data:`LICENCE_ERROR_CODES`)."""

    def __init__(self, code: LicenceErrorCode, detail: str | None = None) -> None:
        self.code: LicenceErrorCode = code
        self.detail = detail or LICENCE_ERROR_CODES[code]
        super().__init__(f"{code}: {self.detail}")
