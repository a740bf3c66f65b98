"""Asset cards: registration, updates, freeze, dispose, pagination."""

from __future__ import annotations

import json

import pytest

from tests.world import DIGEST, World, asset_body, client


def test_register_returns_a_full_card(base_url: str, world: World) -> None:
    r = client(base_url, world.holder_a_key).post(
        "/v1/assets", json=asset_body(world.site_a, "beds")
    )
    assert r.status_code == 201
    card = r.json()["asset"]
    assert card["basic"]["privacy_unit"] == "patient_id"
    assert card["basic"]["classification"] == "important"
    assert card["rights"]["holder_org_id"] == world.holder_a.org_id
    assert card["rights"]["product_operation"] == "Data Bureau"
    assert card["usage"] == {"jobs_run": 0, "operators": 0, "last_access": None}
    m = card["management"]
    assert m["status"] == "active"
    assert m["version"] == 1
    assert m["content_digest"] == DIGEST
    assert m["registration_number"].startswith("BG-2026-")


def test_registration_numbers_are_unique_and_sequential(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    numbers = [
        a.post("/v1/assets", json=asset_body(world.site_a, f"n{i}")).json()["asset"]["management"][
            "registration_number"
        ]
        for i in range(3)
    ]
    serials = [int(n.rsplit("-", 1)[1]) for n in numbers]
    assert serials == sorted(serials)
    assert len(set(serials)) == 3


def test_duplicate_asset_name_is_409(base_url: str, world: World) -> None:
    r = client(base_url, world.holder_a_key).post("/v1/assets", json=asset_body(world.site_a))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"privacy_unit": "age"}, "identifier"),
        ({"privacy_unit": "nobody"}, "privacy_unit"),
        ({"content_digest": "xyz"}, "content_digest"),
        ({"classification": "secret"}, "classification"),
        ({"columns": []}, "columns"),
    ],
)
def test_bad_asset_cards_are_refused(
    base_url: str, world: World, change: dict[str, object], fragment: str
) -> None:
    body = asset_body(world.site_a, "bad") | change
    r = client(base_url, world.holder_a_key).post("/v1/assets", json=body)
    assert r.status_code == 422
    assert fragment in r.text


def test_duplicate_columns_are_refused(base_url: str, world: World) -> None:
    body = asset_body(world.site_a, "dup")
    body["columns"].append({"name": "age", "type": "integer", "tag": "attribute"})
    r = client(base_url, world.holder_a_key).post("/v1/assets", json=body)
    assert r.status_code == 422
    assert "duplicate column names: age" in r.json()["error"]["detail"]


def test_update_bumps_version(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    r = a.patch(f"/v1/assets/{world.asset_a}", json={"row_count": 1234, "domain": "finance"})
    assert r.status_code == 200
    card = r.json()
    assert card["basic"]["row_count"] == 1234
    assert card["basic"]["domain"] == "finance"
    assert card["management"]["version"] == 2
    assert a.patch(f"/v1/assets/{world.asset_a}", json={}).status_code == 422
    assert a.patch(f"/v1/assets/{world.asset_a}", json={"row_count": None}).status_code == 422


def test_freeze_and_unfreeze(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    r = a.post(f"/v1/assets/{world.asset_a}/freeze", json={"reason": "suspected misuse"})
    assert r.status_code == 200
    card = r.json()
    assert card["management"]["status"] == "frozen"
    assert card["management"]["freeze"]["reason"] == "suspected misuse"
    again = a.post(f"/v1/assets/{world.asset_a}/freeze", json={"reason": "again"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"
    frozen_filter = a.get("/v1/assets", params={"status": "frozen"}).json()["items"]
    assert [x["id"] for x in frozen_filter] == [world.asset_a]
    lifted = a.post(f"/v1/assets/{world.asset_a}/unfreeze")
    assert lifted.json()["management"]["status"] == "active"
    assert lifted.json()["management"]["freeze"] is None


def test_auditor_freeze_can_only_be_lifted_by_an_auditor(base_url: str, world: World) -> None:
    aud = client(base_url, world.auditor_key)
    assert (
        aud.post(f"/v1/assets/{world.asset_b}/freeze", json={"reason": "incident 42"}).status_code
        == 200
    )
    holder = client(base_url, world.holder_b_key)
    r = holder.post(f"/v1/assets/{world.asset_b}/unfreeze")
    assert r.status_code == 403
    assert aud.post(f"/v1/assets/{world.asset_b}/unfreeze").status_code == 200


def test_dispose_is_recorded_and_final(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    body = {"method": "NIST 800-88 purge", "destroyed_digest": "cd" * 32, "note": "end of term"}
    r = a.post(f"/v1/assets/{world.asset_a}/dispose", json=body)
    assert r.status_code == 200
    disposal = r.json()["management"]["disposal"]
    assert disposal["method"] == "NIST 800-88 purge"
    assert disposal["destroyed_digest"] == "cd" * 32
    assert disposal["disposed_by"] == world.holder_a.principal_id
    for method, path, payload in [
        ("PATCH", "", {"row_count": 5}),
        ("POST", "/freeze", {"reason": "x"}),
        ("POST", "/unfreeze", None),
        ("POST", "/dispose", body),
    ]:
        resp = a.request(method, f"/v1/assets/{world.asset_a}{path}", json=payload)
        assert resp.status_code == 409, path
        assert resp.json()["error"]["code"] == "asset_disposed"
    # the record stays for its holder and auditors, and leaves the operators' catalogue
    assert a.get(f"/v1/assets/{world.asset_a}").json()["management"]["status"] == "disposed"
    assert client(base_url, world.auditor_key).get(f"/v1/assets/{world.asset_a}").status_code == 200
    op = client(base_url, world.operator_key)
    assert op.get(f"/v1/assets/{world.asset_a}").status_code == 404
    assert world.asset_a not in {x["id"] for x in op.get("/v1/assets").json()["items"]}


def test_pagination_walks_every_asset_once(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    for i in range(7):
        assert a.post("/v1/assets", json=asset_body(world.site_a, f"p{i}")).status_code == 201
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = a.get("/v1/assets", params=params).json()
        seen += [x["id"] for x in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 8 == len(set(seen))
    assert seen == sorted(seen)
    assert pages == 3


def test_registration_carries_a_verifiable_receipt(base_url: str, world: World) -> None:
    from contracts.tlog.errors import TraceError
    from gateway.audit.receipt import verify_receipt

    a = client(base_url, world.holder_a_key)
    answer = a.post("/v1/assets", json=asset_body(world.site_a, "receipted")).json()
    receipt = answer["receipt"]
    key = a.get("/v1/audit/log").json()["verifier_key"]
    checkpoint = verify_receipt(receipt, key)
    assert checkpoint.size == receipt["tree_size"] > receipt["leaf_index"]
    entry = json.loads(receipt["entry"])
    assert entry["action"] == "asset.register"
    assert entry["target"] == {"asset": answer["asset"]["id"]}
    assert entry["actor"]["principal"] == world.holder_a.principal_id
    assert entry["request"].startswith("sha256:")
    from gateway.client import Client

    with Client(base_url, world.holder_a_key) as sdk:
        assert sdk.verify_receipt(receipt).size == checkpoint.size
    forged = dict(receipt, entry=receipt["entry"].replace("asset.register", "asset.dispose"))
    with pytest.raises(TraceError):
        verify_receipt(forged, key)
    wrong_index = dict(receipt, leaf_index=receipt["leaf_index"] + 1)
    with pytest.raises(TraceError):
        verify_receipt(wrong_index, key)
