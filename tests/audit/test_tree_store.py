"""One conformance suite for every tree store, plus the compact range a writer keeps.

A SQL store joins by adding a factory to ``STORE_FACTORIES``: it must accept leaf hashes via
``append`` and then serve ``size`` and ``get_nodes`` for every complete node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.tlog.errors import ProofError
from contracts.tlog.merkle import (
    NodeId,
    consistency_proof,
    frontier_ids,
    inclusion_proof,
    leaf_hash,
    root_at,
)
from contracts.tlog.tree import CompactRange, MemoryTree, TreeStore
from tests.audit.reference import mth, path, proof


class DictNodeStore:
    """What a SQL store does: persist exactly the nodes ``CompactRange.append`` returns."""

    def __init__(self) -> None:
        self.nodes: dict[NodeId, bytes] = {}
        self.reads = 0
        self._range = CompactRange()

    @property
    def size(self) -> int:
        return self._range.size

    def append(self, leaf: bytes) -> int:
        index = self._range.size
        for node, value in self._range.append(leaf):
            assert node not in self.nodes, "each node is written exactly once"
            self.nodes[node] = value
        return index

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        self.reads += 1
        try:
            return [self.nodes[node] for node in ids]
        except KeyError as exc:
            raise ProofError(f"node {exc} absent") from exc


class AppendableStore(TreeStore, Protocol):
    def append(self, leaf: bytes) -> int: ...


STORE_FACTORIES: dict[str, Callable[[], AppendableStore]] = {
    "memory": MemoryTree,
    "dict": DictNodeStore,
}

LEAVES = [f"row {i}".encode() for i in range(130)]


@pytest.fixture(params=sorted(STORE_FACTORIES))
def store(request: pytest.FixtureRequest) -> AppendableStore:
    factory = STORE_FACTORIES[request.param]
    created = factory()
    for leaf in LEAVES:
        created.append(leaf_hash(leaf))
    return created


def test_store_serves_roots_and_proofs_for_every_past_size(store: AppendableStore) -> None:
    assert store.size == len(LEAVES)
    for size in range(len(LEAVES) + 1):
        assert root_at(size, store.get_nodes) == mth(LEAVES[:size])
    for size in (1, 2, 3, 7, 8, 9, 64, 65, 100, 129, 130):
        for index in range(0, size, 3):
            assert inclusion_proof(index, size, store.get_nodes) == path(index, LEAVES[:size])
        for old in range(1, size + 1, 5):
            assert consistency_proof(old, size, store.get_nodes) == proof(old, LEAVES[:size])


def test_store_holds_every_complete_node(store: AppendableStore) -> None:
    n = len(LEAVES)
    for level in range(n.bit_length()):
        count = n >> level
        assert len(store.get_nodes([NodeId(level, i) for i in range(count)])) == count
        with pytest.raises(ProofError):
            store.get_nodes([NodeId(level, count)])


def test_dict_store_writes_two_n_minus_popcount_nodes() -> None:
    created = DictNodeStore()
    for n, leaf in enumerate(LEAVES, start=1):
        created.append(leaf_hash(leaf))
        assert len(created.nodes) == 2 * n - bin(n).count("1")


def test_proof_is_one_batched_read() -> None:
    created = DictNodeStore()
    for leaf in LEAVES:
        created.append(leaf_hash(leaf))
    created.reads = 0
    inclusion_proof(77, 129, created.get_nodes)
    consistency_proof(33, 129, created.get_nodes)
    root_at(101, created.get_nodes)
    assert created.reads == 3


@settings(max_examples=60, deadline=None)
@given(split=st.integers(0, len(LEAVES)))
def test_compact_range_restores_and_continues(split: int) -> None:
    full = MemoryTree(leaf_hash(leaf) for leaf in LEAVES)
    restored = CompactRange.restore(split, full.get_nodes)
    assert restored.size == split
    assert restored.root() == full.root(split)
    assert restored.hashes == tuple(full.get_nodes(frontier_ids(split)))
    copy = restored.copy()
    created = restored.extend(leaf_hash(leaf) for leaf in LEAVES[split:])
    assert restored.root() == full.root()
    assert copy.size == split
    for node, value in created:
        assert full.get_nodes([node]) == [value]
    expected = {NodeId(level, i) for level in range(9) for i in range(len(LEAVES) >> level)}
    expected -= {NodeId(level, i) for level in range(9) for i in range(split >> level)}
    assert {node for node, _ in created} == expected


def test_compact_range_push_matches_append() -> None:
    pushed, appended = CompactRange(), CompactRange()
    for leaf in LEAVES:
        pushed.push(leaf_hash(leaf))
        first, *_ = appended.append(leaf_hash(leaf))
        assert first == (NodeId(0, appended.size - 1), leaf_hash(leaf))
        assert pushed.root() == appended.root() == mth(LEAVES[: pushed.size])


def test_compact_range_rejects_bad_state() -> None:
    with pytest.raises(ProofError):
        CompactRange.from_hashes(3, [bytes(32)])
    with pytest.raises(ProofError):
        CompactRange.from_hashes(1, [b"short"])
    with pytest.raises(ProofError):
        CompactRange().append(b"short")
    with pytest.raises(ProofError):
        MemoryTree().append(b"short")
