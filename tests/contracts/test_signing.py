"""Signed licences: offer, countersignature, verification and key encodings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts import (
    SIGNATURE_SIZE,
    KeyPair,
    LicenceError,
    LicenceTerms,
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
from tests.contracts.test_terms import make

IN_FORCE = datetime(2025, 6, 1, tzinfo=UTC)
HOLDER = generate_keypair()
OPERATOR = generate_keypair()
STRANGER = generate_keypair()


def agreement(terms: LicenceTerms | None = None) -> tuple[LicenceTerms, bytes, bytes]:
    terms = terms or make()
    offer = sign_offer(terms, HOLDER.private_key)
    accept = countersign(terms, offer, OPERATOR.private_key, holder_public_key=HOLDER.public_key)
    return terms, offer, accept


def refusal(
    terms: LicenceTerms,
    offer: bytes,
    accept: bytes,
    *,
    holder: KeyPair = HOLDER,
    operator: KeyPair = OPERATOR,
    now: datetime = IN_FORCE,
    revoked: bool = False,
) -> str:
    with pytest.raises(LicenceError) as caught:
        verify_agreement(
            terms, offer, accept, holder.public_key, operator.public_key, now=now, revoked=revoked
        )
    return caught.value.code


def test_round_trip() -> None:
    terms, offer, accept = agreement()
    assert len(offer) == len(accept) == SIGNATURE_SIZE
    verify_offer(terms, offer, HOLDER.public_key)
    verify_agreement(terms, offer, accept, HOLDER.public_key, OPERATOR.public_key, now=IN_FORCE)


def test_tampered_terms() -> None:
    terms, offer, accept = agreement()
    for changed in (
        terms.model_copy(update={"job_cap": 5000}),
        terms.model_copy(update={"asset_ids": ("admissions", "claims", "deaths")}),
        terms.model_copy(update={"valid_until": terms.valid_until + timedelta(days=365)}),
    ):
        assert refusal(changed, offer, accept) == "tampered"


def test_forged_signatures() -> None:
    terms, offer, accept = agreement()
    forged_offer = sign_offer(terms, STRANGER.private_key)
    assert refusal(terms, forged_offer, accept) == "bad_signature"
    forged_accept = countersign(terms, offer, STRANGER.private_key)
    assert refusal(terms, offer, forged_accept) == "bad_signature"
    assert refusal(terms, offer, accept, holder=STRANGER) == "bad_signature"
    assert refusal(terms, offer, accept, operator=HOLDER) == "bad_signature"
    assert refusal(terms, accept, offer) == "bad_signature"


def test_acceptance_binds_the_exact_offer() -> None:
    terms, offer, accept = agreement()
    assert sign_offer(terms, HOLDER.private_key) == offer  # Ed25519 is deterministic
    other_offer = sign_offer(terms, STRANGER.private_key)
    verify_offer(terms, other_offer, STRANGER.public_key)
    assert refusal(terms, other_offer, accept, holder=STRANGER) == "bad_signature"


def test_digest_swap_is_detected() -> None:
    terms, offer, accept = agreement()
    other = make(job_cap=1)
    swapped = sign_offer(other, HOLDER.private_key)[:32] + offer[32:]
    assert refusal(terms, swapped, accept) == "bad_signature"


@pytest.mark.parametrize("which", ["offer", "accept"])
@settings(max_examples=60, deadline=None)
@given(position=st.integers(0, SIGNATURE_SIZE - 1), bit=st.integers(0, 7))
def test_any_bit_flip_is_refused(which: str, position: int, bit: int) -> None:
    terms, offer, accept = agreement()
    target = bytearray(offer if which == "offer" else accept)
    target[position] ^= 1 << bit
    spoiled = bytes(target)
    code = refusal(terms, spoiled, accept) if which == "offer" else refusal(terms, offer, spoiled)
    assert code == "bad_signature"


@pytest.mark.parametrize("bad", [b"", b"\x00" * 64, b"\x00" * 97, "not bytes", None])
def test_malformed_signatures(bad: object) -> None:
    terms, offer, accept = agreement()
    assert refusal(terms, bad, accept) == "bad_signature"  # type: ignore[arg-type]
    assert refusal(terms, offer, bad) == "bad_signature"  # type: ignore[arg-type]


def test_validity_period() -> None:
    terms, offer, accept = agreement()
    start, end = terms.valid_from, terms.valid_until
    verify_agreement(terms, offer, accept, HOLDER.public_key, OPERATOR.public_key, now=start)
    assert refusal(terms, offer, accept, now=start - timedelta(microseconds=1)) == "not_yet_valid"
    assert refusal(terms, offer, accept, now=end) == "expired"
    assert refusal(terms, offer, accept, now=end - timedelta(microseconds=1), revoked=True) == (
        "revoked"
    )


def test_signatures_are_checked_before_dates() -> None:
    terms, _, accept = agreement()
    forged = sign_offer(terms, STRANGER.private_key)
    assert refusal(terms, forged, accept, now=terms.valid_until, revoked=True) == "bad_signature"


def test_naive_now_is_an_error() -> None:
    terms, offer, accept = agreement()
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_agreement(
            terms, offer, accept, HOLDER.public_key, OPERATOR.public_key, now=datetime(2025, 6, 1)
        )


def test_countersign_refuses_bad_offers() -> None:
    terms, offer, _ = agreement()
    forged = sign_offer(terms, STRANGER.private_key)
    with pytest.raises(LicenceError) as caught:
        countersign(terms, forged, OPERATOR.private_key, holder_public_key=HOLDER.public_key)
    assert caught.value.code == "bad_signature"
    other = make(job_cap=1)
    for key in (HOLDER.public_key, None):
        with pytest.raises(LicenceError) as caught:
            countersign(other, offer, OPERATOR.private_key, holder_public_key=key)
        assert caught.value.code == "tampered"
    with pytest.raises(LicenceError) as caught:
        countersign(terms, offer[:10], OPERATOR.private_key)
    assert caught.value.code == "bad_signature"


def test_wrong_key_type() -> None:
    terms, offer, accept = agreement()
    ec_public = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(LicenceError) as caught:
        verify_agreement(terms, offer, accept, ec_public, OPERATOR.public_key, now=IN_FORCE)  # type: ignore[arg-type]
    assert caught.value.code == "bad_key"


def test_public_key_encoding() -> None:
    text = encode_public_key(HOLDER.public_key)
    assert len(text) == 44
    assert encode_public_key(decode_public_key(text)) == text
    for bad in ("", "not base64!", "AAAA", text[:-4], text + "AAAA"):
        with pytest.raises(LicenceError) as caught:
            decode_public_key(bad)
        assert caught.value.code == "bad_key"


def test_private_key_pem() -> None:
    pem = private_key_to_pem(HOLDER.private_key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = private_key_from_pem(pem)
    assert encode_public_key(again.public_key()) == encode_public_key(HOLDER.public_key)

    locked = private_key_to_pem(HOLDER.private_key, password=b"correct horse")
    assert locked.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert encode_public_key(
        private_key_from_pem(locked, b"correct horse").public_key()
    ) == encode_public_key(HOLDER.public_key)

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    for data, password in ((locked, b"wrong"), (locked, None), (b"garbage", None), (ec_pem, None)):
        with pytest.raises(LicenceError) as caught:
            private_key_from_pem(data, password)
        assert caught.value.code == "bad_key"


def test_fresh_keys_differ() -> None:
    a, b = generate_keypair(), generate_keypair()
    assert encode_public_key(a.public_key) != encode_public_key(b.public_key)
