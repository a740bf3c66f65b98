"""The HTTP layer of the client: one request, its error answers, and listings."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.client.errors import ApiError, GatewayUnreachable


class Transport:
    """Sends requests to one gateway with one API key and turns failures into typed errors."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; the decoded JSON answer, or ``None`` for an empty one.

        Raises :class:`ApiError` on an error answer and :class:`GatewayUnreachable` when no
        answer came.
        """
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.UnsupportedProtocol:
            raise GatewayUnreachable(
                self.url, f"the gateway URL must start with http:// or https://: {self.url}"
            ) from None
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise GatewayUnreachable(self.url, f"cannot reach the gateway at {self.url}") from None
        except httpx.TimeoutException:
            raise GatewayUnreachable(
                self.url, f"no answer in time from the gateway at {self.url}", kind="timeout"
            ) from None
        except httpx.TransportError:
            raise GatewayUnreachable(
                self.url, f"the connection to the gateway at {self.url} failed", kind="broken"
            ) from None
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ApiError(
                    response.status_code, err["code"], err["message"], err.get("detail"), err
                )
            except (ValueError, KeyError, TypeError):
                text = " ".join(response.text.split())[:200] or f"HTTP {response.status_code}"
                raise ApiError(response.status_code, "http_error", text, None) from None
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                response.status_code,
                "not_a_gateway",
                "the answer is not JSON; is this the URL of a Blindgate gateway?",
                None,
            ) from None

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
