"""Policy documents over REST: versions, validation with line numbers, access."""

from __future__ import annotations

from tests.governance.conftest import Gov, policy_for
from tests.world import client


def test_policy_versions_are_kept(gov: Gov, gov_url: str) -> None:
    w = gov.world
    holder = client(gov_url, w.holder_a_key)
    second = policy_for(w.asset_a).replace("min_group_size: 10", "min_group_size: 20")
    r = holder.put(
        f"/v1/assets/{w.asset_a}/policy",
        content=second,
        headers={"content-type": "application/yaml"},
    )
    assert r.status_code == 201
    assert r.json()["version"] == 2
    third = holder.put(f"/v1/assets/{w.asset_a}/policy", json={"document": second})
    assert third.json()["version"] == 3
    versions = holder.get(f"/v1/assets/{w.asset_a}/policy/versions").json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    first = holder.get(f"/v1/assets/{w.asset_a}/policy/versions/1").json()
    assert "min_group_size: 10" in first["document"]
    latest = client(gov_url, w.operator_key).get(f"/v1/assets/{w.asset_a}/policy").json()
    assert latest["version"] == 3  # operators read the rules they must follow


def test_schema_errors_point_at_line_and_field(gov: Gov, gov_url: str) -> None:
    w = gov.world
    bad = (
        policy_for(w.asset_a)
        .replace("control: filter", "control: filtre")
        .replace("min_group_size: 10", "min_group_size: 1")
    )
    r = client(gov_url, w.holder_a_key).put(
        f"/v1/assets/{w.asset_a}/policy", content=bad, headers={"content-type": "text/yaml"}
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "policy_invalid"
    by_path = {i["path"]: i for i in err["issues"]}
    lines = bad.splitlines()
    age = by_path["columns.age.control"]
    assert "filtre" in lines[age["line"] - 1]
    group = by_path["jobs.min_group_size"]
    assert "min_group_size: 1" in lines[group["line"] - 1]


def test_policy_must_match_the_asset(gov: Gov, gov_url: str) -> None:
    w = gov.world
    holder = client(gov_url, w.holder_a_key)
    unknown_column = policy_for(w.asset_a).replace(
        "  age: {control: filter}\n", "  age: {control: filter}\n  salary: {control: never}\n"
    )
    r = holder.put(f"/v1/assets/{w.asset_a}/policy", json={"document": unknown_column})
    assert r.status_code == 422
    assert r.json()["error"]["issues"][0]["path"] == "columns.salary"
    other = policy_for(w.asset_a).replace(f"asset: {w.asset_a}", "asset: somewhere-else")
    assert holder.put(f"/v1/assets/{w.asset_a}/policy", json={"document": other}).status_code == 422


def test_only_the_holder_writes_its_policy(gov: Gov, gov_url: str) -> None:
    w = gov.world
    doc = {"document": policy_for(w.asset_a)}
    assert (
        client(gov_url, w.holder_b_key).put(f"/v1/assets/{w.asset_a}/policy", json=doc).status_code
        == 404
    )
    assert (
        client(gov_url, w.operator_key).put(f"/v1/assets/{w.asset_a}/policy", json=doc).status_code
        == 403
    )
    assert client(gov_url, None).put(f"/v1/assets/{w.asset_a}/policy", json=doc).status_code == 401
    assert client(gov_url, w.holder_b_key).get(f"/v1/assets/{w.asset_a}/policy").status_code == 404


def test_schema_is_published(gov_url: str, gov: Gov) -> None:
    schema = client(gov_url, gov.world.operator_key).get("/v1/policy-schema").json()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "columns" in schema["properties"]
