"""The site's own log: append latency (one durable commit and one signed checkpoint per
entry), appends per second from several threads, and the time to verify the whole log.

    .venv/bin/python benchmarks/sitelog.py [--entries 2000] [--threads 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def ticket(n: int) -> dict[str, object]:
    return {
        "at": "2026-05-01T08:00:00.000000Z",
        "event": "ticket",
        "fragment": f"job_{n:08d}.ast_0001.{n:016x}",
        "job": f"job_{n:08d}",
        "asset": "ast_0001",
        "kind": "sql_aggregate",
        "decision": "accept",
        "reason": "ok",
        "epsilon": 0.5,
        "delta": 1e-7,
        "ticket_sha256": f"{n:064x}",
    }


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    options = parser.parse_args()

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from sandbox.agent.sitelog import SiteLog

    key = Ed25519PrivateKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.db"
        log = SiteLog.open(path, key)
        samples = []
        for n in range(options.entries):
            begin = time.perf_counter()
            log.append(ticket(n))
            samples.append((time.perf_counter() - begin) * 1000)
        print(
            f"{'append, one thread':<36} p50 {statistics.median(samples):6.2f} ms   "
            f"p99 {percentile(samples, 0.99):6.2f} ms"
        )
        per_thread = options.entries // options.threads

        def work(offset: int) -> None:
            for n in range(per_thread):
                log.append(ticket(offset + n))

        threads = [
            threading.Thread(target=work, args=(options.entries * (1 + i),))
            for i in range(options.threads)
        ]
        begin = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - begin
        print(
            f"{f'appends, {options.threads} threads':<36} "
            f"{per_thread * options.threads / elapsed:8.0f} entries/s"
        )
        size = log.size
        log.close()
        begin = time.perf_counter()
        reopened = SiteLog.open(path, key)
        opened = time.perf_counter() - begin
        begin = time.perf_counter()
        report = reopened.verify()
        verified = time.perf_counter() - begin
        reopened.close()
        assert report.ok
        assert report.size == size
        print(f"{f'open (newest checkpoint), {size}':<36} {opened * 1000:8.1f} ms")
        print(f"{f'verify every checkpoint, {size}':<36} {verified * 1000:8.1f} ms")
        print(f"{'file size':<36} {path.stat().st_size / size:8.0f} bytes/entry")


if __name__ == "__main__":
    main()
