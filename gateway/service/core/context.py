"""What every use case needs: the store, the clock, identifiers and settings."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.clock import Clock, IdFactory, RandomSource
from gateway.config import Settings
from gateway.errors import BadPagination, ValidationFailed
from gateway.store import Store


@dataclass(frozen=True, slots=True)
class ServiceContext:
    store: Store
    clock: Clock
    ids: IdFactory
    random: RandomSource
    settings: Settings


@dataclass(frozen=True, slots=True)
class PageRequest:
    """A validated page request: at most ``limit`` items with ids after ``after``."""

    limit: int
    after: str | None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def page_request(settings: Settings, limit: int | None, cursor: str | None) -> PageRequest:
    """Validate pagination parameters; bad values raise ``bad_pagination``."""
    if limit is None:
        limit = settings.page_size_default
    if not 1 <= limit <= settings.page_size_max:
        raise BadPagination(f"limit must be between 1 and {settings.page_size_max}")
    after = None
    if cursor is not None:
        if len(cursor) > 200:
            raise BadPagination("cursor is not valid")
        try:
            after = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise BadPagination("cursor is not valid") from None
        if not after or not after.isascii() or not after.isprintable():
            raise BadPagination("cursor is not valid")
    return PageRequest(limit=limit, after=after)


def utc_instant(value: datetime, name: str) -> datetime:
    """``value`` as an instant in UTC; a time without a time zone names no instant (422)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationFailed(
            f"{name} must carry a time zone, e.g. 2026-01-31T00:00:00Z or +08:00"
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValidationFailed(f"{name} is out of range") from None
