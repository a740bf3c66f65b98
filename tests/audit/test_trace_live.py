"""The trace on a real database (SQLite and PostgreSQL): what is recorded, who sees it,
atomicity under group commit, and tamper detection of the stored log."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from contracts.tlog.jcs import canonical_json
from contracts.tlog.merkle import leaf_hash, root_from_leaf_hashes
from gateway.audit.pinpoint import pinpoint
from gateway.audit.verify import verify_export
from gateway.cli.audit import export_trace
from gateway.cli.main import cli
from gateway.client import Client
from gateway.domain import Actor, Role
from gateway.errors import BlindgateError, NotFound
from gateway.http import create_app
from gateway.service.identity.schemas import OrganisationCreate
from gateway.store import SqlStore
from tests.server import running
from tests.world import World, client


def all_entries(world: World) -> list[dict]:
    page = world.services.audit.entries(world.auditor, limit=1000, cursor=None)
    return [item.entry for item in page.items]


def test_every_change_read_and_refusal_is_traced(world: World) -> None:
    actions = [e["action"] for e in all_entries(world)]
    assert actions[:2] == ["admin.bootstrap", "org.create"]
    assert actions.count("principal.create") == 4
    assert actions.count("site.register") == 2
    assert actions.count("asset.register") == 2
    svc = world.services
    svc.assets.get(world.operator, world.asset_a)
    svc.assets.list(world.operator, _page(world))
    with pytest.raises(NotFound):
        svc.assets.get(world.holder_a, world.asset_b)
    with pytest.raises(BlindgateError):
        svc.identities.authenticate("Bearer bg_notarealkey")
    tail = all_entries(world)[-4:]
    assert [e["action"] for e in tail] == [
        "asset.read",
        "asset.list",
        "asset.read",
        "auth.authenticate",
    ]
    assert tail[0]["decision"] == "allow"
    assert tail[0]["actor"] == {
        "principal": world.operator.principal_id,
        "org": world.operator.org_id,
        "role": "operator",
    }
    assert set(tail[1]["target"]["assets"]) == {world.asset_a, world.asset_b}
    assert tail[2]["decision"] == "deny"
    assert tail[2]["reasons"][0]["code"] == "not_found"
    assert tail[2]["subject_org"] == world.holder_b.org_id
    assert tail[3]["actor"] is None
    assert tail[3]["reasons"][0]["code"] == "unauthenticated"


def _page(world: World):
    from gateway.service.core.context import page_request

    return page_request(world.services.ctx.settings, None, None)


def test_trace_holds_no_secrets_or_locations(world: World, store: SqlStore) -> None:
    with pytest.raises(BlindgateError):
        world.services.identities.authenticate(f"Bearer {world.operator_key}x")
    with store.engine.connect() as conn:
        blob = b"".join(bytes(r[0]) for r in conn.execute(text("SELECT leaf FROM trace_entry")))
    for secret in (world.admin_key, world.holder_a_key, world.operator_key, world.auditor_key):
        assert secret.encode() not in blob
    assert b"/srv/data" not in blob  # site-local locations are not traced


def test_each_role_sees_its_share(world: World) -> None:
    svc = world.services
    svc.assets.get(world.operator, world.asset_b)
    holder_a = svc.audit.entries(world.holder_a, limit=1000, cursor=None).items
    assert holder_a and all(i.entry.get("subject_org") == world.holder_a.org_id for i in holder_a)
    operator = svc.audit.entries(world.operator, limit=1000, cursor=None).items
    assert [i.entry["action"] for i in operator] == ["asset.read"]
    everything = svc.audit.entries(world.auditor, limit=1000, cursor=None).items
    assert len(everything) > len(holder_a) + len(operator)
    filtered = svc.audit.entries(
        world.auditor, limit=1000, cursor=None, asset_id=world.asset_b
    ).items
    assert {i.entry["action"] for i in filtered} == {"asset.register", "asset.read"}


def test_group_commit_is_atomic_and_gap_free(world: World, store: SqlStore) -> None:
    svc = world.services
    errors: list[str] = []

    def worker(n: int) -> None:
        name = "Hospital A" if n % 3 == 0 else f"Org {n}"  # every third one is a duplicate
        try:
            svc.identities.create_org(world.admin, OrganisationCreate(name=name))
        except BlindgateError as exc:
            errors.append(exc.code)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["conflict"] * 10
    with store.read() as tx:
        rows = tx.trace_entries(after=None, limit=10_000)
        size = tx.trace_size()
        orgs = tx.list_orgs(after=None, limit=1000)
    assert [r.index for r in rows] == list(range(size))
    entries = [json.loads(r.leaf) for r in rows]
    created = [e for e in entries if e["action"] == "org.create" and e["decision"] == "allow"]
    denied = [e for e in entries if e["action"] == "org.create" and e["decision"] == "deny"]
    assert len(created) == 4 + 20 and len(denied) == 10
    assert len(orgs) == 5 + 20  # state changes match the allow entries exactly
    for r in rows:
        assert canonical_json(json.loads(r.leaf)) == r.leaf
        assert r.committed_hash == leaf_hash(r.leaf)
    size_cp, note = svc.audit.log.checkpoint()
    root = root_from_leaf_hashes([leaf_hash(r.leaf) for r in rows[:size_cp]])
    assert root.hex() in _root_hex(note)


def _root_hex(note: str) -> str:
    import base64

    return base64.b64decode(note.splitlines()[2]).hex()


@pytest.fixture
def served(world: World) -> Iterator[tuple[World, str]]:
    with running(create_app(world.services)) as url:
        yield world, url


def _export(world: World, url: str, out: Path) -> None:
    with Client(url, world.auditor_key) as c:
        export_trace(c, out, progress=False)


def _activity(world: World, url: str, n: int = 6) -> None:
    c = client(url, world.operator_key)
    for _ in range(n):
        assert c.get(f"/v1/assets/{world.asset_a}").status_code == 200


def test_clean_export_verifies(served: tuple[World, str], tmp_path: Path) -> None:
    world, url = served
    _activity(world, url)
    _export(world, url, tmp_path / "x")
    report = verify_export(tmp_path / "x")
    assert report.ok, report.failure
    assert report.verified_size == report.entries > 15


def _tamper(store: SqlStore, *statements: str) -> None:
    with store.engine.begin() as conn:
        for sql in statements:
            conn.execute(text(sql))


def _failure(out: Path):
    report = pinpoint(out, verify_export(out))
    assert not report.ok
    return report.failure


def test_edited_entry_is_named(served: tuple[World, str], store: SqlStore, tmp_path: Path) -> None:
    world, url = served
    _activity(world, url)
    world.services.audit.log.checkpoint()
    with store.engine.connect() as conn:
        leaf = bytes(conn.execute(text("SELECT leaf FROM trace_entry WHERE idx = 7")).scalar_one())
    forged = leaf.replace(b'"allow"', b'"deny"')
    assert forged != leaf
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE trace_entry SET leaf = :l WHERE idx = 7"), {"l": forged})
    _export(world, url, tmp_path / "x")
    failure = _failure(tmp_path / "x")
    assert failure.kind == "root_mismatch"
    assert failure.first_bad_index == failure.last_bad_index == 7


def test_deleted_row_is_named(served: tuple[World, str], store: SqlStore, tmp_path: Path) -> None:
    world, url = served
    _activity(world, url)
    world.services.audit.log.checkpoint()
    _tamper(store, "DELETE FROM trace_entry WHERE idx = 9")
    _export(world, url, tmp_path / "x")
    failure = _failure(tmp_path / "x")
    assert failure.first_bad_index == 9


def test_swapped_rows_are_named(served: tuple[World, str], store: SqlStore, tmp_path: Path) -> None:
    world, url = served
    _activity(world, url)
    world.services.audit.log.checkpoint()
    with store.engine.begin() as conn:
        a, b = (
            bytes(conn.execute(text(f"SELECT leaf FROM trace_entry WHERE idx = {i}")).scalar_one())
            for i in (3, 4)
        )
        conn.execute(text("UPDATE trace_entry SET leaf = :l WHERE idx = 3"), {"l": b})
        conn.execute(text("UPDATE trace_entry SET leaf = :l WHERE idx = 4"), {"l": a})
    _export(world, url, tmp_path / "x")
    failure = _failure(tmp_path / "x")
    assert failure.first_bad_index == 3


def test_truncated_log_is_caught_as_rollback(
    served: tuple[World, str], store: SqlStore, tmp_path: Path
) -> None:
    world, url = served
    _activity(world, url)
    runner = CliRunner()
    state = tmp_path / "state.json"
    args = ["audit", "verify", "--url", url, "--api-key", world.auditor_key, "--state", str(state)]
    first = runner.invoke(
        cli, ["audit", "checkpoint", "--url", url, "--api-key", world.auditor_key]
    )
    assert first.exit_code == 0
    seen = runner.invoke(cli, args)
    assert seen.exit_code == 0, seen.output
    _tamper(
        store,
        "DELETE FROM trace_entry WHERE idx >= 10",
        "DELETE FROM trace_node WHERE (key & 72057594037927935) >= 5",
        "UPDATE trace_head SET size = 10",
        "DELETE FROM trace_checkpoint WHERE size > 10",
    )
    world.services.ctx.store.trace_writer.forget()
    world.services.audit.log.checkpoint()
    caught = runner.invoke(cli, args)
    assert caught.exit_code == 1
    assert "rollback" in caught.output


def test_old_checkpoint_is_caught(
    served: tuple[World, str], store: SqlStore, tmp_path: Path
) -> None:
    world, url = served
    runner = CliRunner()
    state = tmp_path / "state.json"
    args = ["audit", "verify", "--url", url, "--api-key", world.auditor_key, "--state", str(state)]
    world.services.audit.log.checkpoint()
    _activity(world, url)
    latest_size, _ = world.services.audit.log.checkpoint()
    assert runner.invoke(cli, args).exit_code == 0
    _tamper(store, f"DELETE FROM trace_checkpoint WHERE size = {latest_size}")
    caught = runner.invoke(cli, args)
    assert caught.exit_code == 1
    assert "rollback" in caught.output
    assert json.loads(state.read_text())[url]["checkpoint"].split("\n")[1] == str(latest_size)


def test_forked_log_is_caught(served: tuple[World, str], store: SqlStore, tmp_path: Path) -> None:
    """Rewrite history at the same size and re-sign: the consistency proof fails."""
    world, url = served
    runner = CliRunner()
    state = tmp_path / "state.json"
    args = ["audit", "verify", "--url", url, "--api-key", world.auditor_key, "--state", str(state)]
    world.services.audit.log.checkpoint()
    assert runner.invoke(cli, args).exit_code == 0
    size = world.services.audit.log.size()
    keep = size - 3
    _tamper(
        store,
        f"DELETE FROM trace_entry WHERE idx >= {keep}",
        "DELETE FROM trace_node",
        "UPDATE trace_head SET size = 0",
        "DELETE FROM trace_checkpoint",
    )
    # rebuild the node table from the remaining (unchanged) leaves, then grow differently
    with store.engine.connect() as conn:
        leaves = [
            bytes(r[0])
            for r in conn.execute(
                text(f"SELECT leaf FROM trace_entry WHERE idx < {keep} ORDER BY idx")
            )
        ]
    _tamper(store, "DELETE FROM trace_entry")
    world.services.ctx.store.trace_writer.forget()
    from gateway.domain import TraceRecord

    def replay(tx):
        from datetime import UTC, datetime

        for leaf in leaves:
            tx.append_trace(TraceRecord(json.loads(leaf), datetime.now(UTC), "replay"))
        for n in range(6):
            tx.append_trace(TraceRecord({"forged": n}, datetime.now(UTC), "forged"))

    store.transact(replay)
    world.services.audit.log.checkpoint()
    caught = runner.invoke(cli, args)
    assert caught.exit_code == 1
    assert "fork" in caught.output


def test_live_verify_accepts_growth(served: tuple[World, str], tmp_path: Path) -> None:
    world, url = served
    runner = CliRunner()
    args = [
        "audit",
        "verify",
        "--url",
        url,
        "--api-key",
        world.auditor_key,
        "--state",
        str(tmp_path / "s.json"),
    ]
    for _ in range(3):
        _activity(world, url, 2)
        world.services.audit.log.checkpoint()
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output


def test_actor_helper_types() -> None:
    assert Actor("p", "o", Role.AUDITOR).role == "auditor"
