"""Authorisation helpers: roles, ownership and existence-hiding."""

from __future__ import annotations

from gateway.domain import Actor, Role
from gateway.errors import Forbidden, NotFound


def require_role(actor: Actor, *roles: Role) -> None:
    """Refuse with 403 unless the actor has one of ``roles``."""
    if actor.role not in roles:
        raise Forbidden(f"requires role {' or '.join(str(r) for r in roles)}")


def hide_unless(visible: bool, what: str) -> None:
    """Answer 404 for an object the actor may not see, so existence does not leak."""
    if not visible:
        raise NotFound(f"no such {what}")
