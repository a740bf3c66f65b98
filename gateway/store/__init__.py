"""Persistence: the repository interface and its SQL implementation with migrations."""

from __future__ import annotations

from gateway.store.migrate import migrate
from gateway.store.repository import Store, Tx
from gateway.store.sql import SqlStore, make_engine


def open_store(url: str, *, upgrade: bool = True) -> SqlStore:
    """Open the store at ``url``, bringing its schema to the newest migration first."""
    engine = make_engine(url)
    if upgrade:
        migrate(engine)
    return SqlStore(engine)


__all__ = ["SqlStore", "Store", "Tx", "make_engine", "migrate", "open_store"]
