"""What the client raises: an error answer from the gateway, or no answer at all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ClientError(Exception):
    """Root of the errors :class:`gateway.client.Client` raises."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One request field the gateway refused, and why (from a 422 answer)."""

    field: str
    message: str


def _field_name(loc: list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts[:1] == ["body"]:
        parts = parts[1:]
    return ".".join(parts) or "body"


class ApiError(ClientError):
    """An error answer from the gateway, with its stable code.

    ``status`` is the HTTP status, ``code`` the catalogue code (``validation_failed``,
    ``not_found``…), ``message`` the public message, ``detail`` the gateway's explanation
    when it gave one, ``body`` the whole error object and ``fields`` the refused request
    fields of a validation error.
    """

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

    @property
    def fields(self) -> list[FieldError]:
        """Each refused field with the reason, in the order the gateway gave them."""
        found = (self.body or {}).get("fields")
        if not isinstance(found, list):
            return []
        return [
            FieldError(_field_name(item.get("loc") or []), str(item.get("msg", "")))
            for item in found
            if isinstance(item, dict)
        ]


class GatewayUnreachable(ClientError, ConnectionError):
    """No answer: the gateway could not be reached at ``url``, or did not answer in time.

    ``reason`` says which, naming the URL; ``kind`` is ``connect`` (nothing listens there,
    the name does not resolve or the URL is not http(s)), ``timeout`` or ``broken`` (the
    connection failed mid-way).
    """

    def __init__(self, url: str, reason: str, *, kind: str = "connect") -> None:
        self.url = url
        self.reason = reason
        self.kind = kind
        super().__init__(reason)
