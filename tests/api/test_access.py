"""Roles and ownership: what each role may see and change; other organisations' objects are 404."""

from __future__ import annotations

from tests.world import World, asset_body, client


def test_holder_cannot_see_another_holders_asset(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    r = a.get(f"/v1/assets/{world.asset_b}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    nonexistent = a.get("/v1/assets/ast_00000000000000000000000000")
    assert nonexistent.json() == r.json()  # existence does not leak
    listed = a.get("/v1/assets").json()["items"]
    assert [x["id"] for x in listed] == [world.asset_a]


def test_holder_cannot_change_another_holders_asset(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    assert a.patch(f"/v1/assets/{world.asset_b}", json={"row_count": 1}).status_code == 404
    assert a.post(f"/v1/assets/{world.asset_b}/freeze", json={"reason": "x"}).status_code == 404
    dispose = {"method": "shred", "destroyed_digest": "cd" * 32}
    assert a.post(f"/v1/assets/{world.asset_b}/dispose", json=dispose).status_code == 404
    b_card = client(base_url, world.holder_b_key).get(f"/v1/assets/{world.asset_b}").json()
    assert b_card["management"]["status"] == "active"
    assert b_card["basic"]["row_count"] == 1000


def test_holder_cannot_register_an_asset_on_another_holders_site(
    base_url: str, world: World
) -> None:
    r = client(base_url, world.holder_a_key).post("/v1/assets", json=asset_body(world.site_b, "x"))
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_operator_sees_catalogue_cards_without_location(base_url: str, world: World) -> None:
    op = client(base_url, world.operator_key)
    items = op.get("/v1/assets").json()["items"]
    assert {x["id"] for x in items} == {world.asset_a, world.asset_b}
    for card in items:
        assert card["location"] is None
        assert "local_ref" not in str(card)
        assert "/srv/data" not in str(card)
    holder_card = client(base_url, world.holder_a_key).get(f"/v1/assets/{world.asset_a}").json()
    assert holder_card["location"]["local_ref"] == "/srv/data/admissions.parquet"


def test_operator_cannot_register_assets_or_see_sites(base_url: str, world: World) -> None:
    op = client(base_url, world.operator_key)
    r = op.post("/v1/assets", json=asset_body(world.site_a, "x"))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert op.get("/v1/sites").status_code == 403
    assert op.get(f"/v1/sites/{world.site_a}").status_code == 403


def test_auditor_sees_everything_read_only(base_url: str, world: World) -> None:
    aud = client(base_url, world.auditor_key)
    assert {x["id"] for x in aud.get("/v1/assets").json()["items"]} == {
        world.asset_a,
        world.asset_b,
    }
    assert aud.get(f"/v1/assets/{world.asset_b}").json()["location"]["site_id"] == world.site_b
    assert aud.patch(f"/v1/assets/{world.asset_b}", json={"row_count": 1}).status_code == 403
    assert len(aud.get("/v1/sites").json()["items"]) == 2


def test_only_admin_creates_organisations_and_principals(base_url: str, world: World) -> None:
    for key in (world.holder_a_key, world.operator_key, world.auditor_key):
        c = client(base_url, key)
        assert c.post("/v1/organisations", json={"name": "Evil"}).status_code == 403
        body = {"org_id": world.holder_a.org_id, "name": "evil", "role": "admin"}
        assert c.post("/v1/principals", json=body).status_code == 403


def test_organisations_of_others_are_hidden(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    assert a.get(f"/v1/organisations/{world.holder_b.org_id}").status_code == 404
    own = a.get("/v1/organisations").json()["items"]
    assert [o["id"] for o in own] == [world.holder_a.org_id]
    admin_view = client(base_url, world.admin_key).get("/v1/organisations").json()["items"]
    assert len(admin_view) == 5


def test_principals_of_others_are_hidden(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    assert a.get(f"/v1/principals/{world.operator.principal_id}").status_code == 404
    assert [p["id"] for p in a.get("/v1/principals").json()["items"]] == [
        world.holder_a.principal_id
    ]


def test_sites_are_scoped_to_the_holder(base_url: str, world: World) -> None:
    a = client(base_url, world.holder_a_key)
    assert [s["id"] for s in a.get("/v1/sites").json()["items"]] == [world.site_a]
    assert a.get(f"/v1/sites/{world.site_b}").status_code == 404
    spoof = {
        "name": "s2",
        "grpc_address": "h:1",
        "tls_fingerprint": "cc" * 32,
        "org_id": world.holder_b.org_id,
    }
    refused = a.post("/v1/sites", json=spoof)
    assert refused.status_code == 422
    assert [f["loc"] for f in refused.json()["error"]["fields"]] == [["body", "org_id"]]


def test_a_holder_cannot_claim_another_holders_agent(base_url: str, world: World) -> None:
    claim = {"name": "s2", "grpc_address": "127.0.0.1:50062", "tls_fingerprint": "bb" * 32}
    refused = client(base_url, world.holder_a_key).post("/v1/sites", json=claim)
    assert refused.status_code == 403
    assert refused.json()["error"]["detail"] == (
        "the agent at 127.0.0.1:50062 is endorsed by another organisation"
    )
    admin = client(base_url, world.admin_key).post("/v1/sites", json=claim)
    assert admin.status_code == 403
    seen_by_b = client(base_url, world.holder_b_key).get(
        "/v1/audit/entries", params={"action": "site.register"}
    )
    attempts = [e["entry"] for e in seen_by_b.json()["items"] if e["entry"]["decision"] == "deny"]
    assert [e["actor"]["org"] for e in attempts] == [world.holder_a.org_id]
    assert attempts[0]["reasons"][0]["message"].endswith("endorsed by another organisation")
    with world.services.ctx.store.read() as tx:
        sites = tx.list_sites(org_id=None, after=None, limit=10)
    assert {s.id for s in sites} == {world.site_a, world.site_b}


def test_public_key_registration(base_url: str, world: World) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = base64.b64encode(raw).decode()
    a = client(base_url, world.holder_a_key)
    path = f"/v1/organisations/{world.holder_a.org_id}/public-key"
    ok = a.put(path, json={"public_key": key})
    assert ok.status_code == 200
    assert ok.json()["public_key"] == key
    bad = a.put(path, json={"public_key": base64.b64encode(b"short").decode()})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_failed"
    other = a.put(f"/v1/organisations/{world.holder_b.org_id}/public-key", json={"public_key": key})
    assert other.status_code == 404
    assert (
        client(base_url, world.auditor_key).put(path, json={"public_key": key}).status_code == 403
    )
