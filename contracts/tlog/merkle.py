"""RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof verification.

Trees are addressed by *node ids* ``(level, index)``: level 0 holds the leaf hashes, and the
node ``(level, index)`` is the root of the perfect subtree over leaves
``[index * 2**level, (index + 1) * 2**level)``. Such a node exists, and never changes, once
all of its leaves have been appended. A store therefore only ever writes each node once, and
every root, inclusion proof and consistency proof for any past tree size is a function of
O(log n) stored nodes: the functions here first compute *which* nodes are needed
(``inclusion_plan``, ``consistency_plan``, ``root_plan``), fetch them in one batch through a
``NodeFetcher``, and then combine them. Nodes that are not stored because their subtree is
still incomplete ("ephemeral" nodes) are rebuilt from the perfect subtrees that cover them.

Verification follows RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency) literally and
never raises on malformed input: ``verify_*`` return ``False``, ``check_*`` raise
``ProofError`` with the reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from contracts.tlog.errors import ProofError

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""Root hash of the empty tree: SHA-256 of the empty string."""

MAX_TREE_SIZE = 2**63 - 1
"""Largest tree size accepted anywhere (sizes travel as signed 64-bit integers)."""

_MAX_PROOF_LENGTH = 2 * 64

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


@dataclass(frozen=True, slots=True, order=True)
class NodeId:
    """Address of a perfect subtree: ``level`` 0 is a leaf, ``index`` counts from the left."""

    level: int
    index: int

    def coverage(self) -> tuple[int, int]:
        """Return the half-open range of leaf indexes ``[begin, end)`` under this node."""
        return self.index << self.level, (self.index + 1) << self.level


NodeFetcher = Callable[[Sequence[NodeId]], Sequence[bytes]]
"""Fetches the hashes of the given complete nodes, in the same order; raises if any is absent."""


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash (RFC 6962 §2.1) of a list of leaf hashes.

    The empty list gives ``EMPTY_ROOT``. Runs in O(n) hashes and O(n) memory.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine the roots of consecutive perfect subtrees (listed left to right, strictly
    decreasing in size) into the hash of the subtree they cover together."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _aligned_nodes(begin: int, length: int) -> list[NodeId]:
    """Perfect subtrees covering ``[begin, begin + length)``, left to right, when ``begin`` is a
    multiple of the largest power of two not exceeding ``length`` (or ``begin`` is 0)."""
    nodes: list[NodeId] = []
    position = begin
    for level in range(length.bit_length() - 1, -1, -1):
        if length >> level & 1:
            nodes.append(NodeId(level, position >> level))
            position += 1 << level
    return nodes


def frontier_ids(size: int) -> list[NodeId]:
    """The perfect subtrees covering ``[0, size)``, left to right (largest first).

    These at most ``log2(size) + 1`` nodes are everything needed to compute the root of the
    tree at ``size`` and to continue appending to it.
    """
    _check_size(size)
    return _aligned_nodes(0, size)


@dataclass(frozen=True, slots=True)
class ProofPlan:
    """Which stored nodes a proof needs, and how to combine them.

    ``elements`` lists, in proof order, the nodes behind each proof hash; an element with more
    than one node is an ephemeral node rebuilt with ``fold_right``.
    """

    elements: tuple[tuple[NodeId, ...], ...]

    @property
    def node_ids(self) -> list[NodeId]:
        """All node ids to fetch, in the order ``assemble`` expects their hashes."""
        return [node for element in self.elements for node in element]

    def assemble(self, hashes: Sequence[bytes]) -> list[bytes]:
        """Build the proof from the hashes of ``node_ids`` (same order).

        Raises ``ProofError`` if the store returned the wrong number or size of hashes.
        """
        expected = sum(len(element) for element in self.elements)
        if len(hashes) != expected:
            raise ProofError(f"store returned {len(hashes)} node hashes, {expected} expected")
        for value in hashes:
            if len(value) != HASH_SIZE:
                raise ProofError("store returned a node hash of the wrong length")
        proof: list[bytes] = []
        position = 0
        for element in self.elements:
            count = len(element)
            proof.append(fold_right(hashes[position : position + count]))
            position += count
        return proof

    def fetch(self, get_nodes: NodeFetcher) -> list[bytes]:
        """Fetch the needed nodes in one batch and assemble the proof."""
        ids = self.node_ids
        return self.assemble(get_nodes(ids) if ids else [])


def _check_size(size: int) -> None:
    if not 0 <= size <= MAX_TREE_SIZE:
        raise ProofError(f"tree size {size} out of range")


def _path_elements(index: int, level: int, size: int) -> list[tuple[NodeId, ...]]:
    """Proof that node ``(level, index)`` is in the tree of ``size`` leaves (RFC 9162 PATH).

    The path climbs to the *fork*, the ancestor whose parent also covers leaf ``size``; below
    it every sibling is complete. The fork's right sibling is ephemeral and is covered by
    perfect subtrees; above it, every sibling is a complete left subtree.
    """
    inner = (index ^ (size >> level)).bit_length() - 1
    fork_level = level + inner
    fork_index = index >> inner
    begin = fork_index << fork_level
    end = (fork_index + 1) << fork_level
    elements: list[tuple[NodeId, ...]] = [
        (NodeId(level + step, (index >> step) ^ 1),) for step in range(inner)
    ]
    ephemeral = _aligned_nodes(end, size - end)
    if ephemeral:
        elements.append(tuple(ephemeral))
    elements.extend((node,) for node in reversed(_aligned_nodes(0, begin)))
    return elements


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Nodes forming the inclusion proof of leaf ``index`` in the tree of ``size`` leaves.

    Raises ``ProofError`` unless ``0 <= index < size``.
    """
    _check_size(size)
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    return ProofPlan(tuple(_path_elements(index, 0, size)))


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """Nodes forming the consistency proof from tree size ``old_size`` to ``new_size``
    (RFC 9162 §2.1.4.1). The proof is empty when ``old_size`` is 0 or equals ``new_size``.

    Raises ``ProofError`` unless ``0 <= old_size <= new_size``.
    """
    _check_size(new_size)
    if not 0 <= old_size <= new_size:
        raise ProofError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return ProofPlan(())
    level = (old_size & -old_size).bit_length() - 1
    index = (old_size - 1) >> level
    elements = _path_elements(index, level, new_size)
    if index:
        elements.insert(0, (NodeId(level, index),))
    return ProofPlan(tuple(elements))


def root_plan(size: int) -> ProofPlan:
    """Nodes whose ``fold_right`` is the root of the tree of ``size`` leaves (one element;
    no element for the empty tree)."""
    nodes = frontier_ids(size)
    return ProofPlan((tuple(nodes),) if nodes else ())


def root_at(size: int, get_nodes: NodeFetcher) -> bytes:
    """Root hash of the tree at ``size``, from at most ``log2(size) + 1`` stored nodes."""
    proof = root_plan(size).fetch(get_nodes)
    return proof[0] if proof else EMPTY_ROOT


def inclusion_proof(index: int, size: int, get_nodes: NodeFetcher) -> list[bytes]:
    """Inclusion proof (RFC 9162 §2.1.3.1) of leaf ``index`` in the tree of ``size`` leaves,
    from O(log size) stored nodes fetched in one call."""
    return inclusion_plan(index, size).fetch(get_nodes)


def consistency_proof(old_size: int, new_size: int, get_nodes: NodeFetcher) -> list[bytes]:
    """Consistency proof (RFC 9162 §2.1.4.1) between two tree sizes, from O(log new_size)
    stored nodes fetched in one call."""
    return consistency_plan(old_size, new_size).fetch(get_nodes)


def _as_hashes(values: object, what: str) -> list[bytes]:
    if isinstance(values, bytes | str) or not isinstance(values, Sequence):
        raise ProofError(f"{what} is not a sequence of hashes")
    if len(values) > _MAX_PROOF_LENGTH:
        raise ProofError(f"{what} is too long")
    hashes: list[bytes] = []
    for value in values:
        if not isinstance(value, bytes) or len(value) != HASH_SIZE:
            raise ProofError(f"{what} contains an element that is not a {HASH_SIZE}-byte hash")
        hashes.append(value)
    return hashes


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofError(f"{what} is not a {HASH_SIZE}-byte hash")
    return value


def _check_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{what} is not a valid tree position")
    return value


def check_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an inclusion proof per RFC 9162 §2.1.3.2; raise ``ProofError`` on any defect."""
    leaf = _check_hash(leaf, "leaf hash")
    root = _check_hash(root, "root hash")
    index = _check_count(index, "leaf index")
    size = _check_count(size, "tree size")
    path = _as_hashes(proof, "inclusion proof")
    if index >= size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    if r != root:
        raise ProofError("inclusion proof does not lead to the root hash")


def check_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify a consistency proof per RFC 9162 §2.1.4.2; raise ``ProofError`` on any defect.

    Trivial cases: from size 0 every tree is consistent (the proof must be empty); between
    equal sizes the roots must be equal and the proof empty.
    """
    old_root = _check_hash(old_root, "old root hash")
    new_root = _check_hash(new_root, "new root hash")
    old_size = _check_count(old_size, "old tree size")
    new_size = _check_count(new_size, "new tree size")
    path = _as_hashes(proof, "consistency proof")
    if old_size > new_size:
        raise ProofError(f"tree size went back from {old_size} to {new_size}")
    if old_size == new_size:
        if path:
            raise ProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ProofError("different roots for the same tree size")
        return
    if old_size == 0:
        if path:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not path:
        raise ProofError("consistency proof is empty")
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != old_root:
        raise ProofError("consistency proof does not lead to the old root hash")
    if sr != new_root:
        raise ProofError("consistency proof does not lead to the new root hash")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root`` of
    ``size`` leaves. Never raises on malformed input."""
    try:
        check_inclusion(leaf, index, size, proof, root)
    except ProofError:
        return False
    return True


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return whether ``proof`` shows the tree ``new_root`` of ``new_size`` leaves extends the
    tree ``old_root`` of ``old_size`` leaves. Never raises on malformed input."""
    try:
        check_consistency(old_size, new_size, old_root, new_root, proof)
    except ProofError:
        return False
    return True
