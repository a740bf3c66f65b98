"""Offline export verification: each kind of tampering is caught and its position named."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.tlog.checkpoint import (
    Checkpoint,
    encode_verifier_key,
    join_notes,
    sign_checkpoint,
    split_notes,
)
from contracts.tlog.errors import CheckpointError, ForkError, RollbackError, TamperedError
from contracts.tlog.tree import MemoryTree
from gateway.audit.export import (
    CHECKPOINTS_FILE,
    ENTRIES_FILE,
    PUBLIC_KEY_FILE,
    entry_leaf_hash,
    write_export,
)
from gateway.audit.verify import VerifyReport, verify_export, verify_live_state

ORIGIN = "blindgate.test/trace"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VKEY = encode_verifier_key(ORIGIN, KEY.public_key())


def make_entries(count: int) -> list[dict[str, object]]:
    return [
        {"seq": i, "kind": "job.released", "job": f"job-{i:04d}", "ok": i % 3 != 0, "v": i / 7}
        for i in range(count)
    ]


def make_tree(entries: Sequence[dict[str, object]]) -> MemoryTree:
    return MemoryTree(entry_leaf_hash(entry) for entry in entries)


def note(tree: MemoryTree, size: int) -> str:
    return sign_checkpoint(ORIGIN, size, tree.root(size), KEY, ORIGIN)


def build(directory: Path, count: int, sizes: Sequence[int]) -> MemoryTree:
    entries = make_entries(count)
    tree = make_tree(entries)
    write_export(directory, entries, [note(tree, size) for size in sizes], VKEY)
    return tree


def lines(directory: Path) -> list[bytes]:
    return (directory / ENTRIES_FILE).read_bytes().splitlines(keepends=True)


def write_lines(directory: Path, content: Sequence[bytes]) -> None:
    (directory / ENTRIES_FILE).write_bytes(b"".join(content))


def failure_of(report: VerifyReport) -> tuple[str, int | None, int | None, int | None]:
    assert report.failure is not None, "tampering went unnoticed"
    f = report.failure
    return f.kind, f.first_bad_index, f.last_bad_index, f.checkpoint


EVERY = list(range(1, 21))


def test_clean_export_verifies(tmp_path: Path) -> None:
    tree = build(tmp_path, 20, [0, 5, 5, 12, 20])
    report = verify_export(tmp_path)
    assert report.ok and report.failure is None
    assert (report.entries, report.checkpoints, report.verified_size) == (20, 5, 20)
    assert report.latest == Checkpoint(ORIGIN, 20, tree.root())
    report.raise_for_failure()


def test_entries_after_last_checkpoint_are_reported_unverified(tmp_path: Path) -> None:
    build(tmp_path, 20, [8])
    report = verify_export(tmp_path)
    assert report.ok
    assert (report.entries, report.verified_size) == (20, 8)


@pytest.mark.parametrize("k", [0, 7, 19])
def test_edited_entry_pinpointed_with_dense_checkpoints(tmp_path: Path, k: int) -> None:
    build(tmp_path, 20, EVERY)
    content = lines(tmp_path)
    content[k] = content[k].replace(b'"job-', b'"jOb-')
    write_lines(tmp_path, content)
    report = verify_export(tmp_path)
    assert failure_of(report) == ("root_mismatch", k, k, k)
    assert report.verified_size == k
    with pytest.raises(TamperedError) as raised:
        report.raise_for_failure()
    assert raised.value.code == "tampered"
    assert raised.value.index == k


def test_edited_entry_narrowed_to_checkpoint_range(tmp_path: Path) -> None:
    build(tmp_path, 20, [4, 8, 12, 16, 20])
    content = lines(tmp_path)
    content[10] = content[10].replace(b'"ok":true', b'"ok":false')
    write_lines(tmp_path, content)
    assert failure_of(verify_export(tmp_path)) == ("root_mismatch", 8, 11, 2)


def test_broken_json_named(tmp_path: Path) -> None:
    build(tmp_path, 20, EVERY)
    content = lines(tmp_path)
    content[6] = content[6].replace(b"{", b"[", 1)
    write_lines(tmp_path, content)
    assert failure_of(verify_export(tmp_path))[:3] == ("bad_entry", 6, 6)


@pytest.mark.parametrize("k", [0, 9, 19])
def test_deleted_line_named(tmp_path: Path, k: int) -> None:
    build(tmp_path, 20, [20])
    content = lines(tmp_path)
    del content[k]
    write_lines(tmp_path, content)
    if k == 19:
        assert failure_of(verify_export(tmp_path)) == ("truncated", 19, 19, 0)
    else:
        assert failure_of(verify_export(tmp_path))[:3] == ("bad_index", k, k)


def test_swapped_lines_named(tmp_path: Path) -> None:
    build(tmp_path, 20, [20])
    content = lines(tmp_path)
    content[4], content[5] = content[5], content[4]
    write_lines(tmp_path, content)
    assert failure_of(verify_export(tmp_path))[:3] == ("bad_index", 4, 4)


def test_duplicated_line_named(tmp_path: Path) -> None:
    build(tmp_path, 20, [20])
    content = lines(tmp_path)
    content.insert(12, content[11])
    write_lines(tmp_path, content)
    assert failure_of(verify_export(tmp_path))[:3] == ("bad_index", 12, 12)


def test_reindexed_swap_caught_by_roots(tmp_path: Path) -> None:
    build(tmp_path, 20, EVERY)
    content = lines(tmp_path)
    a, b = content[3], content[4]
    content[3] = b.replace(b'"index":4', b'"index":3')
    content[4] = a.replace(b'"index":3', b'"index":4')
    write_lines(tmp_path, content)
    assert failure_of(verify_export(tmp_path))[:3] == ("root_mismatch", 3, 3)


def test_truncated_mid_line_named(tmp_path: Path) -> None:
    build(tmp_path, 20, [10, 20])
    data = (tmp_path / ENTRIES_FILE).read_bytes()
    cut = sum(len(line) for line in lines(tmp_path)[:15]) + 9
    (tmp_path / ENTRIES_FILE).write_bytes(data[:cut])
    report = verify_export(tmp_path)
    assert failure_of(report)[:3] == ("bad_entry", 15, 15)
    assert report.verified_size == 10


def test_truncated_at_line_boundary_named(tmp_path: Path) -> None:
    build(tmp_path, 20, [10, 20])
    write_lines(tmp_path, lines(tmp_path)[:13])
    assert failure_of(verify_export(tmp_path)) == ("truncated", 13, 13, 1)


def test_checkpoint_with_bad_signature_named(tmp_path: Path) -> None:
    tree = build(tmp_path, 20, [5, 10, 20])
    notes = split_notes((tmp_path / CHECKPOINTS_FILE).read_text())
    forger = Ed25519PrivateKey.from_private_bytes(bytes(32))
    notes.insert(2, sign_checkpoint(ORIGIN, 15, tree.root(15), forger, ORIGIN))
    (tmp_path / CHECKPOINTS_FILE).write_text(join_notes(notes))
    report = verify_export(tmp_path)
    assert failure_of(report) == ("bad_checkpoint", None, None, 2)
    with pytest.raises(CheckpointError):
        report.raise_for_failure()


def test_correctly_signed_checkpoint_with_bad_root_is_a_fork(tmp_path: Path) -> None:
    tree = build(tmp_path, 20, [5, 10, 20])
    notes = split_notes((tmp_path / CHECKPOINTS_FILE).read_text())
    notes.insert(2, sign_checkpoint(ORIGIN, 15, tree.root(14), KEY, ORIGIN))
    (tmp_path / CHECKPOINTS_FILE).write_text(join_notes(notes))
    report = verify_export(tmp_path)
    assert failure_of(report) == ("fork", None, None, 2)
    with pytest.raises(ForkError):
        report.raise_for_failure()


def test_two_roots_for_one_size_is_a_fork(tmp_path: Path) -> None:
    tree = build(tmp_path, 20, [5, 10, 20])
    notes = split_notes((tmp_path / CHECKPOINTS_FILE).read_text())
    notes.insert(2, sign_checkpoint(ORIGIN, 10, tree.root(9), KEY, ORIGIN))
    (tmp_path / CHECKPOINTS_FILE).write_text(join_notes(notes))
    assert failure_of(verify_export(tmp_path)) == ("fork", None, None, 2)


def test_checkpoints_out_of_order_named(tmp_path: Path) -> None:
    build(tmp_path, 20, [5, 10, 20])
    notes = split_notes((tmp_path / CHECKPOINTS_FILE).read_text())
    notes[1], notes[2] = notes[2], notes[1]
    (tmp_path / CHECKPOINTS_FILE).write_text(join_notes(notes))
    assert failure_of(verify_export(tmp_path)) == ("checkpoint_order", None, None, 2)


def test_checkpoint_file_edits_named(tmp_path: Path) -> None:
    build(tmp_path, 20, [5, 10, 20])
    text = (tmp_path / CHECKPOINTS_FILE).read_text()
    (tmp_path / CHECKPOINTS_FILE).write_text(text.replace("\n10\n", "\n11\n"))
    assert failure_of(verify_export(tmp_path)) == ("bad_checkpoint", None, None, 1)
    (tmp_path / CHECKPOINTS_FILE).write_text(text[: len(text) // 2])
    assert failure_of(verify_export(tmp_path))[0] == "bad_checkpoint"
    (tmp_path / CHECKPOINTS_FILE).write_text("")
    assert failure_of(verify_export(tmp_path))[0] == "bad_export"


def test_key_file_problems(tmp_path: Path) -> None:
    build(tmp_path, 5, [5])
    other = encode_verifier_key(
        ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    )
    (tmp_path / PUBLIC_KEY_FILE).write_text(other + "\n")
    assert failure_of(verify_export(tmp_path)) == ("bad_checkpoint", None, None, 0)
    (tmp_path / PUBLIC_KEY_FILE).write_text("garbage\n")
    assert failure_of(verify_export(tmp_path))[0] == "bad_export"
    (tmp_path / PUBLIC_KEY_FILE).unlink()
    assert failure_of(verify_export(tmp_path))[0] == "bad_export"
    assert failure_of(verify_export(tmp_path / "missing"))[0] == "bad_export"


def test_trusted_checkpoint_detects_rollback_and_fork(tmp_path: Path) -> None:
    entries = make_entries(20)
    tree = make_tree(entries)
    write_export(tmp_path, entries[:12], [note(tree, 6), note(tree, 12)], VKEY)
    assert verify_export(tmp_path).ok
    seen = Checkpoint(ORIGIN, 20, tree.root(20))
    report = verify_export(tmp_path, trusted=seen)
    assert failure_of(report) == ("rollback", 12, 19, None)
    with pytest.raises(RollbackError):
        report.raise_for_failure()
    forked = Checkpoint(ORIGIN, 6, tree.root(5))
    assert failure_of(verify_export(tmp_path, trusted=forked))[0] == "fork"
    assert verify_export(tmp_path, trusted=Checkpoint(ORIGIN, 9, tree.root(9))).ok


@settings(max_examples=40, deadline=None)
@given(
    count=st.integers(1, 30),
    data=st.data(),
)
def test_edit_anywhere_is_bracketed_by_checkpoints(count: int, data: st.DataObject) -> None:
    sizes = sorted(data.draw(st.sets(st.integers(0, count), min_size=1, max_size=6)))
    k = data.draw(st.integers(0, count - 1))
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        build(directory, count, sizes)
        content = lines(directory)
        content[k] = content[k].replace(b'"kind":"job', b'"kind":"jib')
        write_lines(directory, content)
        report = verify_export(directory)
    covering = [size for size in sizes if size > k]
    if not covering:
        assert report.ok
        assert report.verified_size <= k
        return
    below = [size for size in sizes if size <= k]
    start = max(below, default=0)
    assert report.failure is not None
    assert report.failure.kind == "root_mismatch"
    assert (report.failure.first_bad_index, report.failure.last_bad_index) == (
        start,
        min(covering) - 1,
    )
    assert report.verified_size == start if below else report.verified_size == 0


def test_live_state() -> None:
    entries = make_entries(20)
    tree = make_tree(entries)
    old = Checkpoint(ORIGIN, 7, tree.root(7))
    new = Checkpoint(ORIGIN, 20, tree.root(20))
    assert verify_live_state(old, new, tree.consistency_proof(7, 20)) == new
    assert verify_live_state(new, new, []) == new
    with pytest.raises(RollbackError):
        verify_live_state(new, old, [])
    with pytest.raises(ForkError):
        verify_live_state(new, Checkpoint(ORIGIN, 20, tree.root(19)), [])
    forked = make_tree([*entries[:5], {"seq": 5, "forged": True}, *entries[6:]])
    with pytest.raises(ForkError):
        verify_live_state(
            old, Checkpoint(ORIGIN, 20, forked.root(20)), forked.consistency_proof(7, 20)
        )
    with pytest.raises(ForkError):
        verify_live_state(old, new, tree.consistency_proof(7, 20)[:-1])
    with pytest.raises(CheckpointError):
        verify_live_state(old, Checkpoint("other.test", 20, tree.root(20)), [])


def test_overlong_line_named(tmp_path: Path) -> None:
    build(tmp_path, 5, [5])
    content = lines(tmp_path)
    content[2] = b'{"index":2,"entry":{"x":"' + b"a" * (1 << 20) + b'"}}\n'
    write_lines(tmp_path, content)
    assert failure_of(verify_export(tmp_path))[:3] == ("bad_entry", 2, 2)
