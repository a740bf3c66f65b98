"""A small Python client for the Blindgate REST API."""

from __future__ import annotations

from typing import Any

import httpx


class ApiError(Exception):
    """An error answer from the gateway, with its stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str | None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        super().__init__(f"{status} {code}: {detail or message}")


class Client:
    """``Client(url, api_key)``: typed-enough access to the gateway's REST API."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; raise :class:`ApiError` on an error answer."""
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ApiError(
                    response.status_code, err["code"], err["message"], err.get("detail"), err
                )
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    response.status_code, "http_error", response.text[:200], None
                ) from None
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def paginate(self, path: str, **params: Any) -> list[Any]:
        """Follow ``next_cursor`` until the listing is exhausted."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = self.get(path, cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    # convenience ----------------------------------------------------------------------
    def whoami(self) -> Any:
        return self.get("/v1/me")

    def assets(self, status: str | None = None) -> list[Any]:
        return self.paginate("/v1/assets", status=status)

    def asset(self, asset_id: str) -> Any:
        return self.get(f"/v1/assets/{asset_id}")

    def verifier_key(self) -> str:
        """The trace's checkpoint verifier key, as the gateway states it."""
        key: str = self.get("/v1/audit/log")["verifier_key"]
        return key

    def verify_receipt(self, receipt: dict[str, Any], verifier_key: str | None = None) -> Any:
        """Check a receipt (signature, leaf hash, inclusion proof); return its checkpoint.

        Pass a ``verifier_key`` obtained out of band to not rely on the gateway for it.
        Raises :class:`gateway.audit.errors.TraceError` on any defect.
        """
        from gateway.audit.receipt import verify_receipt

        return verify_receipt(receipt, verifier_key or self.verifier_key())
