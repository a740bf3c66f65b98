"""Bad input answers 4xx with a stable code; unknown errors never leak."""

from __future__ import annotations

import httpx
import pytest

from gateway.errors import CATALOGUE, BlindgateError, as_public
from gateway.http import create_app
from gateway.service import Services
from tests.server import running
from tests.world import World, client


def test_catalogue_is_complete() -> None:
    for code, spec in CATALOGUE.items():
        assert 400 <= spec.http_status < 600, code
        assert spec.grpc_status.isupper(), code
        assert spec.message, code
    with pytest.raises(ValueError, match="unknown error code"):
        BlindgateError(code="no_such_code")
    hidden = as_public(RuntimeError("password=hunter2"))
    assert hidden.code == "internal"
    assert "hunter2" not in str(hidden.public_body())


def test_malformed_json_is_400(base_url: str, world: World) -> None:
    r = client(base_url, world.admin_key).post(
        "/v1/organisations", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"


def test_non_json_body_is_415(base_url: str, world: World) -> None:
    r = client(base_url, world.admin_key).post(
        "/v1/organisations", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


def test_wrong_types_and_unknown_fields_are_422(base_url: str, world: World) -> None:
    r = client(base_url, world.admin_key).post(
        "/v1/organisations", json={"name": 5, "colour": "red"}
    )
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "validation_failed"
    kinds = {tuple(f["loc"]): f["type"] for f in err["fields"]}
    assert kinds[("body", "name")] == "string_type"
    assert kinds[("body", "colour")] == "extra_forbidden"
    assert "red" not in r.text  # input values are not echoed


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 100000}, {"limit": "many"}, {"cursor": "!!!"}, {"cursor": "x" * 500}],
)
def test_bad_pagination_is_400(base_url: str, world: World, params: dict[str, object]) -> None:
    r = client(base_url, world.operator_key).get("/v1/assets", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "bad_pagination"


def test_oversized_bodies_are_413(base_url: str, world: World) -> None:
    big = b'{"name": "' + b"x" * (70 * 1024) + b'"}'
    c = client(base_url, world.admin_key)
    r = c.post("/v1/organisations", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(80):
            yield b"x" * 1024

    r = c.post("/v1/organisations", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_duplicate_organisation_is_409(base_url: str, world: World) -> None:
    r = client(base_url, world.admin_key).post("/v1/organisations", json={"name": "Hospital A"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"


def test_unknown_route_and_method(base_url: str, world: World) -> None:
    c = client(base_url, world.admin_key)
    r = c.get("/v1/nothing-here")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = c.delete("/v1/assets")
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_unknown_errors_are_generic_500(services: Services) -> None:
    app = create_app(services)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret row: patient P0001 has HIV")

    with running(app) as url:
        r = httpx.get(f"{url}/boom")
    assert r.status_code == 500
    assert r.json() == {"error": {"code": "internal", "message": "Internal error."}}
    assert "P0001" not in r.text


def test_system_endpoints(base_url: str) -> None:
    assert httpx.get(f"{base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base_url}/readyz").json()
    assert ready["status"] == "ready"
    assert ready["store"] in {"sqlite", "postgresql"}
    spec = httpx.get(f"{base_url}/openapi.json").json()
    assert "/v1/assets" in spec["paths"]
    assert httpx.get(f"{base_url}/docs").status_code == 200


def test_metrics_count_requests_per_route_and_status(base_url: str, world: World) -> None:
    c = client(base_url, world.operator_key)
    c.get("/v1/assets")
    c.get(f"/v1/assets/{world.asset_a}")
    client(base_url, None).get("/v1/assets")
    text = httpx.get(f"{base_url}/metrics").text
    assert 'blindgate_http_requests_total{method="GET",route="/v1/assets",status="200"} 1.0' in text
    assert 'blindgate_http_requests_total{method="GET",route="/v1/assets",status="401"} 1.0' in text
    assert 'route="/v1/assets/{asset_id}",status="200"' in text
    assert "blindgate_http_request_duration_seconds_bucket" in text
