"""RFC 6962 / 9162 hashing, proofs and verification against reference vectors and a naive tree."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.tlog.errors import ProofError
from contracts.tlog.merkle import (
    EMPTY_ROOT,
    NodeId,
    check_consistency,
    check_inclusion,
    consistency_plan,
    frontier_ids,
    inclusion_plan,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from contracts.tlog.tree import MemoryTree
from tests.audit.reference import mth, path, proof, ref_leaf_hash

# RFC 6962 test data as used by certificate-transparency-go and transparency-dev/merkle.
CT_LEAVES = [
    bytes.fromhex(x)
    for x in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
}
CT_INCLUSION = [  # (index, size, proof)
    (0, 8, ["96a2", "5f08", "6b47"]),
    (5, 8, ["bc1a", "ca85", "d37e"]),
    (2, 3, ["fac5"]),
    (1, 5, ["6e34", "5f08", "bc1a"]),
]
CT_CONSISTENCY = [  # (old size, new size, proof)
    (1, 1, []),
    (1, 8, ["96a2", "5f08", "6b47"]),
    (6, 8, ["0ebc", "ca85", "d37e"]),
    (2, 5, ["5f08", "bc1a"]),
]

CT_TREE = MemoryTree(leaf_hash(leaf) for leaf in CT_LEAVES)
LEAVES = [f"entry-{i}".encode() for i in range(300)]
TREE = MemoryTree(leaf_hash(leaf) for leaf in LEAVES)
LEAF_HASHES = [leaf_hash(leaf) for leaf in LEAVES]


def _hashes(names: list[str]) -> list[bytes]:
    return [bytes.fromhex(H[name]) for name in names]


def _root(size: int) -> bytes:
    return bytes.fromhex(CT_ROOTS[size])


def test_hash_prefixes() -> None:
    assert leaf_hash(b"") == _root(1)
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == _root(2)
    assert _root(0) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_roots_match_published_vectors(size: int) -> None:
    assert CT_TREE.root(size) == _root(size)
    assert root_from_leaf_hashes([leaf_hash(x) for x in CT_LEAVES[:size]]) == _root(size)
    assert mth(CT_LEAVES[:size]) == _root(size)


@pytest.mark.parametrize(("index", "size", "names"), CT_INCLUSION)
def test_inclusion_matches_published_vectors(index: int, size: int, names: list[str]) -> None:
    expected = _hashes(names)
    assert CT_TREE.inclusion_proof(index, size) == expected
    assert path(index, CT_LEAVES[:size]) == expected
    assert verify_inclusion(leaf_hash(CT_LEAVES[index]), index, size, expected, _root(size))


@pytest.mark.parametrize(("old", "new", "names"), CT_CONSISTENCY)
def test_consistency_matches_published_vectors(old: int, new: int, names: list[str]) -> None:
    expected = _hashes(names)
    assert CT_TREE.consistency_proof(old, new) == expected
    assert verify_consistency(old, new, _root(old), _root(new), expected)


@pytest.mark.parametrize(("old", "new", "names"), CT_CONSISTENCY[1:])
def test_published_consistency_probes_are_rejected(old: int, new: int, names: list[str]) -> None:
    good = _hashes(names)
    r1, r2 = _root(old), _root(new)
    probes = [
        (old - 1, new, r1, r2, good),
        (old + 1, new, r1, r2, good),
        (old ^ 2, new, r1, r2, good),
        (old, new * 2, r1, r2, good),
        (old, new // 2, r1, r2, good),
        (old, new, r2, r1, good),
        (old, new, r1, r2, []),
        (old, new, r1, r2, [*good, r1]),
        (old, new, r1, r2, [*good, r2]),
        (old, new, r1, r2, [r1, *good]),
        (old, new, r1, r2, [r2, *good]),
        (old, new, r1, r2, [good[0], *good]),
        (old, new, r1, r2, good[:-1]),
    ]
    for probe in probes:
        assert not verify_consistency(*probe), probe


def test_trivial_consistency_cases() -> None:
    a, b = _root(3), _root(5)
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert verify_consistency(0, 5, EMPTY_ROOT, b, [])
    assert verify_consistency(5, 5, b, b, [])
    assert not verify_consistency(5, 5, a, b, [])
    assert not verify_consistency(5, 5, b, b, [b])
    assert not verify_consistency(0, 5, EMPTY_ROOT, b, [b])
    assert not verify_consistency(5, 3, b, a, [])
    assert not verify_consistency(3, 5, a, b, [])


def test_every_proof_matches_naive_tree_up_to_64() -> None:
    for size in range(1, 65):
        for index in range(size):
            assert TREE.inclusion_proof(index, size) == path(index, LEAVES[:size])
        for old in range(1, size + 1):
            assert TREE.consistency_proof(old, size) == proof(old, LEAVES[:size])
        assert TREE.root(size) == mth(LEAVES[:size])


def _flip(value: bytes, bit: int) -> bytes:
    data = bytearray(value)
    data[bit // 8 % len(data)] ^= 1 << (bit % 8)
    return bytes(data)


sizes = st.integers(min_value=1, max_value=len(LEAVES))


@settings(max_examples=150, deadline=None)
@given(size=sizes, data=st.data())
def test_inclusion_property(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    leaf = LEAF_HASHES[index]
    root = TREE.root(size)
    good = TREE.inclusion_proof(index, size)
    assert good == path(index, LEAVES[:size])
    assert verify_inclusion(leaf, index, size, good, root)
    bit = data.draw(st.integers(0, 255))
    assert not verify_inclusion(_flip(leaf, bit), index, size, good, root)
    assert not verify_inclusion(leaf, index, size, good, _flip(root, bit))
    for position in range(len(good)):
        tampered = list(good)
        tampered[position] = _flip(tampered[position], bit)
        assert not verify_inclusion(leaf, index, size, tampered, root)
    if good:
        assert not verify_inclusion(leaf, index, size, good[:-1], root)
        assert not verify_inclusion(leaf, index, size, good[1:], root)
    extra = data.draw(st.binary(min_size=32, max_size=32))
    assert not verify_inclusion(leaf, index, size, [*good, extra], root)
    assert not verify_inclusion(leaf, index, size, [extra, *good], root)
    other = data.draw(st.integers(0, size))
    if other != index:
        assert not verify_inclusion(leaf, other, size, good, root)


@settings(max_examples=150, deadline=None)
@given(size=sizes, data=st.data())
def test_consistency_property(size: int, data: st.DataObject) -> None:
    old = data.draw(st.integers(1, size))
    old_root, new_root = TREE.root(old), TREE.root(size)
    good = TREE.consistency_proof(old, size)
    assert good == proof(old, LEAVES[:size])
    assert verify_consistency(old, size, old_root, new_root, good)
    bit = data.draw(st.integers(0, 255))
    if old == size:
        assert good == []
        assert not verify_consistency(old, size, old_root, _flip(new_root, bit), good)
        return
    assert not verify_consistency(old, size, _flip(old_root, bit), new_root, good)
    assert not verify_consistency(old, size, old_root, _flip(new_root, bit), good)
    for position in range(len(good)):
        tampered = list(good)
        tampered[position] = _flip(tampered[position], bit)
        assert not verify_consistency(old, size, old_root, new_root, tampered)
    assert not verify_consistency(old, size, old_root, new_root, good[:-1])
    extra = data.draw(st.binary(min_size=32, max_size=32))
    assert not verify_consistency(old, size, old_root, new_root, [*good, extra])
    assert not verify_consistency(old, size, old_root, new_root, [extra, *good])
    # A log that rewrote any entry below ``old`` cannot prove consistency with the old root.
    changed = data.draw(st.integers(0, old - 1))
    forged_leaves = list(LEAF_HASHES[:size])
    forged_leaves[changed] = leaf_hash(b"forged")
    forged = MemoryTree(forged_leaves)
    assert not verify_consistency(
        old, size, old_root, forged.root(size), forged.consistency_proof(old, size)
    )


junk = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=5),
    st.integers(),
    st.none(),
)


@settings(max_examples=200, deadline=None)
@given(
    leaf=junk,
    root=junk,
    index=st.one_of(st.integers(), junk),
    size=st.one_of(st.integers(), junk),
    proof_value=st.one_of(st.lists(junk, max_size=70), junk),
)
def test_malformed_input_never_raises(
    leaf: object, root: object, index: object, size: object, proof_value: object
) -> None:
    assert verify_inclusion(leaf, index, size, proof_value, root) in (False, True)  # type: ignore[arg-type]
    assert verify_consistency(index, size, leaf, root, proof_value) in (False, True)  # type: ignore[arg-type]


def test_check_functions_give_reasons() -> None:
    with pytest.raises(ProofError, match="not in a tree"):
        check_inclusion(LEAF_HASHES[0], 5, 5, [], TREE.root(5))
    with pytest.raises(ProofError, match="too short"):
        check_inclusion(LEAF_HASHES[0], 0, 5, [], TREE.root(5))
    with pytest.raises(ProofError, match="went back"):
        check_consistency(5, 4, TREE.root(5), TREE.root(4), [])
    with pytest.raises(ProofError, match="32-byte"):
        check_inclusion(LEAF_HASHES[0], 0, 1, [b"short"], LEAF_HASHES[0])


@settings(max_examples=300, deadline=None)
@given(size=st.integers(1, 2**63 - 1), data=st.data())
def test_plans_read_logarithmically_many_nodes(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    old = data.draw(st.integers(0, size))
    bound = 2 * size.bit_length() + 2
    inclusion_ids = inclusion_plan(index, size).node_ids
    assert len(inclusion_ids) <= bound
    assert len(consistency_plan(old, size).node_ids) <= bound
    for node in inclusion_ids:
        begin, end = node.coverage()
        assert end <= size, "plans only read complete nodes"
        assert not begin <= index < end
    assert sum(1 << node.level for node in frontier_ids(size)) == size


def test_plan_rejects_out_of_range() -> None:
    with pytest.raises(ProofError):
        inclusion_plan(3, 3)
    with pytest.raises(ProofError):
        consistency_plan(4, 3)
    with pytest.raises(ProofError):
        TREE.root(len(LEAVES) + 1)
    with pytest.raises(ProofError):
        TREE.get_nodes([NodeId(1, len(LEAVES) // 2)])


def test_reference_helpers_agree() -> None:
    assert ref_leaf_hash(b"x") == leaf_hash(b"x")
