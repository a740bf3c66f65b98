"""Authentication: API keys, rotation, revocation, disabled principals."""

from __future__ import annotations

from tests.world import World, client


def test_request_without_key_is_401(base_url: str) -> None:
    r = client(base_url, None).get("/v1/assets")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthenticated"


def test_unknown_and_malformed_keys_are_401(base_url: str) -> None:
    for header in ["Bearer bg_nope", "Basic abc", "Bearer", "bg_x", "Bearer " + "bg_" + "a" * 300]:
        r = client(base_url, None).get("/v1/me", headers={"Authorization": header})
        assert r.status_code == 401, header
        assert r.json()["error"]["code"] == "unauthenticated"


def test_whoami(base_url: str, world: World) -> None:
    me = client(base_url, world.holder_a_key).get("/v1/me").json()
    assert me["principal"]["id"] == world.holder_a.principal_id
    assert me["principal"]["role"] == "holder"
    assert me["organisation"]["name"] == "Hospital A"


def test_keys_are_stored_only_as_hashes(base_url: str, world: World) -> None:
    keys = client(base_url, world.admin_key).get(
        f"/v1/principals/{world.operator.principal_id}/keys"
    )
    assert keys.status_code == 200
    assert world.operator_key not in keys.text
    with world.services.ctx.store.read() as tx:
        assert tx.find_api_key(world.operator_key) is None  # the raw key is not a stored value


def test_rotation_revokes_old_key_and_new_key_works(base_url: str, world: World) -> None:
    op = client(base_url, world.operator_key)
    issued = op.post(f"/v1/principals/{world.operator.principal_id}/keys", json={})
    assert issued.status_code == 201
    new_key = issued.json()["api_key"]
    assert new_key.startswith("bg_")
    assert new_key != world.operator_key
    assert client(base_url, world.operator_key).get("/v1/me").status_code == 401
    assert client(base_url, new_key).get("/v1/me").status_code == 200


def test_rotation_can_keep_existing_and_revoke_one(base_url: str, world: World) -> None:
    pid = world.operator.principal_id
    admin = client(base_url, world.admin_key)
    second = admin.post(f"/v1/principals/{pid}/keys", json={"revoke_existing": False}).json()
    assert client(base_url, world.operator_key).get("/v1/me").status_code == 200
    assert client(base_url, second["api_key"]).get("/v1/me").status_code == 200
    revoked = admin.delete(f"/v1/principals/{pid}/keys/{second['key']['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert client(base_url, second["api_key"]).get("/v1/me").status_code == 401
    assert client(base_url, world.operator_key).get("/v1/me").status_code == 200


def test_a_principal_cannot_touch_another_principals_keys(base_url: str, world: World) -> None:
    r = client(base_url, world.operator_key).post(
        f"/v1/principals/{world.holder_a.principal_id}/keys", json={}
    )
    assert r.status_code == 404
    assert client(base_url, world.holder_a_key).get("/v1/me").status_code == 200


def test_disabled_principal_is_401_and_can_be_enabled(base_url: str, world: World) -> None:
    admin = client(base_url, world.admin_key)
    pid = world.holder_b.principal_id
    assert admin.patch(f"/v1/principals/{pid}", json={"disabled": True}).status_code == 200
    assert client(base_url, world.holder_b_key).get("/v1/me").status_code == 401
    assert admin.patch(f"/v1/principals/{pid}", json={"disabled": False}).status_code == 200
    assert client(base_url, world.holder_b_key).get("/v1/me").status_code == 200


def test_admin_cannot_disable_itself(base_url: str, world: World) -> None:
    r = client(base_url, world.admin_key).patch(
        f"/v1/principals/{world.admin.principal_id}", json={"disabled": True}
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "invalid_state"
