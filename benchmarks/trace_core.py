"""Figures for the trace core: proof latency at 1M entries and verification throughput.

Run: ``.venv/bin/python benchmarks/trace_core.py [--leaves N]`` (well under two minutes at 1M).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.tlog.checkpoint import encode_verifier_key, sign_checkpoint
from contracts.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from contracts.tlog.tree import CompactRange, MemoryTree
from gateway.audit.export import entry_leaf_hash, write_export
from gateway.audit.verify import verify_export

US = 1e6


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bare_root(leaves: list[bytes]) -> bytes:
    """The same hashing with nothing around it: the floor for any verifier in Python."""
    sha256 = hashlib.sha256
    level = [sha256(b"\x00" + leaf).digest() for leaf in leaves]
    while len(level) > 1:
        paired = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def streaming_verify(leaves: list[bytes], expected_root: bytes) -> bool:
    """What verify_export does per entry once the line is parsed: hash, push, compare."""
    compact = CompactRange()
    push = compact.push
    for leaf in leaves:
        push(leaf_hash(leaf))
    return compact.root() == expected_root


def bench_tree(n: int, proofs: int) -> None:
    rng = random.Random(6962)
    leaves = [b'{"index":%d,"kind":"job.released","job":"job-%08d"}' % (i, i) for i in range(n)]
    start = time.perf_counter()
    tree = MemoryTree(leaf_hash(leaf) for leaf in leaves)
    build = time.perf_counter() - start
    print(f"MemoryTree: appended {n:,} leaves in {build:.2f} s ({n / build:,.0f} leaves/s)")

    root = tree.root()
    inclusion: list[float] = []
    for _ in range(proofs):
        index = rng.randrange(n)
        start = time.perf_counter()
        proof = tree.inclusion_proof(index, n)
        inclusion.append(time.perf_counter() - start)
        assert verify_inclusion(leaf_hash(leaves[index]), index, n, proof, root)
    consistency: list[float] = []
    for _ in range(proofs):
        old = rng.randrange(1, n)
        start = time.perf_counter()
        tree.consistency_proof(old, n)
        consistency.append(time.perf_counter() - start)
    old = n // 3
    assert verify_consistency(old, n, tree.root(old), root, tree.consistency_proof(old, n))
    checks: list[float] = []
    index = n // 2
    proof = tree.inclusion_proof(index, n)
    leaf = leaf_hash(leaves[index])
    for _ in range(proofs):
        start = time.perf_counter()
        verify_inclusion(leaf, index, n, proof, root)
        checks.append(time.perf_counter() - start)
    print(
        f"inclusion proof at size {n:,}: median {statistics.median(inclusion) * US:.1f} us, "
        f"p99 {percentile(inclusion, 0.99) * US:.1f} us ({proofs} proofs)"
    )
    print(
        f"consistency proof to size {n:,}: median {statistics.median(consistency) * US:.1f} us, "
        f"p99 {percentile(consistency, 0.99) * US:.1f} us"
    )
    print(f"inclusion proof verification: median {statistics.median(checks) * US:.1f} us")
    del tree

    start = time.perf_counter()
    bare = bare_root(leaves)
    bare_time = time.perf_counter() - start
    assert bare == root
    start = time.perf_counter()
    ok = streaming_verify(leaves, root)
    ours = time.perf_counter() - start
    assert ok
    print(
        f"full verification of {n:,} leaves: {ours:.2f} s; bare hashlib "
        f"({n:,} leaves + {n - 1:,} nodes): {bare_time:.2f} s; ratio {ours / bare_time:.2f}x"
    )


def bench_export(count: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    origin = "bench.blindgate/trace"
    entries = [
        {
            "kind": "job.released",
            "job": f"job-{i:08d}",
            "asset": "a-17",
            "decision": "allow",
            "reasons": ["k>=10", "budget"],
            "digest": hashlib.sha256(b"%d" % i).hexdigest(),
        }
        for i in range(count)
    ]
    tree = MemoryTree(entry_leaf_hash(entry) for entry in entries)
    sizes = sorted({count // 4, count // 2, count})
    notes = [sign_checkpoint(origin, s, tree.root(s), key, origin) for s in sizes]
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        write_export(directory, entries, notes, encode_verifier_key(origin, key.public_key()))
        megabytes = (directory / "entries.jsonl").stat().st_size / 1e6
        start = time.perf_counter()
        report = verify_export(directory)
        elapsed = time.perf_counter() - start
    assert report.ok, report.failure
    print(
        f"verify_export of {count:,} entries ({megabytes:.1f} MB; parse + JCS + hash + "
        f"signatures): {elapsed:.2f} s ({count / elapsed:,.0f} entries/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--export-entries", type=int, default=100_000)
    args = parser.parse_args()
    bench_tree(args.leaves, args.proofs)
    bench_export(args.export_entries)


if __name__ == "__main__":
    main()
