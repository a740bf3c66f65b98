"""Licences: signed offers, countersignatures, forgeries, expiry and revocation."""

from __future__ import annotations

from datetime import timedelta

from contracts import countersign, generate_keypair, sign_offer
from tests.governance.conftest import Gov, b64, terms_for, terms_json
from tests.world import client


def _offer(gov: Gov, url: str, terms, signature: bytes):
    return client(url, gov.world.holder_a_key).post(
        "/v1/licences", json={"terms": terms_json(terms), "holder_signature": b64(signature)}
    )


def test_active_licence_is_visible_to_both_parties_only(gov: Gov, gov_url: str) -> None:
    w = gov.world
    for key in (w.holder_a_key, w.operator_key, w.auditor_key):
        lic = client(gov_url, key).get(f"/v1/licences/{gov.licence_id}").json()
        assert lic["status"] == "active"
        assert lic["operator_signature"]
    assert client(gov_url, w.holder_b_key).get(f"/v1/licences/{gov.licence_id}").status_code == 404


def test_forged_offer_is_refused(gov: Gov, gov_url: str) -> None:
    terms = terms_for(gov.world, "lic-forged")
    forged = sign_offer(terms, generate_keypair().private_key)  # not the holder's key
    r = _offer(gov, gov_url, terms, forged)
    assert r.status_code == 422
    assert r.json()["error"]["detail"].startswith("bad_signature")


def test_tampered_terms_are_refused(gov: Gov, gov_url: str) -> None:
    signed = terms_for(gov.world, "lic-tampered")
    signature = sign_offer(signed, gov.holder_key)
    changed = terms_for(gov.world, "lic-tampered", epsilon_cap="1000")
    r = _offer(gov, gov_url, changed, signature)
    assert r.status_code == 422
    assert r.json()["error"]["detail"].startswith("tampered")


def test_expired_and_not_yet_valid(gov: Gov, gov_url: str) -> None:
    w = gov.world
    now = w.services.ctx.clock.now()
    old = terms_for(
        w, "lic-old", valid_from=now - timedelta(days=10), valid_until=now - timedelta(days=1)
    )
    r = _offer(gov, gov_url, old, sign_offer(old, gov.holder_key))
    assert r.status_code == 422
    future = terms_for(
        w, "lic-future", valid_from=now + timedelta(days=5), valid_until=now + timedelta(days=50)
    )
    hsig = sign_offer(future, gov.holder_key)
    assert _offer(gov, gov_url, future, hsig).status_code == 201
    osig = countersign(future, hsig, gov.operator_key)
    r = client(gov_url, w.operator_key).post(
        "/v1/licences/lic-future/accept", json={"operator_signature": b64(osig)}
    )
    assert r.status_code == 422
    assert r.json()["error"]["detail"].startswith("not_yet_valid")


def test_countersignature_by_wrong_key_or_party(gov: Gov, gov_url: str) -> None:
    w = gov.world
    terms = terms_for(w, "lic-2")
    hsig = sign_offer(terms, gov.holder_key)
    assert _offer(gov, gov_url, terms, hsig).status_code == 201
    stranger = countersign(terms, hsig, generate_keypair().private_key)
    r = client(gov_url, w.operator_key).post(
        "/v1/licences/lic-2/accept", json={"operator_signature": b64(stranger)}
    )
    assert r.status_code == 422
    good = countersign(terms, hsig, gov.operator_key)
    r = client(gov_url, w.holder_b_key).post(
        "/v1/licences/lic-2/accept", json={"operator_signature": b64(good)}
    )
    assert r.status_code == 404
    r = client(gov_url, w.operator_key).post(
        "/v1/licences/lic-2/accept", json={"operator_signature": b64(good)}
    )
    assert r.json()["status"] == "active"


def test_holder_cannot_offer_another_holders_asset(gov: Gov, gov_url: str) -> None:
    terms = terms_for(gov.world, "lic-b", asset_ids=[gov.world.asset_b])
    r = _offer(gov, gov_url, terms, sign_offer(terms, gov.holder_key))
    assert r.status_code == 404


def test_revocation_takes_effect_at_once(gov: Gov, gov_url: str) -> None:
    w = gov.world
    r = client(gov_url, w.holder_a_key).post(
        f"/v1/licences/{gov.licence_id}/revoke", json={"reason": "breach of purpose"}
    )
    assert r.json()["status"] == "revoked"
    budget = (
        client(gov_url, w.operator_key)
        .get(f"/v1/licences/{gov.licence_id}/budget", params={"epsilon_per_job": 0.5})
        .json()
    )
    assert budget["jobs_that_fit"] == 0


def test_expiry_takes_effect_at_once(gov: Gov, gov_url: str) -> None:
    w = gov.world
    w.services.ctx.clock.advance(timedelta(days=91))  # type: ignore[attr-defined]
    lic = client(gov_url, w.operator_key).get(f"/v1/licences/{gov.licence_id}").json()
    assert lic["status"] == "expired"
