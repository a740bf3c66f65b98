"""The security console at ``/console``: a small static bundle (HTML, CSS, JavaScript,
all served by the gateway itself, nothing from a CDN) over a JSON API under
``/console/api`` that only an auditor's console session can read.

Sign-in: the auditor pastes an API key into the form, which posts it as JSON (so another
origin cannot post it without a CORS preflight the gateway never grants);
:class:`ConsoleSessions` accepts only an auditor's key and the answer sets an
``HttpOnly``, ``SameSite=Strict`` session cookie scoped to ``/console`` (``Secure`` over
HTTPS).  State-changing calls (suspend,
lift, sign out) need the session's CSRF token in ``X-CSRF-Token`` and, when the browser
sends one, an ``Origin`` equal to the gateway's own.  Every console answer forbids
framing and caching and carries a strict Content-Security-Policy (scripts, styles and
images from the gateway only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import StringConstraints

from gateway.errors import BlindgateError, Forbidden
from gateway.service import Services
from gateway.service.brakes.schemas import LiftIn, SuspensionIn
from gateway.service.core.schemas import Strict
from gateway.service.watch.sessions import ConsoleSession

STATIC = Path(__file__).parent / "static"
COOKIE = "blindgate_console"
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/console", include_in_schema=False)


class LoginIn(Strict):
    api_key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _svc(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def _secure(response: Response) -> Response:
    response.headers.update(HEADERS)
    return response


def _page(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def _login_page() -> Response:
    return _secure(HTMLResponse(_page("login.html")))


def _refusal(status_code: int, code: str, message: str) -> Response:
    body = {"error": {"code": code, "message": message, "detail": message}}
    return _secure(JSONResponse(body, status_code=status_code))


def _same_origin(request: Request) -> None:
    """Refuse a state-changing request that a browser says came from another origin."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        raise Forbidden("cross-origin request refused")


def _session(request: Request) -> ConsoleSession:
    return _svc(request).console.resolve(request.cookies.get(COOKIE))


def _mutating(request: Request) -> ConsoleSession:
    _same_origin(request)
    session = _session(request)
    _svc(request).console.check_csrf(session, request.headers.get("x-csrf-token"))
    return session


@router.get("")
def console(request: Request) -> Response:
    """The console for a signed-in auditor; the sign-in form otherwise."""
    try:
        _session(request)
    except BlindgateError:
        return _login_page()
    return _secure(HTMLResponse(_page("console.html")))


@router.post("/login")
def login(request: Request, body: LoginIn) -> Response:
    """Open a console session for an auditor's key (JSON ``{"api_key": ...}``)."""
    try:
        _same_origin(request)
        session_id, _ = _svc(request).console.login(body.api_key)
    except Forbidden:
        return _refusal(403, "forbidden", "Only an auditor's key opens the security console.")
    except BlindgateError as exc:
        message = "That key is not valid." if exc.code == "unauthenticated" else "Sign-in failed."
        return _refusal(exc.spec.http_status, exc.code, message)
    response = JSONResponse({"signed_in": True})
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(_svc(request).console.absolute),
        path="/console",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return _secure(response)


@router.post("/logout")
def logout(request: Request) -> Response:
    _mutating(request)
    _svc(request).console.logout(request.cookies.get(COOKIE))
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(COOKIE, path="/console")
    return _secure(response)


@router.get("/api/session")
def session(request: Request) -> Response:
    found = _session(request)
    actor = found.actor
    with _svc(request).ctx.store.read() as tx:
        principal = tx.get_principal(actor.principal_id)
        org = tx.get_org(actor.org_id)
    return _secure(
        JSONResponse(
            {
                "principal": actor.principal_id,
                "name": principal.name if principal else actor.principal_id,
                "org": actor.org_id,
                "org_name": org.name if org else actor.org_id,
                "csrf": found.csrf,
            }
        )
    )


@router.get("/api/feed")
def feed(
    request: Request,
    after: Annotated[int | None, Query(ge=-1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    principal: str | None = None,
    org: str | None = None,
    asset: str | None = None,
    action: str | None = None,
    decision: Annotated[str | None, Query(pattern="^(allow|deny)$")] = None,
) -> Response:
    """Trace entries: the newest ``limit``, or those after ``after`` (for polling)."""
    actor = _session(request).actor
    filters: dict[str, Any] = {
        "principal": principal or None,
        "org": org or None,
        "asset_id": asset or None,
        "action": action or None,
        "decision": decision or None,
    }
    items = _svc(request).watch.feed(actor, after=after, limit=limit, filters=filters)
    return _secure(JSONResponse({"items": items}))


@router.get("/api/overview")
def overview(request: Request) -> Response:
    actor = _session(request).actor
    return _secure(JSONResponse(_svc(request).watch.overview(actor)))


@router.post("/api/suspensions")
def suspend(request: Request, body: SuspensionIn) -> Response:
    actor = _mutating(request).actor
    out = _svc(request).brakes.suspend(actor, body)
    return _secure(JSONResponse(out.model_dump(mode="json"), status_code=201))


@router.post("/api/suspensions/{suspension_id}/lift")
def lift(request: Request, suspension_id: str, body: LiftIn) -> Response:
    actor = _mutating(request).actor
    out = _svc(request).brakes.lift(actor, suspension_id, body)
    return _secure(JSONResponse(out.model_dump(mode="json")))
