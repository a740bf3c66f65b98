"""Append-only Merkle tree state: the compact range a writer keeps, and an in-memory store.

A persistent store keeps one row per complete node ``(level, index) -> hash`` and writes each
row exactly once, when the node's last leaf arrives; ``CompactRange.append`` returns exactly
those rows. ``MemoryTree`` is the in-memory store with the same contract (``TreeStore``):
every complete node is kept, so roots and proofs for any past size cost O(log n) lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from contracts.tlog.errors import ProofError
from contracts.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    NodeFetcher,
    NodeId,
    consistency_proof,
    fold_right,
    frontier_ids,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
)


class TreeStore(Protocol):
    """What proof generation needs from a tree store: its size and its complete nodes."""

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        ...

    def get_nodes(self, ids: Sequence[NodeId]) -> Sequence[bytes]:
        """Hashes of the given complete nodes, in order; raise ``ProofError`` if one is absent."""
        ...


class CompactRange:
    """The roots of the perfect subtrees covering ``[0, size)`` (at most ``log2(size) + 1``).

    This is all a writer needs in memory to keep appending and to compute the current root.
    After a restart, rebuild it with ``restore`` from the stored nodes ``frontier_ids(size)``.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def from_hashes(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """Build from the hashes of ``frontier_ids(size)``, in that order.

        Raises ``ProofError`` if the number or length of hashes does not fit ``size``.
        """
        expected = len(frontier_ids(size))
        if len(hashes) != expected:
            raise ProofError(f"a tree of size {size} has {expected} frontier nodes")
        if any(len(value) != HASH_SIZE for value in hashes):
            raise ProofError("frontier hash of the wrong length")
        compact = cls()
        compact._size = size
        compact._hashes = [bytes(value) for value in hashes]
        return compact

    @classmethod
    def restore(cls, size: int, get_nodes: NodeFetcher) -> CompactRange:
        """Rebuild the range for a stored tree of ``size`` leaves with one batched read."""
        ids = frontier_ids(size)
        return cls.from_hashes(size, list(get_nodes(ids)) if ids else [])

    @property
    def size(self) -> int:
        """Number of leaves covered."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Hashes of ``frontier_ids(size)``, left to right."""
        return tuple(self._hashes)

    def push(self, leaf: bytes) -> None:
        """Append one leaf hash without reporting the new nodes (for verifiers)."""
        hashes = self._hashes
        index = self._size
        while index & 1:
            leaf = node_hash(hashes.pop(), leaf)
            index >>= 1
        hashes.append(leaf)
        self._size += 1

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Append one leaf hash and return every node it completes, lowest level first.

        The first returned node is the leaf itself, ``(0, old_size)``. A store must persist
        all of them (in the same transaction as the entry) to serve later proofs.
        """
        if len(leaf) != HASH_SIZE:
            raise ProofError("leaf hash of the wrong length")
        hashes = self._hashes
        index = self._size
        level = 0
        created = [(NodeId(0, index), leaf)]
        while index & 1:
            leaf = node_hash(hashes.pop(), leaf)
            index >>= 1
            level += 1
            created.append((NodeId(level, index), leaf))
        hashes.append(leaf)
        self._size += 1
        return created

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[NodeId, bytes]]:
        """Append several leaf hashes; return all the nodes they complete."""
        created: list[tuple[NodeId, bytes]] = []
        for leaf in leaves:
            created.extend(self.append(leaf))
        return created

    def root(self) -> bytes:
        """Root hash of the tree of ``size`` leaves."""
        return fold_right(self._hashes) if self._hashes else EMPTY_ROOT

    def copy(self) -> CompactRange:
        """An independent copy (e.g. to compute a root before committing appends)."""
        return CompactRange.from_hashes(self._size, self._hashes)


class MemoryTree:
    """In-memory ``TreeStore`` keeping every complete node; 32 bytes per node, about
    64 bytes per leaf in total.

    Guarantees: ``root(s)``, ``inclusion_proof(i, s)`` and ``consistency_proof(m, s)`` are
    correct for every past size ``s`` and take O(log s) node lookups.
    """

    __slots__ = ("_levels", "_size")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._size = 0
        self._levels: list[bytearray] = [bytearray()]
        for leaf in leaves:
            self.append(leaf)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, leaf: bytes) -> int:
        """Append a leaf hash; return its index."""
        if len(leaf) != HASH_SIZE:
            raise ProofError("leaf hash of the wrong length")
        levels = self._levels
        position = self._size
        index = position
        level = 0
        levels[0] += leaf
        while index & 1:
            row = levels[level]
            start = (index - 1) * HASH_SIZE
            leaf = node_hash(bytes(row[start : start + HASH_SIZE]), leaf)
            index >>= 1
            level += 1
            if level == len(levels):
                levels.append(bytearray())
            levels[level] += leaf
        self._size = position + 1
        return position

    def append_data(self, data: bytes) -> int:
        """Append the leaf hash of ``data``; return its index."""
        return self.append(leaf_hash(data))

    def get_nodes(self, ids: Sequence[NodeId]) -> list[bytes]:
        """Hashes of the given complete nodes; ``ProofError`` if a node is not complete."""
        levels = self._levels
        result: list[bytes] = []
        for node in ids:
            level, index = node.level, node.index
            start = index * HASH_SIZE
            if not 0 <= level < len(levels) or index < 0 or start + HASH_SIZE > len(levels[level]):
                raise ProofError(f"node ({level}, {index}) is not a complete node of this tree")
            result.append(bytes(levels[level][start : start + HASH_SIZE]))
        return result

    def _size_or_current(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise ProofError(f"tree size {size} is beyond the current size {self._size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Root hash at ``size`` (default: the current size)."""
        return root_at(self._size_or_current(size), self.get_nodes)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Inclusion proof of leaf ``index`` in the tree at ``size`` (default: current)."""
        return inclusion_proof(index, self._size_or_current(size), self.get_nodes)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from ``old_size`` to ``new_size`` (default: current)."""
        return consistency_proof(old_size, self._size_or_current(new_size), self.get_nodes)

    def compact_range(self, size: int | None = None) -> CompactRange:
        """The compact range of the tree at ``size`` (default: current)."""
        return CompactRange.restore(self._size_or_current(size), self.get_nodes)
