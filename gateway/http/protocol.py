"""The HTTP/1.1 connection protocol the REST API serves with: uvicorn's httptools
protocol with a bound on request heads.

uvicorn bounds neither the size of a request's head (request line and headers) nor the
time a client may take to send it, so one client could hold memory with an endless header
or hold connections open by sending a head byte by byte (slowloris). This protocol

- answers **431** and closes the connection once a head exceeds ``max_head_bytes``;
- closes a connection whose head is not complete ``head_timeout`` seconds after the
  connection opened or after the previous response (a kept-alive connection that stays
  idle is closed sooner, after uvicorn's keep-alive timeout).
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _HeadTooLarge(Exception):
    pass


_431_BODY = (
    b'{"error":{"code":"bad_request","message":"The request line and headers are too large."}}'
)
_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_431_BODY), _431_BODY)
)


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a size and a time limit on each request head."""

    max_head_bytes: int = 64 * 1024
    head_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None

    @classmethod
    def bounded(cls, max_head_bytes: int, head_timeout: float) -> type[BoundedHeadProtocol]:
        """A protocol class with these limits (uvicorn instantiates it per connection)."""
        return type(
            "BoundedHead",
            (cls,),
            {"max_head_bytes": max_head_bytes, "head_timeout": head_timeout},
        )

    def _arm(self) -> None:
        self._disarm()
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            raise _HeadTooLarge

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._disarm()
                self.transport.write(_431)
                self.transport.close()
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()
