"""Figures for the stored trace: durable appends with group commit, proofs from the database,
and full verification of an export against bare hashing.

Run: ``.venv/bin/python benchmarks/trace.py [--quick]`` (about 3 minutes on 2 cores;
``--quick``, with a 100k-entry trace and fewer appends, about 20 seconds).

1. Durable appends/s through ``SqlStore.transact`` (group commit) on SQLite (WAL,
   synchronous=FULL) and on a private PostgreSQL cluster (started with ``tests.pg``; skipped
   when no server binaries are installed): 32 and 64 client threads each append one entry
   per call (20k appends on SQLite, 10k on PostgreSQL). The baseline is the same call made
   serially from one thread (one entry per commit). Each configuration runs three times and
   the median run is reported, since shared disks make single runs noisy.
2. Inclusion proofs at 1M entries (100k with ``--quick``) from a SQLite store, served by
   ``TraceLog.inclusion`` from the stored Merkle nodes; a sample is checked against the
   signed root.
3. ``verify_export`` of an export of those entries with a signed checkpoint, beside bare
   hashlib over the same leaf bytes (leaf hashes plus a tree of node hashes).

The in-memory tree core has its own figures in ``benchmarks/trace_core.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.tlog.checkpoint import parse_and_verify_checkpoint
from contracts.tlog.merkle import leaf_hash, node_hash, verify_inclusion
from contracts.tlog.tree import CompactRange
from gateway.audit.entry import digest, make_entry
from gateway.audit.export import entry_line, write_export
from gateway.audit.verify import verify_export
from gateway.clock import SystemClock
from gateway.domain import Actor, PendingTrace, Role, TraceRecord
from gateway.service.trace.log import TraceLog, load_or_create_key
from gateway.store import SqlStore, open_store

ROOT = Path(__file__).resolve().parent.parent
MS = 1e3
SQLITE_AIM = 5_000
PROOF_AIM_MS = 2.0
VERIFY_AIM = 3.0
LOAD_UNIT = 5_000

_BASE_TIME = datetime(2025, 1, 1, tzinfo=UTC)
_ACTORS = [Actor(f"prn_{i:04d}", f"org_{i % 7:04d}", Role.OPERATOR) for i in range(50)]


@dataclass(frozen=True)
class Sizes:
    sqlite_appends: int
    pg_appends: int
    sqlite_serial: int
    pg_serial: int
    threads: tuple[int, ...]
    entries: int
    proofs: int
    checked_proofs: int
    repeats: int


FULL = Sizes(20_000, 10_000, 2_000, 1_000, (32, 64), 1_000_000, 2_000, 200, 3)
QUICK = Sizes(5_000, 2_000, 500, 300, (32, 64), 100_000, 500, 100, 3)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def record(i: int) -> TraceRecord:
    """A realistic entry: an operator reads an asset; ids, decision and a request digest."""
    asset = f"ast_{i % 5_000:06d}"
    return make_entry(
        at=_BASE_TIME + timedelta(microseconds=i),
        actor=_ACTORS[i % len(_ACTORS)],
        action="asset.read",
        target={"asset": asset},
        subject_org=f"org_{(i + 3) % 7:04d}",
        asset_id=asset,
        request_digest=digest(b"request %d" % i),
    )


# 1. durable appends ---------------------------------------------------------------------


def durability(store: SqlStore) -> str:
    with store.engine.connect() as conn:
        if store.kind == "sqlite":
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
            return f"journal_mode={mode}, synchronous={names.get(int(sync or 0), sync)}"
        fsync = conn.exec_driver_sql("SHOW fsync").scalar()
        commit = conn.exec_driver_sql("SHOW synchronous_commit").scalar()
        return f"fsync={fsync}, synchronous_commit={commit}"


def append_one(rec: TraceRecord) -> Callable[[Any], PendingTrace]:
    return lambda tx: tx.append_trace(rec)


@dataclass(frozen=True)
class AppendRun:
    calls: int
    seconds: float
    latencies: list[float]
    batches: int
    units: int

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def line(self, label: str) -> str:
        per_commit = self.units / self.batches if self.batches else 0.0
        p50 = statistics.median(self.latencies) * MS
        p99 = percentile(self.latencies, 0.99) * MS
        return (
            f"  {label:<22} {self.calls:>6,} appends in {self.seconds:6.2f} s: "
            f"{self.rate:8,.0f} appends/s; latency p50 {p50:6.2f} ms, p99 {p99:6.2f} ms; "
            f"{per_commit:5.1f} entries/commit ({self.batches:,} commits)"
        )


def run_appends(store: SqlStore, threads: int, per_thread: int, first: int) -> AppendRun:
    """``threads`` clients, each making ``per_thread`` transact calls of one entry each."""
    writer = store._writer
    assert writer is not None
    barrier = threading.Barrier(threads + 1)
    latencies: list[list[float]] = [[] for _ in range(threads)]
    indexes: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def client(slot: int) -> None:
        records = [record(first + slot * per_thread + k) for k in range(per_thread)]
        mine = latencies[slot]
        got = indexes[slot]
        transact = store.transact
        clock = time.perf_counter
        barrier.wait()
        try:
            for rec in records:
                start = clock()
                pending = transact(append_one(rec))
                mine.append(clock() - start)
                assert pending.index is not None
                got.append(pending.index)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=client, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    batches, units = writer.batches, writer.units
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    calls = threads * per_thread
    positions = {i for chunk in indexes for i in chunk}
    assert len(positions) == calls, "every committed entry must have its own position"
    return AppendRun(
        calls,
        seconds,
        [x for chunk in latencies for x in chunk],
        writer.batches - batches,
        writer.units - units,
    )


def median_run(
    store: SqlStore, threads: int, per_thread: int, first: int, repeats: int
) -> tuple[AppendRun, list[AppendRun]]:
    """Run the same configuration ``repeats`` times; return the median run (by rate) and all."""
    runs: list[AppendRun] = []
    for _ in range(repeats):
        runs.append(run_appends(store, threads, per_thread, first))
        first += runs[-1].calls
    ordered = sorted(runs, key=lambda run: run.rate)
    return ordered[len(ordered) // 2], runs


def show(label: str, run: AppendRun, runs: list[AppendRun]) -> None:
    print(run.line(label))
    if len(runs) > 1:
        rates = " / ".join(f"{r.rate:,.0f}" for r in runs)
        print(f"  {'':<22} {len(runs)} runs: {rates} appends/s (the median run is shown)")


def bench_appends(store: SqlStore, label: str, total: int, serial: int, sizes: Sizes) -> float:
    """Print group-commit and serial figures for ``store``; return the best median appends/s."""
    print(f"{label} ({durability(store)}):")
    store.transact(append_one(record(0)))  # start the writer thread and warm the pool
    next_id = 1
    medians: list[tuple[int, AppendRun]] = []
    for threads in sizes.threads:
        per_thread = max(1, total // threads)
        run, runs = median_run(store, threads, per_thread, next_id, sizes.repeats)
        next_id += sum(r.calls for r in runs)
        medians.append((threads, run))
        show(f"group commit, {threads} thr", run, runs)
    baseline, runs = median_run(store, 1, serial, next_id, sizes.repeats)
    next_id += sum(r.calls for r in runs)
    show("serial, 1 thread", baseline, runs)
    for threads, run in medians:
        print(
            f"  group commit with {threads} threads vs serial: {run.rate / baseline.rate:.1f}x "
            f"the appends/s (medians)"
        )
    with store.read() as tx:
        size = tx.trace_size()
    assert size == next_id, f"trace size {size}, expected {next_id}"
    return max(run.rate for _, run in medians)


def sqlite_appends(sizes: Sizes) -> None:
    with tempfile.TemporaryDirectory(prefix="blindgate-bench-") as name:
        store = open_store(f"sqlite:///{Path(name) / 'appends.db'}")
        try:
            best = bench_appends(store, "SQLite", sizes.sqlite_appends, sizes.sqlite_serial, sizes)
        finally:
            store.close()
    verdict = "met" if best >= SQLITE_AIM else "NOT met"
    print(
        f"  aim >= {SQLITE_AIM:,} durable appends/s on SQLite: {verdict} "
        f"(best median {best:,.0f}/s)"
    )


def postgres_appends(sizes: Sizes) -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.pg import find_pg_bin, pg_cluster

    if find_pg_bin() is None:
        print("PostgreSQL: skipped: no PostgreSQL")
        return
    progress("starting a private PostgreSQL cluster...")
    with pg_cluster() as cluster:
        store = open_store(cluster.create_database())
        try:
            bench_appends(store, "PostgreSQL", sizes.pg_appends, sizes.pg_serial, sizes)
        finally:
            store.close()


# 2. inclusion proofs from the store ----------------------------------------------------


def load(store: SqlStore, count: int) -> float:
    """Append ``count`` entries in units of LOAD_UNIT records; return entries/s."""
    start = time.perf_counter()
    done = 0
    step = max(count // 10, LOAD_UNIT)
    while done < count:
        records = [record(i) for i in range(done, min(count, done + LOAD_UNIT))]

        def unit(tx: Any, records: list[TraceRecord] = records) -> None:
            for rec in records:
                tx.append_trace(rec)

        store.transact(unit)
        done += len(records)
        if done % step == 0 or done == count:
            rate = done / (time.perf_counter() - start)
            progress(f"  loaded {done:,}/{count:,} entries ({rate:,.0f}/s)")
    return count / (time.perf_counter() - start)


def bench_proofs(store: SqlStore, log: TraceLog, sizes: Sizes) -> tuple[int, bytes, str]:
    size, note = log.checkpoint()
    root = parse_and_verify_checkpoint(note, log.verifier_key).root
    rng = random.Random(6962)
    indexes = [rng.randrange(size) for _ in range(sizes.proofs)]
    timings: list[float] = []
    proofs: list[list[bytes]] = []
    log.inclusion(size // 2, size)  # warm the connection pool
    for index in indexes:
        start = time.perf_counter()
        proofs.append(log.inclusion(index, size))
        timings.append(time.perf_counter() - start)
    median = statistics.median(timings) * MS
    p99 = percentile(timings, 0.99) * MS
    print(
        f"  inclusion proof at size {size:,} (TraceLog.inclusion over stored nodes): "
        f"median {median:.2f} ms, p99 {p99:.2f} ms ({len(indexes):,} random proofs, "
        f"{len(proofs[0])} hashes each)"
    )
    verdict = "met" if p99 <= PROOF_AIM_MS else "NOT met"
    print(f"  aim <= {PROOF_AIM_MS:g} ms per proof: {verdict} (p99)")

    sample = rng.sample(range(len(indexes)), sizes.checked_proofs - 2)
    checks = [(indexes[k], proofs[k]) for k in sample]
    checks += [(0, log.inclusion(0, size)), (size - 1, log.inclusion(size - 1, size))]
    with store.read() as tx:
        for index, proof in checks:
            (stored,) = tx.trace_entries(after=index - 1 if index else None, limit=1)
            assert stored.index == index
            hashed = leaf_hash(stored.leaf)
            assert hashed == stored.committed_hash, f"leaf {index} differs from its tree node"
            assert verify_inclusion(hashed, index, size, proof, root), f"proof {index} failed"
            tampered = leaf_hash(stored.leaf + b" ")
            assert not verify_inclusion(tampered, index, size, proof, root)
    print(
        f"  checked {len(checks)} proofs (incl. first and last leaf) against the signed root: "
        f"all verify; an altered leaf fails"
    )
    return size, root, note


# 3. full verification vs bare hashing --------------------------------------------------


def stored_leaves(store: SqlStore, size: int) -> list[bytes]:
    leaves: list[bytes] = []
    after: int | None = None
    with store.read() as tx:
        while len(leaves) < size:
            page = tx.trace_entries(after=after, limit=50_000)
            assert page, "the store has fewer entries than its head says"
            leaves.extend(stored.leaf for stored in page)
            after = page[-1].index
    assert len(leaves) == size
    return leaves


def bare_root(leaves: list[bytes]) -> bytes:
    """Leaf hashes then node hashes with hashlib alone (RFC 6962 shape: the odd node at the
    right edge is carried up unchanged)."""
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


def compact_root(leaves: list[bytes]) -> bytes:
    """The hashing verify_export does per entry once its line is parsed."""
    compact = CompactRange()
    push = compact.push
    for leaf in leaves:
        push(leaf_hash(leaf))
    return compact.root()


def export_entries(leaves: list[bytes]) -> Iterator[dict[str, Any]]:
    for leaf in leaves:
        yield json.loads(leaf)


def bench_verify(store: SqlStore, log: TraceLog, size: int, root: bytes, note: str) -> None:
    progress(f"  reading {size:,} leaves from the store...")
    leaves = stored_leaves(store, size)
    with tempfile.TemporaryDirectory(prefix="blindgate-export-") as name:
        directory = Path(name)
        progress(f"  writing an export of {size:,} entries...")
        written = write_export(directory, export_entries(leaves), [note], log.verifier_key)
        assert written == size
        with (directory / "entries.jsonl").open("rb") as fh:
            assert fh.readline() == entry_line(0, json.loads(leaves[0]))
        megabytes = (directory / "entries.jsonl").stat().st_size / 1e6
        progress("  verifying the export...")
        start = time.perf_counter()
        report = verify_export(directory)
        verify_time = time.perf_counter() - start
    assert report.ok, report.failure
    assert report.verified_size == size

    start = time.perf_counter()
    bare = bare_root(leaves)
    bare_time = time.perf_counter() - start
    assert bare == root, "bare hashing disagrees with the signed root"
    assert leaf_hash(leaves[0]) == hashlib.sha256(b"\x00" + leaves[0]).digest()
    assert node_hash(bare, bare) == hashlib.sha256(b"\x01" + bare + bare).digest()

    start = time.perf_counter()
    compact = compact_root(leaves)
    hash_time = time.perf_counter() - start
    assert compact == root

    rest = verify_time - hash_time
    print(
        f"  verify_export of {size:,} entries ({megabytes:.0f} MB, 1 signed checkpoint): "
        f"{verify_time:.2f} s ({size / verify_time:,.0f} entries/s)"
    )
    print(
        f"  bare hashlib over the same leaf bytes in memory ({size:,} leaves + "
        f"{size - 1:,} nodes): {bare_time:.2f} s"
    )
    verdict = "met" if verify_time / bare_time <= VERIFY_AIM else "NOT met"
    print(
        f"  end-to-end ratio verify_export / bare: {verify_time / bare_time:.1f}x "
        f"(aim <= {VERIFY_AIM:g}x: {verdict})"
    )
    print(
        f"  of which hashing (leaf_hash + CompactRange.push, as verify_export does): "
        f"{hash_time:.2f} s, {hash_time / bare_time:.2f}x bare; the rest (reading, matching "
        f"each line's layout, checkpoint signature) ~{rest:.2f} s, {rest / verify_time:.0%} of it"
    )


def trace_at_scale(sizes: Sizes) -> None:
    with tempfile.TemporaryDirectory(prefix="blindgate-bench-") as name:
        work = Path(name)
        store = open_store(f"sqlite:///{work / 'trace.db'}")
        try:
            progress(f"loading {sizes.entries:,} entries into SQLite...")
            rate = load(store, sizes.entries)
            print(
                f"SQLite trace of {sizes.entries:,} entries (loaded in units of "
                f"{LOAD_UNIT:,} via transact at {rate:,.0f} entries/s):"
            )
            log = TraceLog(store, load_or_create_key(work / "trace.key"), SystemClock(), None)
            size, root, note = bench_proofs(store, log, sizes)
            bench_verify(store, log, size, root, note)
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller counts (100k-entry trace) for a fast run"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    started = time.perf_counter()
    sqlite_appends(sizes)
    postgres_appends(sizes)
    trace_at_scale(sizes)
    print(f"total wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
