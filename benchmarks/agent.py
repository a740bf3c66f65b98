"""A trivial job's fragment end to end through a site agent over mutual TLS.

The agent runs in its own process (``python -m sandbox.agent``) with certificates
from the development PKI; the gateway's :class:`SiteClient` calls it over loopback.
Measures, in the same run:

* ``Health`` (one mTLS round trip, no sandbox);
* ``Prove`` (a signature over the challenge and a durable entry in the site's own log);
* a replayed fragment (an already answered ``fragment_id``: round trip plus the
  agent's idempotency lookup, no sandbox);
* a fresh fragment (the agent verifies the ticket's signatures, decides the job under
  its holder's policy against its own ledger, charges and logs it, runs the fragment it
  derived in a sandbox and noises the result) in a fork server's child, back to back, and
  with neither fork servers nor a pool (every fragment starts a sandbox of its own);
* the same fragment program through ``Runner.run`` in this process, as the baseline.

    .venv/bin/python benchmarks/agent.py [--runs 40] [--gap 250]
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SITE_SERVE = [sys.executable, "-m", "gateway.cli.main", "site", "serve"]
sys.path.insert(0, str(ROOT))


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<40} p50 {statistics.median(samples):7.2f} ms   "
        f"p99 {percentile(samples, 0.99):7.2f} ms   min {min(samples):7.2f} ms"
    )


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


BENCH_POLICY = """\
version: 1
asset: bench
columns:
  i: {control: join_key}
  k: {control: group_by, keys: {values: [0, 1, 2, 3, 4, 5, 6]}}
  v: {control: aggregate, clip: {lower: 0, upper: 1000}}
jobs:
  kinds: [sql_aggregate]
  aggregates: [count, sum]
  purposes: [research]
  min_group_size: 2
  max_rows_per_unit: 1
  approval: {mode: auto}
privacy:
  epsilon_per_job_max: 1
  budget: {epsilon: 1000000, delta: 0, period_days: 30}
"""


def minter() -> Any:
    """The bench asset's holder: its key, policy and columns (rows are their own unit)."""
    from blindgate_demo.tickets import Minter

    return Minter(
        policy=BENCH_POLICY,
        columns=[
            ("i", "integer", "identifier"),
            ("k", "integer", "quasi_identifier"),
            ("v", "integer", "attribute"),
        ],
        asset_name="bench",
        privacy_unit="i",
        local_ref="bench",
        default_sql="SELECT COUNT(*) AS n FROM bench",
        # one signed policy for the whole run, as a gateway sends it: the agent records a
        # policy only when a newer one arrives
        signed_at=datetime.now(UTC),
    )


@contextmanager
def agent_process(
    scratch: Path, pool_size: int, gateway_fingerprint: str, mint: Any
) -> Iterator[str]:
    """Start ``python -m sandbox.agent`` with ``pool_size``; yield its address."""
    import yaml

    from blindgate_demo.federation import endorse_agent

    port = free_port()
    tls = scratch / "tls"
    identity = endorse_agent(scratch, mint.organisation, mint.key, "bench")
    config = {
        "listen": f"127.0.0.1:{port}",
        "tls": {"cert": str(tls / "site.crt"), "key": str(tls / "site.key"), "ca": "ca/ca.crt"},
        "gateway_fingerprints": [gateway_fingerprint],
        "assets": {"bench": {"path": "bench.csv"}},
        "cache_dir": f"cache-{pool_size}",
        "pool_size": pool_size,
        "fork_servers": 1 if pool_size else 0,
        **identity,
    }
    path = scratch / f"site-{pool_size}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    process = subprocess.Popen(
        [*SITE_SERVE, "--config", str(path), "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise


def measure(client: Any, mint: Any, pool_size: int, options: argparse.Namespace) -> list[float]:
    """Time the agent's calls; returns the fragment latencies."""
    from blindgate_demo.tickets import request
    from sandbox.wire import FragmentRequest

    ids = (f"bench-{pool_size}-{n}" for n in itertools.count())

    def fragment(fragment_id: str | None = None) -> FragmentRequest:
        return request(mint.ticket(fragment_id=fragment_id or next(ids)))

    if not pool_size:
        cold = timed(lambda: client.run_fragment(fragment()), options.runs)
        report("duckdb fragment, no pool (cold sandbox)", cold)
        return cold
    health = client.health()
    print(
        f"agent {health.agent_version}, isolation "
        f"{health.isolation_backend} ({health.isolation_level}), loopback mTLS"
    )
    report("Health", timed(client.health, options.runs))
    report(
        "Prove (signature, durable log entry)",
        timed(lambda: client.prove(os.urandom(32)), options.runs),
    )
    answered = fragment("bench-replayed")
    client.run_fragment(answered)
    report(
        "replayed fragment (no sandbox)", timed(lambda: client.run_fragment(answered), options.runs)
    )
    time.sleep(0.5)
    warm = timed(lambda: client.run_fragment(fragment()), options.runs)
    report("duckdb fragment, fork server child (back to back)", warm)
    return warm


def fragment_program() -> str:
    """The fragment the agent derives for the bench job (same analysis, same policy)."""
    from policies import EffectiveParameters
    from policies.jobs import AssetSchema, analyse, partial_plan
    from policies.model import Approval, ClipBounds

    mint = minter()
    schema = AssetSchema.build("ast_bench", "bench", mint.columns, "i")
    params = EffectiveParameters(
        job_kind="sql_aggregate",
        epsilon=1.0,
        delta=0.0,
        min_group_size=2,
        max_rows_per_unit=1,
        clip={"ast_bench": {"v": ClipBounds(lower=0, upper=1000)}},
        privacy_units={"ast_bench": "i"},
        approval_mode="auto",
        approvals={"ast_bench": Approval(mode="auto")},
    )
    return str(partial_plan(analyse(mint.default_sql, schema), params).bounded_sql)


def runner_baseline(asset: Path, options: argparse.Namespace) -> list[float]:
    """The same fragment through ``Runner.run`` in this process (no gRPC, no agent), in a
    fork server's child over the bounded view, as the agent runs it."""
    from sandbox.config import RunnerConfig
    from sandbox.runner import Runner
    from sandbox.spec import Bound, FragmentSpec

    bound = Bound("i", 1, "00" * 16)
    spec = FragmentSpec("duckdb_sql", fragment_program(), asset, bound=bound)
    with Runner(RunnerConfig(fork_servers=1)) as runner:
        runner.warm("duckdb_sql", asset, bound=bound)
        samples = timed(lambda: runner.run(spec), options.runs)
    report("baseline: Runner.run, fork server child", samples)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--gap", type=float, default=250.0, help="ms between pooled requests")
    options = parser.parse_args()

    from gateway import pki
    from gateway.siteclient.client import SiteClient

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)
        asset = scratch / "bench.csv"
        asset.write_text("i,k,v\n" + "".join(f"{i},{i % 7},{i}\n" for i in range(1000)))
        pki.init_ca(scratch / "ca")
        site = pki.issue(scratch / "ca", "site", scratch / "tls", hosts=["127.0.0.1"])
        gateway = pki.issue(scratch / "ca", "gateway", scratch / "client", kind="client")
        pem: dict[str, Any] = {
            "ca_pem": (scratch / "ca" / "ca.crt").read_bytes(),
            "client_cert_pem": (scratch / "client" / "gateway.crt").read_bytes(),
            "client_key_pem": (scratch / "client" / "gateway.key").read_bytes(),
        }
        results: dict[int, list[float]] = {}
        mint = minter()
        for pool_size in (2, 0):
            with agent_process(scratch, pool_size, gateway, mint) as address:
                client = SiteClient(address, expected_fingerprint=site, **pem)
                deadline = time.monotonic() + 30
                while not client.healthy(timeout=1):
                    if time.monotonic() > deadline:
                        raise SystemExit("the agent did not start")
                    time.sleep(0.1)
                with client:
                    results[pool_size] = measure(client, mint, pool_size, options)
        baseline = runner_baseline(asset, options)
        overhead = statistics.median(results[2]) - statistics.median(baseline)
        ratio = statistics.median(results[2]) / statistics.median(baseline)
        print(
            f"{'agent overhead over Runner.run (median)':<40} "
            f"{overhead:+7.2f} ms   ratio {ratio:.2f}x"
        )


if __name__ == "__main__":
    main()
