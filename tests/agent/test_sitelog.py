"""The site's own log: durable appends, signed checkpoints, and tampering detected."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.tlog.checkpoint import parse_and_verify_checkpoint
from contracts.tlog.errors import CheckpointError, EntryError
from contracts.tlog.jcs import canonical_json
from contracts.tlog.merkle import leaf_hash, root_from_leaf_hashes
from sandbox.agent.sitelog import SiteLog, SiteLogError, log_origin


def ticket(n: int, decision: str = "accept") -> dict[str, Any]:
    """A ticket entry as the agent's ticket path writes it."""
    return {
        "at": f"2026-05-01T08:00:{n % 60:02d}.000000Z",
        "event": "ticket",
        "fragment": f"job_{n}.ast_1.abc",
        "job": f"job_{n}",
        "asset": "ast_1",
        "kind": "sql_aggregate",
        "decision": decision,
        "reason": "ok" if decision == "accept" else "bad_signature",
        "epsilon": 0.5,
        "delta": 1e-7,
        "ticket_sha256": f"{n:064x}",
    }


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def filled(path: Path, key: Ed25519PrivateKey, count: int = 5) -> SiteLog:
    log = SiteLog.open(path, key)
    for n in range(count):
        assert log.append(ticket(n)) == n
    return log


def tamper(path: Path, statement: str, *args: Any) -> None:
    with sqlite3.connect(path) as db:
        db.execute(statement, args)


def test_entries_are_leaves_of_a_signed_rfc6962_tree(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "log.db"
    log = filled(path, key)
    assert [e.entry for e in log.entries()] == [ticket(n) for n in range(5)]
    assert [e.index for e in log.entries(after=2, limit=1)] == [3]
    checkpoint = parse_and_verify_checkpoint(log.checkpoint(), log.verifier_key)
    assert checkpoint.origin == log_origin(key.public_key())
    assert checkpoint.origin == "blindgate.site/" + key.public_key().public_bytes_raw().hex()[:16]
    assert checkpoint.size == 5
    leaves = [leaf_hash(canonical_json(ticket(n))) for n in range(5)]
    assert checkpoint.root == root_from_leaf_hashes(leaves)
    report = log.verify()
    assert report.ok and report.size == 5 and report.checkpoints == 6
    log.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_log_survives_a_restart_and_readers_cannot_write(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "log.db"
    filled(path, key).close()
    again = SiteLog.open(path, key)
    assert again.size == 5
    assert again.append(ticket(5)) == 5
    again.close()
    reader = SiteLog.read(path, key.public_key())
    assert reader.verify().ok and reader.verify().size == 6
    with pytest.raises(SiteLogError):
        reader.append(ticket(6))
    reader.close()
    with pytest.raises(SiteLogError):
        SiteLog.read(tmp_path / "missing.db", key.public_key())


def test_an_edited_row_is_found(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "log.db"
    filled(path, key).close()
    edited = canonical_json({**ticket(2), "decision": "refuse"})
    tamper(path, "UPDATE entry SET leaf = ? WHERE idx = 2", edited)
    report = SiteLog.read(path, key.public_key()).verify()
    assert not report.ok
    assert report.first_bad_index == 2
    assert report.problem == "entry 2 differs from what was signed"
    with pytest.raises(SiteLogError, match="does not verify"):
        SiteLog.open(path, key)


@pytest.mark.parametrize(
    ("index", "problem"),
    [(1, "entry 1 is missing"), (4, "entries from 4 are missing (signed size 5)")],
    ids=["middle", "last"],
)
def test_a_deleted_row_is_found(
    tmp_path: Path, key: Ed25519PrivateKey, index: int, problem: str
) -> None:
    path = tmp_path / "log.db"
    filled(path, key).close()
    tamper(path, "DELETE FROM entry WHERE idx = ?", index)
    report = SiteLog.read(path, key.public_key()).verify()
    assert not report.ok
    assert report.problem == problem
    assert report.first_bad_index == index
    with pytest.raises(SiteLogError):
        SiteLog.open(path, key)


def test_rows_without_a_checkpoint_and_forged_checkpoints_are_found(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    path = tmp_path / "log.db"
    filled(path, key).close()
    tamper(path, "DELETE FROM checkpoint WHERE size = 5")
    unsigned = SiteLog.read(path, key.public_key()).verify()
    assert unsigned.problem == "entries from 4 were never signed"
    forger = filled(tmp_path / "other.db", Ed25519PrivateKey.generate())
    forged = forger.checkpoint()
    forger.close()
    tamper(path, "INSERT INTO checkpoint (size, note) VALUES (5, ?)", forged)
    report = SiteLog.read(path, key.public_key()).verify()
    assert not report.ok
    assert report.problem is not None and report.problem.startswith("checkpoint 5:")
    with pytest.raises(CheckpointError):
        parse_and_verify_checkpoint(forged, SiteLog.read(path, key.public_key()).verifier_key)


def test_appends_from_many_threads_get_one_position_each(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = SiteLog.open(tmp_path / "log.db", key)
    positions: list[int] = []
    lock = threading.Lock()

    def work(worker: int) -> None:
        for n in range(25):
            index = log.append(ticket(worker * 100 + n))
            with lock:
                positions.append(index)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(positions) == list(range(200))
    assert log.verify().ok
    assert len(list(log.all_entries())) == 200
    log.close()


def test_values_json_cannot_carry_are_refused_and_nothing_is_written(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    log = filled(tmp_path / "log.db", key, 1)
    with pytest.raises(EntryError):
        log.append({**ticket(1), "epsilon": float("nan")})
    assert log.size == 1
    assert log.verify().ok
    log.close()


def test_a_log_kept_with_another_key_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "log.db"
    filled(path, key).close()
    with pytest.raises(SiteLogError, match="does not verify"):
        SiteLog.open(path, Ed25519PrivateKey.generate())
