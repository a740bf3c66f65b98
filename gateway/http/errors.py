"""Exception handlers: every failure becomes the catalogue's public JSON error."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import BlindgateError, TooManyRequests

log = logging.getLogger("blindgate.http")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _response(error: BlindgateError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.code == "unauthenticated" else None
    if isinstance(error, TooManyRequests):
        headers = {"Retry-After": str(error.retry_after)}
    return JSONResponse(error.public_body(), status_code=error.spec.http_status, headers=headers)


def _fields(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Validation problems by location and kind, without echoing the input values."""
    out = []
    for err in exc.errors()[:50]:
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "type": str(err.get("type", "")),
                "msg": str(err.get("msg", ""))[:200],
            }
        )
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Map Blindgate, validation, routing and unknown errors to public JSON errors."""

    @app.exception_handler(BlindgateError)
    async def _blindgate(_request: Request, exc: BlindgateError) -> JSONResponse:
        return _response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _fields(exc)
        if any(f["type"] == "json_invalid" for f in fields):
            return _response(BlindgateError(code="malformed_json"))
        if any(
            f["loc"][:1] == ["query"] and f["loc"][1:2] in (["limit"], ["cursor"]) for f in fields
        ):
            return _response(BlindgateError("limit must be an integer", code="bad_pagination"))
        return _response(BlindgateError(code="validation_failed", fields=fields))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(
            exc.status_code, "bad_request" if exc.status_code < 500 else "internal"
        )
        return _response(BlindgateError(code=code))

    @app.exception_handler(Exception)
    async def _unknown(_request: Request, exc: Exception) -> JSONResponse:
        log_unknown(exc)
        return _response(BlindgateError(code="internal"))


def log_unknown(exc: BaseException) -> None:
    """Log an unknown error by class and innermost frames, never by its message."""
    frames = "".join(traceback.format_tb(exc.__traceback__)[-4:])
    log.error("unhandled %s (message withheld)\n%s", type(exc).__name__, frames)


class InternalErrors:
    """Turns an unknown error into the generic 500 answer and keeps the connection.

    Starlette's outermost handler answers an unknown error and then re-raises it, which
    makes the server drop a kept-alive connection; this middleware answers and returns."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log_unknown(exc)
            if started:
                raise  # half an answer was sent: only closing the connection is honest
            response = _response(BlindgateError(code="internal"))
            await response(scope, receive, send)
