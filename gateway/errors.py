"""One error root for Blindgate and the catalogue that maps each code to its public face.

Every error a client can see is a :class:`BlindgateError` with a stable ``code``.  The
:data:`CATALOGUE` maps that code to an HTTP status, a gRPC status name and a public
message.  Transports never send ``str(exc)`` of an arbitrary exception: unknown errors
become the generic ``internal`` error.  ``detail`` is written by this code base only and
never contains raw data, secrets or stack traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one error code is presented to a client."""

    http_status: int
    grpc_status: str
    message: str


CATALOGUE: dict[str, ErrorSpec] = {
    "bad_request": ErrorSpec(400, "INVALID_ARGUMENT", "The request is not valid."),
    "malformed_json": ErrorSpec(400, "INVALID_ARGUMENT", "The request body is not valid JSON."),
    "validation_failed": ErrorSpec(
        422, "INVALID_ARGUMENT", "The request failed validation; see 'fields'."
    ),
    "bad_pagination": ErrorSpec(
        400, "INVALID_ARGUMENT", "The pagination parameters are not valid."
    ),
    "unsupported_media_type": ErrorSpec(
        415, "INVALID_ARGUMENT", "The request body must be application/json."
    ),
    "body_too_large": ErrorSpec(413, "RESOURCE_EXHAUSTED", "The request body is too large."),
    "unauthenticated": ErrorSpec(
        401, "UNAUTHENTICATED", "A valid API key is required (Authorization: Bearer <key>)."
    ),
    "forbidden": ErrorSpec(403, "PERMISSION_DENIED", "Your role may not perform this action."),
    "not_found": ErrorSpec(404, "NOT_FOUND", "No such resource."),
    "method_not_allowed": ErrorSpec(
        405, "UNIMPLEMENTED", "This method is not allowed on this resource."
    ),
    "conflict": ErrorSpec(409, "ALREADY_EXISTS", "The resource already exists."),
    "asset_frozen": ErrorSpec(409, "FAILED_PRECONDITION", "The asset is frozen."),
    "asset_disposed": ErrorSpec(
        409, "FAILED_PRECONDITION", "The asset has been disposed and can never be used again."
    ),
    "invalid_state": ErrorSpec(
        409, "FAILED_PRECONDITION", "The resource is not in a state that allows this action."
    ),
    "policy_invalid": ErrorSpec(
        422, "INVALID_ARGUMENT", "The policy document is not valid; see 'issues'."
    ),
    "licence_invalid": ErrorSpec(
        422, "INVALID_ARGUMENT", "The licence or its signature was refused; see 'detail'."
    ),
    "budget_exhausted": ErrorSpec(
        409, "RESOURCE_EXHAUSTED", "The privacy budget does not allow this charge."
    ),
    "too_many_requests": ErrorSpec(
        429, "RESOURCE_EXHAUSTED", "Too many failed attempts; retry after 'retry_after' seconds."
    ),
    "unavailable": ErrorSpec(503, "UNAVAILABLE", "The service is not ready."),
    "internal": ErrorSpec(500, "INTERNAL", "Internal error."),
}


class BlindgateError(Exception):
    """Root of every error Blindgate reports to a client.

    ``detail`` is an optional, code-authored explanation safe to show to the caller;
    ``fields`` carries structured, equally safe extras (for example validation locations).
    """

    code: str = "internal"

    def __init__(self, detail: str | None = None, *, code: str | None = None, **fields: Any):
        if code is not None:
            self.code = code
        if self.code not in CATALOGUE:
            raise ValueError(f"unknown error code {self.code!r}")
        self.detail = detail
        self.fields = fields
        super().__init__(detail or CATALOGUE[self.code].message)

    @property
    def spec(self) -> ErrorSpec:
        return CATALOGUE[self.code]

    def public_body(self) -> dict[str, Any]:
        """The JSON body a client receives."""
        body: dict[str, Any] = {"code": self.code, "message": self.spec.message}
        if self.detail:
            body["detail"] = self.detail
        body.update(self.fields)
        return {"error": body}


class BadRequest(BlindgateError):
    code = "bad_request"


class ValidationFailed(BlindgateError):
    code = "validation_failed"


class BadPagination(BlindgateError):
    code = "bad_pagination"


class Unauthenticated(BlindgateError):
    code = "unauthenticated"


class Forbidden(BlindgateError):
    code = "forbidden"


class NotFound(BlindgateError):
    code = "not_found"


class Conflict(BlindgateError):
    code = "conflict"


class AssetFrozen(BlindgateError):
    code = "asset_frozen"


class AssetDisposed(BlindgateError):
    code = "asset_disposed"


class InvalidState(BlindgateError):
    code = "invalid_state"


class PolicyInvalid(BlindgateError):
    code = "policy_invalid"


class LicenceInvalid(BlindgateError):
    code = "licence_invalid"


class BudgetExhausted(BlindgateError):
    code = "budget_exhausted"


class TooManyRequests(BlindgateError):
    """A rate limit refused the call; ``retry_after`` is in whole seconds."""

    code = "too_many_requests"

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class Unavailable(BlindgateError):
    code = "unavailable"


def as_public(exc: BaseException) -> BlindgateError:
    """Return ``exc`` if it is a Blindgate error, else the generic internal error."""
    if isinstance(exc, BlindgateError):
        return exc
    return BlindgateError(code="internal")
