"""Request dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response

from gateway.domain import Actor
from gateway.service import Services
from gateway.service.core.context import PageRequest, page_request


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


def actor(request: Request) -> Actor:
    """The authenticated caller (401 without a valid ``Authorization: Bearer`` key).

    Synchronous on purpose: the key lookup is a blocking store read, run in the threadpool.
    The cheap dependencies are ``async`` so they do not cost a threadpool hop each."""
    svc: Services = request.app.state.services
    return svc.identities.authenticate(request.headers.get("authorization"), source(request))


def source(request: Request) -> str | None:
    """The caller's address as the connection shows it (forwarding headers are not trusted)."""
    return request.client.host if request.client is not None else None


async def page(
    request: Request,
    limit: Annotated[int | None, Query(description="Items per page")] = None,
    cursor: Annotated[str | None, Query(description="Opaque cursor from next_cursor")] = None,
) -> PageRequest:
    svc: Services = request.app.state.services
    return page_request(svc.ctx.settings, limit, cursor)


def deprecated_for(successor: str) -> Any:
    """A route dependency for a deprecated path: its answers say so (``Deprecation: true``)
    and name the path that replaces it (``Link: <successor>; rel="successor-version"``)."""

    async def mark(response: Response) -> None:
        response.headers["Deprecation"] = "true"
        response.headers["Link"] = f'<{successor}>; rel="successor-version"'

    return Depends(mark)


Svc = Annotated[Services, Depends(services)]
Caller = Annotated[Actor, Depends(actor)]
Paging = Annotated[PageRequest, Depends(page)]
