"""``blindgate audit verify --url`` re-hashes the entries themselves: an entry edited or a
row deleted directly in the database, then the gateway restarted, is caught and named (on
SQLite and PostgreSQL); an honest log passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from gateway.cli.main import cli
from gateway.config import Settings
from gateway.http import create_app
from gateway.service import build_services
from gateway.store import SqlStore, open_store
from tests.server import running
from tests.world import World, client


@contextmanager
def _gateway(store_url: str, settings: Settings) -> Iterator[str]:
    """A gateway process over the database: its own store, services and server."""
    store = open_store(store_url)
    try:
        with running(create_app(build_services(store, settings))) as url:
            yield url
    finally:
        store.close()


class Verifier:
    def __init__(self, world: World, state: Path) -> None:
        self.world = world
        self.state = state

    def run(self, url: str, *extra: str) -> Result:
        if self.state.exists():  # the same log, served again at another port
            saved = json.loads(self.state.read_text())
            saved[url] = next(iter(saved.values()))
            self.state.write_text(json.dumps(saved))
        args = ["audit", "verify", "--url", url, "--api-key", self.world.auditor_key]
        return CliRunner().invoke(cli, [*args, "--state", str(self.state), *extra])


def _activity(world: World, url: str, n: int = 6) -> None:
    operator = client(url, world.operator_key)
    for _ in range(n):
        assert operator.get(f"/v1/assets/{world.asset_a}").status_code == 200


def _tamper(store: SqlStore, sql: str, **params: object) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(sql), params)


def _leaf(store: SqlStore, index: int) -> bytes:
    with store.engine.connect() as conn:
        query = text("SELECT leaf FROM trace_entry WHERE idx = :i")
        return bytes(conn.execute(query, {"i": index}).scalar_one())


@pytest.fixture
def seen(world: World, store_url: str, settings: Settings, tmp_path: Path) -> tuple:
    """A gateway whose log a verifier has seen once (it holds a checkpoint), then grown."""
    verifier = Verifier(world, tmp_path / "state.json")
    with _gateway(store_url, settings) as url:
        first = verifier.run(url)
        assert first.exit_code == 0, first.output
        held = json.loads(verifier.state.read_text())[url]["checkpoint"]
        _activity(world, url)
        world.services.audit.log.checkpoint()
    return verifier, int(held.split("\n")[1])


def test_an_honest_log_passes_incrementally_and_in_full(
    seen: tuple, store_url: str, settings: Settings
) -> None:
    verifier, held = seen
    with _gateway(store_url, settings) as url:
        again = verifier.run(url)
        assert again.exit_code == 0, again.output
        assert f"entries {held}.." in again.output
        full = verifier.run(url, "--full")
        assert full.exit_code == 0, full.output
        assert "entries 0.." in full.output


def test_an_edited_entry_is_named_after_a_restart(
    seen: tuple, store: SqlStore, store_url: str, settings: Settings
) -> None:
    verifier, held = seen
    victim = held + 2
    forged = _leaf(store, victim).replace(b'"allow"', b'"deny"')
    _tamper(store, "UPDATE trace_entry SET leaf = :l WHERE idx = :i", l=forged, i=victim)
    with _gateway(store_url, settings) as url:  # the gateway restarted
        caught = verifier.run(url)
    assert caught.exit_code == 1
    assert f"entry {victim} was altered" in caught.output


def test_a_deleted_row_is_named_after_a_restart(
    seen: tuple, store: SqlStore, store_url: str, settings: Settings
) -> None:
    verifier, held = seen
    victim = held + 1
    _tamper(store, "DELETE FROM trace_entry WHERE idx = :i", i=victim)
    with _gateway(store_url, settings) as url:
        caught = verifier.run(url)
    assert caught.exit_code == 1
    assert f"entry {victim} is missing" in caught.output


def test_an_unreadable_entry_is_named(
    seen: tuple, store: SqlStore, store_url: str, settings: Settings
) -> None:
    verifier, held = seen
    _tamper(store, "UPDATE trace_entry SET leaf = :l WHERE idx = :i", l=b"\x00garbage", i=held)
    with _gateway(store_url, settings) as url:
        caught = verifier.run(url)
    assert caught.exit_code == 1
    assert f"entry {held} was altered" in caught.output


def test_an_edit_before_the_held_checkpoint_needs_full(
    seen: tuple, store: SqlStore, store_url: str, settings: Settings
) -> None:
    verifier, held = seen
    victim = held - 3
    forged = _leaf(store, victim).replace(b'"allow"', b'"deny"')
    assert forged != _leaf(store, victim)
    _tamper(store, "UPDATE trace_entry SET leaf = :l WHERE idx = :i", l=forged, i=victim)
    with _gateway(store_url, settings) as url:
        assert verifier.run(url).exit_code == 0  # only what was added since is re-hashed
        caught = verifier.run(url, "--full")
    assert caught.exit_code == 1
    assert f"entry {victim} was altered" in caught.output


def test_verify_url_needs_an_auditor(world: World, store_url: str, settings: Settings) -> None:
    with _gateway(store_url, settings) as url:
        args = ["audit", "verify", "--url", url, "--api-key", world.operator_key]
        result = CliRunner().invoke(cli, [*args, "--state", "/nonexistent/state.json"])
    assert result.exit_code == 2
    assert "auditor" in result.output
