"""Replacing an organisation's signing key: licences signed under the old key stop
authorising new jobs (reason licence_key_rotated) until offered and countersigned again;
revocation stays immediate."""

from __future__ import annotations

from contracts import countersign, encode_public_key, generate_keypair, sign_offer
from tests.governance.conftest import Gov, b64, terms_for, terms_json
from tests.governance.test_decisions import job
from tests.world import client


def _decide(gov: Gov, url: str, **over: object) -> dict:
    r = client(url, gov.world.operator_key).post("/v1/jobs/dry-run", json=job(gov, **over))
    assert r.status_code == 200, r.text
    return r.json()


def _rotate(gov: Gov, url: str, who: str) -> object:
    """The holder's (or operator's) organisation registers a new key; returns its pair."""
    w = gov.world
    pair = generate_keypair()
    actor = w.holder_a if who == "holder" else w.operator
    key = w.holder_a_key if who == "holder" else w.operator_key
    r = client(url, key).put(
        f"/v1/organisations/{actor.org_id}/public-key",
        json={"public_key": encode_public_key(pair.public_key)},
    )
    assert r.status_code == 200, r.text
    return pair


def test_a_holder_key_rotation_stops_new_jobs_until_signed_again(gov: Gov, gov_url: str) -> None:
    w = gov.world
    assert _decide(gov, gov_url)["allow"] is True
    holder = _rotate(gov, gov_url, "holder")
    denied = _decide(gov, gov_url)
    assert denied["allow"] is False
    reason = next(r for r in denied["reasons"] if r["code"] == "licence_key_rotated")
    assert reason["clause"] == f"licences[{gov.licence_id}].status"
    assert "offer the licence again" in reason["fix"]
    shown = client(gov_url, w.operator_key).get(f"/v1/licences/{gov.licence_id}").json()
    assert shown["status"] == "key_rotated"
    # offered again under the new key and countersigned: jobs are authorised again
    terms = terms_for(w, licence_id="lic-test-2")
    offer = sign_offer(terms, holder.private_key)  # type: ignore[attr-defined]
    made = client(gov_url, w.holder_a_key).post(
        "/v1/licences", json={"terms": terms_json(terms), "holder_signature": b64(offer)}
    )
    assert made.status_code == 201, made.text
    accept = countersign(terms, offer, gov.operator_key)
    accepted = client(gov_url, w.operator_key).post(
        "/v1/licences/lic-test-2/accept", json={"operator_signature": b64(accept)}
    )
    assert accepted.status_code == 200, accepted.text
    assert _decide(gov, gov_url, licence_ids=["lic-test-2"])["allow"] is True
    assert _decide(gov, gov_url, licence_ids=[gov.licence_id])["allow"] is False


def test_an_operator_key_rotation_stops_its_licences_too(gov: Gov, gov_url: str) -> None:
    _rotate(gov, gov_url, "operator")
    denied = _decide(gov, gov_url)
    assert [r["code"] for r in denied["reasons"]] == ["licence_key_rotated"]


def test_registering_the_old_key_again_restores_the_licence(gov: Gov, gov_url: str) -> None:
    w = gov.world
    _rotate(gov, gov_url, "holder")
    assert _decide(gov, gov_url)["allow"] is False
    old = encode_public_key(gov.holder_key.public_key())
    r = client(gov_url, w.holder_a_key).put(
        f"/v1/organisations/{w.holder_a.org_id}/public-key", json={"public_key": old}
    )
    assert r.status_code == 200
    assert _decide(gov, gov_url)["allow"] is True


def test_revocation_stays_immediate_after_a_rotation(gov: Gov, gov_url: str) -> None:
    w = gov.world
    _rotate(gov, gov_url, "holder")
    r = client(gov_url, w.holder_a_key).post(
        f"/v1/licences/{gov.licence_id}/revoke", json={"reason": "key compromised"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "revoked"
    codes = [x["code"] for x in _decide(gov, gov_url)["reasons"]]
    assert codes == ["licence_revoked"]
