"""Input that once answered 500 answers 4xx on both stores, and an unknown error is a
clean generic 500 that leaves a kept-alive connection usable."""

from __future__ import annotations

import socket

import pytest

from gateway.audit.entry import digest
from gateway.http import create_app
from tests.governance.conftest import Gov, b64, gov, gov_url, terms_for, terms_json
from tests.server import running
from tests.world import World, asset_body, client

__all__ = ["gov", "gov_url"]  # fixtures shared with the governance tests


def test_an_asset_name_that_is_not_an_identifier_registers(base_url: str, world: World) -> None:
    holder = client(base_url, world.holder_a_key)
    made = holder.post("/v1/assets", json=asset_body(world.site_a, name="bed-occupancy"))
    assert made.status_code == 201, made.text
    forged = holder.post("/v1/assets", json=asset_body(world.site_a, name="beds\nINFO forged"))
    assert forged.status_code == 422


def test_a_tiny_epsilon_per_job_is_answered(gov_url: str, gov: Gov) -> None:
    r = client(gov_url, gov.world.operator_key).get(
        f"/v1/licences/{gov.licence_id}/budget", params={"epsilon_per_job": "1e-300"}
    )
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["jobs_that_fit"], int)
    assert all(isinstance(a["jobs_that_fit"], int) for a in r.json()["assets"])


def test_jobs_that_fit_is_exact_for_any_positive_epsilon() -> None:
    from policies.budget import jobs_that_fit

    assert jobs_that_fit(10, 1e-300) == 10**301
    assert jobs_that_fit(1.7e308, 5e-324) > 10**600
    assert jobs_that_fit(1, 0.3) == 3


def test_integers_beyond_two_to_the_53(base_url: str, world: World) -> None:
    body = asset_body(world.site_a, name="big") | {"row_count": 2**64}
    assert client(base_url, world.holder_a_key).post("/v1/assets", json=body).status_code == 422
    assert client(base_url, world.operator_key).post("/v1/assets", json=body).status_code == 422
    terms = terms_json(terms_for(world)) | {"job_cap": 2**64}
    refused = client(base_url, world.operator_key).post(
        "/v1/licences", json={"terms": terms, "holder_signature": b64(b"x" * 64)}
    )
    assert refused.status_code == 403, refused.text


def test_a_request_outside_i_json_still_has_a_digest() -> None:
    big = digest({"row_count": 2**64})
    assert big.startswith("sha256:")
    assert big != digest({"row_count": 2**64 + 1})  # written exactly, not as a double
    assert digest({"x": float("nan")}).startswith("sha256:")
    assert digest({"x": "\ud800"}).startswith("sha256:")
    assert digest({"row_count": 5}) == digest({"row_count": 5})


@pytest.mark.parametrize("param", ["since", "until"])
def test_audit_times_need_a_time_zone(base_url: str, world: World, param: str) -> None:
    auditor = client(base_url, world.auditor_key)
    naive = auditor.get("/v1/audit/entries", params={param: "2026-01-01T00:00:00"})
    assert naive.status_code == 422
    assert "time zone" in naive.text
    far = auditor.get("/v1/audit/entries", params={param: "9999-12-31T23:59:59-23:59"})
    assert far.status_code in (200, 422), far.text
    aware = auditor.get("/v1/audit/entries", params={param: "2026-01-01T08:00:00+08:00"})
    assert aware.status_code == 200


def test_settlement_times_need_a_time_zone(base_url: str, world: World) -> None:
    holder = client(base_url, world.holder_a_key)
    naive = holder.get(
        "/v1/settlements",
        params={"period_start": "2026-01-01T00:00:00", "period_end": "2026-02-01T00:00:00Z"},
    )
    assert naive.status_code == 422
    aware = holder.get(
        "/v1/settlements",
        params={"period_start": "2026-01-01T00:00:00Z", "period_end": "2026-02-01T00:00:00Z"},
    )
    assert aware.status_code == 200


def test_nul_characters_are_refused_everywhere(base_url: str, world: World) -> None:
    admin = client(base_url, world.admin_key)
    assert admin.post("/v1/organisations", json={"name": "Nul\u0000Org"}).status_code == 422
    desc = admin.post("/v1/organisations", json={"name": "Fine", "description": "a\u0000b"})
    assert desc.status_code == 422
    assert admin.get("/v1/assets/ast%00x").status_code == 422
    assert admin.get("/v1/audit/entries", params={"action": "a\x00b"}).status_code in (403, 422)
    auditor = client(base_url, world.auditor_key)
    assert auditor.get("/v1/audit/entries", params={"action": "a\x00b"}).status_code == 422
    # A licence offer is a free-form body: the guard covers it too.
    terms = terms_json(terms_for(world, licence_id="lic-nul")) | {"purposes": ["re\u0000search"]}
    offer = client(base_url, world.holder_a_key).post(
        "/v1/licences", json={"terms": terms, "holder_signature": b64(b"x" * 64)}
    )
    assert offer.status_code == 422
    assert admin.get("/v1/organisations").status_code == 200  # nothing broke behind it


def test_nan_and_unpaired_surrogates_are_refused(base_url: str, world: World) -> None:
    holder = client(base_url, world.holder_a_key)
    nan = holder.post(
        "/v1/assets",
        content=b'{"name": "x", "row_count": NaN}',
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400
    lone = client(base_url, world.admin_key).post(
        "/v1/organisations",
        content=b'{"name": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert lone.status_code == 422


def _exchange(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_an_unknown_error_is_a_generic_500_on_a_kept_connection(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_authorization: str | None) -> None:
        raise RuntimeError("secret detail /srv/internal")

    monkeypatch.setattr(world.services.identities, "authenticate", broken)
    with running(create_app(world.services)) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            first = _exchange(sock, "/v1/me")
            assert first.startswith(b"HTTP/1.1 500")
            assert b'"code":"internal"' in first
            assert b"secret" not in first and b"RuntimeError" not in first
            second = _exchange(sock, "/healthz")  # the same connection still answers
            assert second.startswith(b"HTTP/1.1 200")
