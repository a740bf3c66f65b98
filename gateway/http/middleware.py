"""Pure ASGI middleware: request-body limits and per-route metrics."""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import BlindgateError
from gateway.service.core.schemas import unusable_text


async def send_error(send: Send, error: BlindgateError) -> None:
    body = json.dumps(error.public_body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.spec.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_BODY_TYPES = {b"application/json", b"application/yaml", b"application/x-yaml", b"text/yaml"}

_BAD_TEXT = BlindgateError(
    "text must not contain NUL characters or unpaired surrogates", code="validation_failed"
)
_NON_JSON_NUMBER = re.compile(rb"NaN|Infinity")


def _reject_constant(_name: str) -> Any:
    raise ValueError("not JSON")


def check_text(scope: Scope, body: bytes | None, json_body: bool) -> BlindgateError | None:
    """Refuse what no store keeps and no JSON peer reads: NUL characters and unpaired
    surrogates in the path, the query or a JSON body, and NaN/Infinity in a JSON body."""
    if unusable_text(scope.get("path", "")) or b"\x00" in unquote_to_bytes(
        scope.get("query_string", b"")
    ):
        return _BAD_TEXT
    if body is None:
        return None
    if not json_body:
        return _BAD_TEXT if b"\x00" in body else None
    if b"\\u" not in body and not _NON_JSON_NUMBER.search(body):
        return None  # no escape that could hide a NUL or a surrogate, no non-JSON number
    try:
        parsed = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return BlindgateError(code="malformed_json")
    return _BAD_TEXT if unusable_text(parsed) else None


class BodyLimit:
    """Guard request bodies: JSON (or YAML for policy documents; 415 otherwise) and at most
    ``max_bytes`` (413),
    whether or not the request declares its length."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        *,
        larger: dict[str, int] | None = None,
        streamed: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = larger or {}
        """Paths whose JSON bodies may be larger than ``max_bytes``, with their limit."""
        self.streamed = streamed
        """Paths that take an ``application/octet-stream`` body and bound it themselves."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self.streamed and scope.get("method") in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(path, self.max_bytes)
        content_type = b""
        has_body = False
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value.split(b";")[0].strip().lower()
            elif name == b"transfer-encoding":
                has_body = True
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_error(send, BlindgateError("bad Content-Length", code="bad_request"))
                    return
                if declared > limit:
                    await send_error(send, BlindgateError(code="body_too_large"))
                    return
                has_body = has_body or declared > 0
        if has_body and content_type not in _BODY_TYPES:
            await send_error(send, BlindgateError(code="unsupported_media_type"))
            return
        if not has_body:
            refused = check_text(scope, None, False)
            if refused is not None:
                await send_error(send, refused)
                return
            await self.app(scope, receive, send)
            return
        # Read the whole body first (it is at most max_bytes), then replay it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                await send_error(send, BlindgateError(code="body_too_large"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        refused = check_text(scope, body, content_type == b"application/json")
        if refused is not None:
            await send_error(send, refused)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class HttpMetrics:
    """Request counts and latency histograms per route template, method and status."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "blindgate_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "blindgate_http_request_duration_seconds",
            "HTTP request latency by route and method.",
            ["route", "method"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )


class MetricsMiddleware:
    """Records :class:`HttpMetrics` for every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)
