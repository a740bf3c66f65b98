"""Shared fixtures: stores on SQLite and on a private PostgreSQL cluster, services, servers."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.service import Services, build_services
from gateway.store import SqlStore, open_store
from tests.pg import PgCluster, pg_cluster
from tests.world import StandInAgents, World, seed_world


class SeededRandom:
    """Deterministic randomness for tests."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgCluster]:
    try:
        with pg_cluster() as cluster:
            yield cluster
    except (FileNotFoundError, KeyError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required under CI: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    cluster: PgCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SqlStore]:
    s = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield s
    s.close()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", dev_mode=True, max_body_bytes=64 * 1024)


@pytest.fixture
def world(services: Services) -> World:
    return seed_world(services)


@pytest.fixture
def services(store: SqlStore, settings: Settings, clock: FixedClock) -> Services:
    return build_services(
        store, settings, clock=clock, random=SeededRandom(7), prover=StandInAgents()
    )
