"""Sandbox start-up overhead and end-to-end fragment latency.

Run from the repository root with ``python -m benchmarks.sandbox [--runs N]`` (as a
module: run as a script, this file would shadow the ``sandbox`` package).  Measures,
in the same run:

* a plain ``subprocess.run([python, "-c", "pass"])``;
* the same command through the complete sandbox launch path (cgroup, launcher,
  rlimits, bubblewrap namespaces, seccomp), i.e. the fixed cost per fragment;
* a trivial DuckDB fragment end to end through ``Runner.run``: in a sandbox of its own
  started for it (cold), in a pre-started one (requests spaced by ``--gap`` ms so the
  pool can refill), and in a fresh child of a fork server (back to back).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would hide the
# `sandbox` package: look in the repository root instead.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from sandbox.config import RunnerConfig  # noqa: E402
from sandbox.runner import Runner  # noqa: E402
from sandbox.spec import FragmentSpec  # noqa: E402


def timed(action: Callable[[], object], runs: int, gap: float = 0.0) -> list[float]:
    """Milliseconds per call of ``action`` over ``runs`` calls (after one warm-up)."""
    action()
    samples = []
    for _ in range(runs):
        if gap:
            time.sleep(gap)
        begin = time.perf_counter()
        action()
        samples.append((time.perf_counter() - begin) * 1000)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<38} p50 {statistics.median(samples):7.1f} ms   "
        f"p99 {percentile(samples, 0.99):7.1f} ms   min {min(samples):7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--gap", type=float, default=250.0, help="ms between pooled requests")
    options = parser.parse_args()
    command = [sys.executable, "-c", "pass"]

    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch).chmod(0o755)
        asset = Path(scratch) / "bench.csv"
        asset.write_text("k,v\n" + "".join(f"{i % 7},{i}\n" for i in range(1000)))
        spec = FragmentSpec("duckdb_sql", "SELECT k, COUNT(*), SUM(v) FROM asset GROUP BY k", asset)

        with Runner(RunnerConfig(fork_servers=0)) as runner:
            level = runner.isolation_report().level.value
            print(f"isolation: {runner.isolation_report().backend} ({level})")
            plain = timed(lambda: subprocess.run(command, check=True), options.runs)
            boxed = timed(lambda: runner.isolation.run_command(command), options.runs)
            report("plain python -c pass", plain)
            report("sandboxed python -c pass", boxed)
            overhead = statistics.median(boxed) - statistics.median(plain)
            ratio = statistics.median(boxed) / statistics.median(plain)
            print(f"{'start-up overhead (median)':<38} {overhead:+7.1f} ms   ratio {ratio:.2f}x")
            cold = timed(lambda: runner.run(spec), options.runs)
            report("duckdb fragment, cold sandbox", cold)

        with Runner(RunnerConfig(pool_size=2, fork_servers=0)) as pooled:
            pooled.warm("duckdb_sql", asset)
            time.sleep(0.5)
            warm = timed(lambda: pooled.run(spec), options.runs, gap=options.gap / 1000)
            report(f"duckdb fragment, pooled ({options.gap:.0f} ms gap)", warm)

        with Runner(RunnerConfig(fork_servers=1)) as forking:
            if forking.fork_servers is None:
                print("fork servers: not available on this host")
                return
            forking.warm("duckdb_sql", asset)
            forked = timed(lambda: forking.run(spec), options.runs)
            report("duckdb fragment, fork server child", forked)


if __name__ == "__main__":
    main()
