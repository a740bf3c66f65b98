"""Tickets and holder statements: canonical bytes, domain-separated signatures, tampering."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import LicenceError
from contracts.tickets import (
    ApprovalStatement,
    RevocationStatement,
    Ticket,
    canonical,
    decode_ticket,
    encode_ticket,
    job_statement,
    policy_statement,
    sign_statement,
    verify_statement,
)
from tests.agent.tickets import Minter

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _policy() -> object:
    return policy_statement(
        holder_org_id="org_a",
        asset_id="ast_1",
        asset_name="admissions",
        privacy_unit="patient_id",
        columns=[("patient_id", "text", "identifier"), ("los", "integer", "attribute")],
        document="version: 1\n",
        signed_at=AT,
    )


def _job(**over: object) -> dict[str, object]:
    return {
        "id": "job_1",
        "kind": "sql_aggregate",
        "operator_org_id": "org_op",
        "sql": "SELECT COUNT(*) AS n FROM admissions",
        "spec": None,
        "purpose": "research",
        "epsilon": 1.0,
        "delta": 0.0,
        "assets": ["ast_1"],
        "licence_ids": ["lic_1"],
        "created_at": AT,
        **over,
    }


def test_a_statement_verifies_under_its_key_only() -> None:
    statement = _policy()
    signature = sign_statement(statement, KEY)  # type: ignore[arg-type]
    verify_statement(statement, signature, (OTHER.public_key(), KEY.public_key()))  # type: ignore[arg-type]
    with pytest.raises(LicenceError, match="no pinned key"):
        verify_statement(statement, signature, (OTHER.public_key(),))  # type: ignore[arg-type]
    with pytest.raises(LicenceError, match="base64"):
        verify_statement(statement, "not base64!", (KEY.public_key(),))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"asset_id": "ast_2"},
        {"holder_org_id": "org_b"},
        {"document_sha256": "0" * 64},
        {"signed_at": AT + timedelta(seconds=1)},
        {"columns": (("patient_id", "text", "identifier"), ("los", "integer", "sensitive"))},
    ],
    ids=["asset", "holder", "document", "time", "column-tag"],
)
def test_any_change_to_a_signed_policy_breaks_its_signature(change: dict[str, object]) -> None:
    statement = _policy()
    signature = sign_statement(statement, KEY)  # type: ignore[arg-type]
    altered = statement.model_copy(update=change)  # type: ignore[attr-defined]
    with pytest.raises(LicenceError):
        verify_statement(altered, signature, (KEY.public_key(),))


def test_a_signature_for_one_kind_of_statement_never_serves_another() -> None:
    """Domain separation: the same fields signed as a revocation are not an approval."""
    revocation = RevocationStatement(holder_org_id="org_a", licence_id="lic_1", signed_at=AT)
    signature = sign_statement(revocation, KEY)
    approval = ApprovalStatement(
        holder_org_id="org_a",
        principal_id="lic_1",
        job_id="lic_1",
        job_sha256="0" * 64,
        signed_at=AT,
    )
    with pytest.raises(LicenceError):
        verify_statement(approval, signature, (KEY.public_key(),))
    raw = base64.b64decode(signature)
    KEY.public_key().verify(raw, b"blindgate/revocation/v1\x00" + canonical(revocation))


def test_the_job_digest_covers_every_field_the_site_decides_on() -> None:
    base = job_statement(_job()).digest
    assert job_statement(_job()).digest == base
    for change in (
        {"sql": "SELECT COUNT(*) AS n FROM admissions WHERE los > 3"},
        {"epsilon": 1.5},
        {"delta": 1e-9},
        {"assets": ["ast_1", "ast_2"]},
        {"purpose": "marketing"},
        {"operator_org_id": "org_other"},
        {"kind": "he_aggregate", "spec": {"groups": []}},
    ):
        assert job_statement(_job(**change)).digest != base, change


def test_a_ticket_round_trips_and_anything_else_is_invalid() -> None:
    ticket = Minter().ticket()
    data = encode_ticket(ticket)
    assert decode_ticket(data) == ticket
    assert encode_ticket(decode_ticket(data)) == data
    for bad in (
        b"",
        b"{}",
        b"\xff\xfe",
        b"[1, 2]",
        data[:-1],
        data.replace(b'"version":1', b'"version":2', 1),
    ):
        with pytest.raises(LicenceError) as caught:
            decode_ticket(bad)
        assert caught.value.code == "invalid_ticket"
    extra = data[:-1] + b',"unexpected":1}'
    with pytest.raises(LicenceError):
        decode_ticket(extra)


def test_a_ticket_names_a_well_formed_fragment_id() -> None:
    ticket = Minter().ticket()
    payload = ticket.model_dump()
    for bad in ("", "a/b", "x" * 129, "a b"):
        with pytest.raises(ValueError, match="fragment_id"):
            Ticket.model_validate({**payload, "fragment_id": bad})
