"""Federated SQL end to end: three site agents, one big GROUP BY, small-job throughput.

Three site agents run as separate processes (``python -m sandbox.agent``: real sandboxes,
mutual TLS). Each holds one partition of ``admissions`` (``--rows`` in all, 1,000,000 by
default, split evenly; unique patient ids, so ``max_rows_per_unit: 1`` keeps every row)
and one of ``admissions_small`` (``--small-rows`` per site). The gateway runs in this
process as it does in ``blindgate serve``: a SQLite store, the REST API under uvicorn and
one job runner thread, whose queue poll interval is lowered from 0.5 s to 0.02 s here.
Clients only use the REST API: submit, poll ``GET /v1/jobs/{id}`` every ``--poll`` ms,
fetch the result. The policies allow 5 epsilon per job out of a 10,000 budget, with no
rate limit; every job asks for epsilon 1.

(a) ``SELECT district, COUNT(*), SUM(los_days), AVG(los_days) ... GROUP BY district``
    over all rows, submit to released result (median of ``--runs``, each a new job),
    beside DuckDB running the same query over the three files in this process. Aim:
    Blindgate <= 3 x DuckDB + 150 ms. For scale: DuckDB running the fragment SQL every
    site runs (contribution bounding, clipping, distinct units) over each file in turn,
    and that fragment sent to one agent alone.
(b) Small jobs per second: ``--jobs`` ``SELECT COUNT(*) AS n FROM ...`` (or, if the
    gateway refuses that, ``COUNT(los_days)``) submitted at once by ``--clients`` threads
    of a separate client process; completed jobs per second end to end (aim >= 20/s),
    over the small partitions and over the big ones.
(c) Peak memory of each site agent during (a): the agent's own VmHWM and the highest
    sum of VmRSS over its process tree (agent plus sandboxes), sampled every 50 ms.
(d) p50 of each stage of a job inside the gateway (timers wrapped around the runner's
    calls in this process).

CPU per job is the gateway process's own and, from ``/proc/stat``, the rest of the host
(agents, sandboxes, the client process, and whatever else runs on the machine).

    .venv/bin/python benchmarks/federated_sql.py [--quick] [--rows 1000000] [--jobs 40]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOSPITALS = ("north-general", "east-clinic", "harbour-hospital")
BIG = "admissions"
SMALL = "admissions_small"
MID = "admissions_100k"
GROUP_SQL = (
    "SELECT district, COUNT(*) AS n, SUM(los_days) AS s, AVG(los_days) AS m "
    "FROM {table} GROUP BY district"
)
COUNT_SQL = "SELECT COUNT(*) AS n FROM {table}"
COUNT_FALLBACK_SQL = "SELECT COUNT(los_days) AS n FROM {table}"
EPSILON = 1.0
RUNNER_POLL_SECONDS = 0.02

POLICY = """\
version: 1
asset: {asset}
columns:
  patient_id: {{control: join_key}}
  district: {{control: group_by, keys: {{values: [north, south, east]}}}}
  age: {{control: filter}}
  los_days:
    control: aggregate
    clip: {{lower: 0, upper: 30}}
jobs:
  kinds: [sql_aggregate]
  aggregates: [count, sum, avg]
  purposes: [research]
  min_group_size: 10
  max_rows_per_unit: 1
  approval: {{mode: auto}}
privacy:
  epsilon_per_job_max: 5
  budget: {{epsilon: 10000, delta: 1.0e-6, period_days: 30}}
"""


# measurement helpers ---------------------------------------------------------------------
def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StageTimes:
    """Durations per stage of the jobs the runner executes (seconds), thread-safe."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.programs: dict[str, str] = {}
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.samples[stage].append(seconds)

    def reset(self) -> None:
        with self._lock:
            self.samples = defaultdict(list)

    def snapshot(self) -> dict[str, list[float]]:
        with self._lock:
            return {k: list(v) for k, v in self.samples.items()}


def instrument(runner: Any, stages: StageTimes) -> None:
    """Time every stage of every job the runner runs (its public stage observer)."""
    runner.observe = stages.add


def fragment_sql(fed: Any, job_id: str) -> str:
    """The fragment a job's sites ran: the job decided again through the public decider."""
    from gateway.domain import Actor, Role

    services = fed.services
    with services.ctx.store.read() as tx:
        job = tx.get_job(job_id)
        assert job is not None
        actor = Actor(job.principal_id, job.operator_org_id, Role.OPERATOR)
        decided = services.jobs.decider.decide(tx, actor, job)
    assert decided.allowed, decided.decision.reasons
    fragment = decided.plan.fragment
    sql: str = getattr(fragment, "bounded_sql", "") or fragment.sql
    return sql


# process-tree memory ---------------------------------------------------------------------
def _status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _pss_kib(pid: int) -> int:
    """Proportional set size: shared pages divided among the processes sharing them."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_memory(root: int) -> tuple[int, int, int]:
    """(sum of VmRSS, sum of PSS, processes) of ``root``'s process tree, in KiB."""
    tree = process_tree(root, _parents())
    return (
        sum(_status_kib(pid, "VmRSS") for pid in tree),
        sum(_pss_kib(pid) for pid in tree),
        len(tree),
    )


def tree_breakdown(root: int) -> dict[str, tuple[int, int]]:
    """PSS (KiB) and count of the processes in ``root``'s tree, by what they run."""
    parts: dict[str, tuple[int, int]] = {}
    parents = _parents()
    for pid in process_tree(root, parents):
        name = "agent" if pid == root else _role(pid)
        if pid != root and name == _role(parents.get(pid, 0)):
            name += ", forked"
        count, pss = parts.get(name, (0, 0))
        parts[name] = (count + 1, pss + _pss_kib(pid))
    return parts


def _role(pid: int) -> str:
    """A short name for what a sandbox process runs (bubblewrap, a launcher, a worker)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = [part.decode("utf-8", "replace") for part in handle.read().split(b"\0")]
    except OSError:
        return "gone"
    program = os.path.basename(argv[0]) if argv and argv[0] else "?"
    if program.startswith("python"):
        text = " ".join(argv[1:])
        for marker in ("zygote", "worker", "launcher", "agent"):
            if marker in text:
                return f"python ({marker})"
        return "python"
    return program


def _stats() -> dict[int, list[str]]:
    """Every process's ``/proc/PID/stat`` fields from the state on (field 3 is index 0)."""
    found: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        found[int(entry)] = text.rsplit(")", 1)[1].split()
    return found


def _parents() -> dict[int, int]:
    return {pid: int(fields[1]) for pid, fields in _stats().items()}


def process_tree(root: int, parents: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for pid, ppid in parents.items():
        children[ppid].append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def cpu_now() -> tuple[float, float, float]:
    """CPU seconds of this process, and busy and total CPU seconds of the whole host."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    own = os.times()
    idle = values[3] + values[4]
    return own.user + own.system, (sum(values) - idle) / tick, sum(values) / tick


class CpuMeter:
    """CPU per job of the gateway process and of everything else on the host (the site
    agents, their sandboxes, the client process, and any other load)."""

    def __init__(self) -> None:
        self.begin = cpu_now()
        self.end = self.begin

    def stop(self) -> CpuMeter:
        self.end = cpu_now()
        return self

    def per_job(self, jobs: int) -> float:
        """CPU seconds per job of the whole host (gateway, agents, sandboxes, client)."""
        return (self.end[1] - self.begin[1]) / jobs

    def describe(self, jobs: int) -> str:
        gateway = self.end[0] - self.begin[0]
        busy = self.end[1] - self.begin[1]
        capacity = self.end[2] - self.begin[2]
        return (
            f"CPU per job: gateway process {gateway / jobs * 1000:.0f} ms, rest of the host "
            f"{(busy - gateway) / jobs * 1000:.0f} ms; host CPU busy "
            f"{busy / max(capacity, 1e-9) * 100:.0f}%"
        )


class TreeSampler(threading.Thread):
    """Samples the summed VmRSS of each root's process tree every ``interval`` seconds."""

    def __init__(self, roots: list[int], interval: float = 0.05) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.roots = roots
        self.interval = interval
        self.peak_tree = dict.fromkeys(roots, 0)
        self.peak_child = dict.fromkeys(roots, 0)
        self.most_processes = dict.fromkeys(roots, 0)
        self.samples = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        parents = _parents()
        for root in self.roots:
            tree = process_tree(root, parents)
            sizes = {pid: _status_kib(pid, "VmRSS") for pid in tree}
            self.peak_tree[root] = max(self.peak_tree[root], sum(sizes.values()))
            children = [size for pid, size in sizes.items() if pid != root]
            self.peak_child[root] = max(self.peak_child[root], max(children, default=0))
            self.most_processes[root] = max(self.most_processes[root], len(tree))
        self.samples += 1

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


# data ------------------------------------------------------------------------------------
def write_partition(path: Path, prefix: str, rows: int, seed: int) -> None:
    """``rows`` admissions with unique patient ids (the shared demo writer)."""
    from blindgate_demo.admissions import write_compact

    write_compact(path, prefix, rows, seed)


# the federation --------------------------------------------------------------------------
@dataclass
class Site:
    name: str
    site_id: str
    process: subprocess.Popen[bytes]
    log: Path
    files: dict[str, Path] = field(default_factory=dict)  # table -> partition file
    assets: dict[str, str] = field(default_factory=dict)  # table -> asset id


@dataclass
class Federation:
    services: Any
    runner: Any
    operator_key: str
    sites: list[Site] = field(default_factory=list)
    stages: StageTimes = field(default_factory=StageTimes)

    def assets(self, table: str) -> list[str]:
        return [s.assets[table] for s in self.sites]

    def files(self, table: str) -> list[Path]:
        return [s.files[table] for s in self.sites]


@dataclass(frozen=True)
class Table:
    """An asset every site holds: one partition file per site, its columns and its policy.

    ``write(path, n, site)`` writes site number ``n``'s partition and returns its rows;
    ``policy(asset_id)`` gives the policy's YAML; ``columns`` are (name, type, tag).
    """

    name: str
    file: str
    columns: tuple[tuple[str, str, str], ...]
    policy: Callable[[str], str]
    write: Callable[[Path, int, str], int]


def share(total: int, n: int) -> int:
    """Site ``n``'s rows of ``total`` split evenly over the sites, the first taking the rest."""
    per_site = total // len(HOSPITALS)
    return per_site + (total - per_site * len(HOSPITALS) if n == 0 else 0)


ADMISSION_COLUMNS = (
    ("patient_id", "text", "identifier"),
    ("district", "text", "quasi_identifier"),
    ("age", "integer", "quasi_identifier"),
    ("los_days", "integer", "attribute"),
)


def admission_tables(options: argparse.Namespace) -> list[Table]:
    """``admissions`` (``options.rows`` split over the sites) and ``admissions_small``."""
    suffix = ".parquet" if options.format == "parquet" else ".csv"

    def big(path: Path, n: int, site: str) -> int:
        rows = share(options.rows, n)
        write_partition(path, site[0].upper(), rows, seed=n)
        return rows

    def small(path: Path, n: int, site: str) -> int:
        write_partition(path, site[0].lower(), options.small_rows, seed=100 + n)
        return options.small_rows

    def mid(path: Path, n: int, site: str) -> int:
        rows = options.mid_rows // len(HOSPITALS) + (
            options.mid_rows % len(HOSPITALS) if n == 0 else 0
        )
        write_partition(path, site[0].upper() + "m", rows, seed=200 + n)
        return rows

    def policy(asset: str) -> str:
        return POLICY.format(asset=asset)

    return [
        Table(BIG, f"{BIG}{suffix}", ADMISSION_COLUMNS, policy, big),
        Table(SMALL, f"{SMALL}{suffix}", ADMISSION_COLUMNS, policy, small),
        Table(MID, f"{MID}{suffix}", ADMISSION_COLUMNS, policy, mid),
    ]


FRAGMENT_LOG = re.compile(r"fragment (\S+): (\w+) .*pooled=(True|False)")


class PoolLog:
    """Counts the fragments the agents logged since ``mark()``, and how many were pooled."""

    def __init__(self, sites: list[Site]) -> None:
        self.paths = [s.log for s in sites]
        self.offsets = [0] * len(self.paths)

    def mark(self) -> None:
        self.offsets = [p.stat().st_size for p in self.paths]

    def count(self) -> tuple[int, int]:
        pooled = total = 0
        for path, offset in zip(self.paths, self.offsets, strict=True):
            with open(path, "rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
            for match in FRAGMENT_LOG.finditer(text):
                if match.group(1).startswith("job"):
                    total += 1
                    pooled += match.group(3) == "True"
        return pooled, total

    def describe(self) -> str:
        pooled, total = self.count()
        return f"{pooled} of {total} fragments found a pre-started sandbox"


def build(
    scratch: Path,
    tables: list[Table],
    stack: list[Callable[[], None]],
    *,
    job_kinds: list[str],
    pool_size: int,
    purposes: tuple[str, ...] = ("research",),
) -> Federation:
    """The shared federation builder with three agent processes (logging at debug level,
    which says which fragments found a pre-started sandbox), each holding a partition of
    every table; the operator is licensed for ``job_kinds`` and ``purposes``."""
    from prometheus_client import CollectorRegistry

    from blindgate_demo import federation as shared
    from gateway.config import Settings
    from gateway.metrics import GatewayMetrics
    from gateway.service import build_services
    from gateway.service.jobs.runner import make_runner
    from gateway.siteclient.pool import SitePool
    from gateway.store import open_store

    shared.init_pki(scratch)
    store = open_store(f"sqlite:///{scratch / 'gateway.db'}")
    stack.append(store.close)
    metrics = GatewayMetrics(CollectorRegistry())
    services = build_services(
        store,
        Settings(data_dir=scratch / "data", dev_mode=True),
        metrics=metrics,
        site_pool=SitePool(shared.gateway_tls(scratch), metrics.registry),
    )
    stack.append(services.site_pool.close)
    stack.append(services.he.workspace.close)
    built = shared.build(
        scratch,
        services,
        holders=[shared.Party(name, name) for name in HOSPITALS],
        tables=[shared.Table(t.name, t.file, t.columns, t.policy, t.write) for t in tables],
        licensing=shared.Licensing(job_kinds=job_kinds, purposes=purposes),
        agents=shared.ProcessAgents(log_level="debug"),
        pool_size=pool_size,
    )
    stack.append(built.close)
    fed = Federation(services, make_runner(services, owner="bench-runner"), built.operator_key)
    fed.runner.poll = RUNNER_POLL_SECONDS
    for holder in built.holders:
        fed.sites.append(
            Site(
                holder.party.slug,
                holder.site_id,
                holder.agent.process,
                holder.agent.log,
                holder.files,
                holder.assets,
            )
        )
    return fed


@contextmanager
def scratch_space(prefix: str) -> Iterator[tuple[Path, list[Callable[[], None]]]]:
    """A temporary directory and a stack of clean-ups, undone last first on the way out."""
    stack: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            yield Path(tmp), stack
        finally:
            for undo in reversed(stack):
                undo()


# REST clients ----------------------------------------------------------------------------
FAILED = ("failed", "denied", "cancelled", "rejected", "expired")


def run_job(client: Any, sql: str, assets: list[str], poll: float) -> tuple[float, Any]:
    """Submit one job, poll it to ``succeeded``, fetch its result: (seconds, result)."""
    begin = time.perf_counter()
    job = client.post(
        "/v1/jobs", {"sql": sql, "assets": assets, "epsilon": EPSILON, "purpose": "research"}
    )
    if job["state"] != "queued":
        raise RuntimeError(f"job not queued: {job['state']} {job['decision']}")
    wait_done(client, job["id"], poll)
    result = client.get(f"/v1/jobs/{job['id']}/result")
    if not result["rows"]:
        raise RuntimeError("a released result without rows")
    return time.perf_counter() - begin, result


def check_counts(result: Any, rows: int) -> None:
    """The noisy per-district counts must add up to about ``rows``."""
    n = result["columns"].index("n")
    total = sum(row[n]["value"] for row in result["rows"])
    if abs(total - rows) > 0.01 * rows + 100:
        raise RuntimeError(f"the released counts add up to {total}, not about {rows}")


def wait_done(client: Any, job_id: str, poll: float) -> None:
    """Wait as the client does: a long poll answered when the job finishes."""
    state = client.wait(job_id, timeout=300.0, poll=poll)
    if state["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} {state['state']}: {state['error_code']}")


def load(url: str, key: str, sql: str, assets: list[str], jobs: int, clients: int, poll: float):
    """Client process for (b): ``clients`` threads submit ``jobs`` jobs in all, then each
    waits for its own in submission order and fetches the results."""
    from gateway.client import Client

    start = threading.Barrier(clients)
    shares = [jobs // clients + (1 if i < jobs % clients else 0) for i in range(clients)]

    def worker(share: int) -> tuple[float, float, list[float], list[float]]:
        with Client(url, key, timeout=120.0) as client:
            body = {"sql": sql, "assets": assets, "epsilon": EPSILON, "purpose": "research"}
            client.get("/v1/me")
            start.wait()
            first = time.perf_counter()
            submitted, submits = [], []
            for _ in range(share):
                begin = time.perf_counter()
                job = client.post("/v1/jobs", body)
                submits.append(time.perf_counter() - begin)
                if job["state"] != "queued":
                    raise RuntimeError(f"job not queued: {job['state']} {job['decision']}")
                submitted.append((job["id"], begin))
            latencies = []
            for job_id, begin in submitted:
                wait_done(client, job_id, poll)
                client.get(f"/v1/jobs/{job_id}/result")
                latencies.append(time.perf_counter() - begin)
            return first, time.perf_counter(), submits, latencies

    with ThreadPoolExecutor(max_workers=clients) as pool:
        outcomes = list(pool.map(worker, shares))
    began = min(o[0] for o in outcomes)
    ended = max(o[1] for o in outcomes)
    return {
        "wall": ended - began,
        "submits": [s for o in outcomes for s in o[2]],
        "latencies": [s for o in outcomes for s in o[3]],
    }


@contextmanager
def serving(services: Any) -> Iterator[str]:
    """The REST API on a free loopback port."""
    from gateway.http.server import HttpServer

    server = HttpServer(services, port=0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


# the measurements ------------------------------------------------------------------------
def duckdb_baseline(files: list[Path], runs: int) -> list[float]:
    import duckdb

    reader = "read_parquet" if files[0].suffix == ".parquet" else "read_csv"
    names = ", ".join(f"'{f}'" for f in files)
    with duckdb.connect() as con:
        con.execute(f"CREATE VIEW {BIG} AS SELECT * FROM {reader}([{names}])")
        sql = GROUP_SQL.format(table=BIG)
        con.execute(sql).fetchall()
        samples = []
        for _ in range(runs):
            begin = time.perf_counter()
            con.execute(sql).fetchall()
            samples.append(time.perf_counter() - begin)
    return samples


def duckdb_fragments(files: list[Path], program: str, runs: int, threads: int) -> list[float]:
    """The site fragment over each file's bounded view (made once, as the site's sandbox
    does) in turn, in this process (``threads`` like a sandbox)."""
    import duckdb

    from sandbox.executors import duckdb_sql

    reader = "read_parquet" if files[0].suffix == ".parquet" else "read_csv"
    bound: dict[str, object] = {"unit": "patient_id", "rows": 1, "seed": "00" * 16}
    cons = []
    for path in files:
        con = duckdb.connect(config={"threads": threads})
        if hasattr(duckdb_sql, "bounded_source"):
            select, parameters = duckdb_sql.bounded_source(f"{reader}('{path}')", bound)
            con.execute(f"CREATE TABLE asset AS {select}", parameters)
        else:  # a version that bounds in every fragment
            con.execute(f"CREATE VIEW asset AS SELECT * FROM {reader}('{path}')")
        cons.append(con)
    try:
        for con in cons:
            con.execute(program).fetchall()
        samples = []
        for _ in range(runs):
            begin = time.perf_counter()
            for con in cons:
                con.execute(program).fetchall()
            samples.append(time.perf_counter() - begin)
    finally:
        for con in cons:
            con.close()
    return samples


@dataclass
class Memory:
    idle: dict[int, int]
    peak_tree: dict[int, int]
    peak_child: dict[int, int]
    most_processes: dict[int, int]
    agent_hwm: dict[int, int]
    samples: int


def lone_fragment(fed: Federation, job_id: str, runs: int) -> list[float]:
    """The job's ticket for the first site sent straight to its agent, alone, 0.5 s apart
    (pool warm), each time under a new fragment id (which the site judges and charges anew)."""
    from contracts.tickets import encode_ticket
    from gateway.service.jobs.kind import SiteStep
    from gateway.service.jobs.tickets import ticket_for
    from sandbox.wire import FragmentRequest

    first = fed.sites[0]
    with fed.services.ctx.store.read() as tx:
        site = tx.get_site(first.site_id)
        job = tx.get_job(job_id)
        assert site is not None
        assert job is not None
        found = (tx.get_asset(i) for i in job.asset_ids)
        asset = next(a for a in found if a is not None and a.site_id == site.id)
        ticket = ticket_for(tx, job, SiteStep(asset), datetime.now(UTC))
    client = fed.services.site_pool.client(site)
    samples = []
    for n in range(runs):
        time.sleep(0.5)
        fresh = ticket.model_copy(update={"fragment_id": f"bench-lone-{n}-{time.time_ns()}"})
        request = FragmentRequest(fresh.fragment_id, encode_ticket(fresh))
        outcome = client.run_fragment(request, 120.0)
        if not outcome.ok:
            raise RuntimeError(f"the fragment failed alone: {outcome.failure} {outcome.reasons}")
        samples.append(outcome.elapsed_ms / 1000)
    return samples


def big_query(
    fed: Federation, url: str, options: argparse.Namespace
) -> tuple[list[float], Memory, CpuMeter, str]:
    """(a) and (c): the GROUP BY job ``options.runs`` times, sampling the agents' memory."""
    from gateway.client import Client

    sql = GROUP_SQL.format(table=BIG)
    assets = fed.assets(BIG)
    poll = options.poll / 1000
    roots = [s.process.pid for s in fed.sites]
    with Client(url, fed.operator_key, timeout=300.0) as client:
        first = run_job(client, sql, assets, poll)[1]
        check_counts(first, options.rows)
        fed.stages.programs["fragment"] = fragment_sql(fed, first["job_id"])
        fed.stages.programs["job"] = first["job_id"]
        time.sleep(1.0)
        fed.stages.reset()
        sampler = TreeSampler(roots)
        sampler.sample()
        idle = dict(sampler.peak_tree)
        cpu = CpuMeter()
        pool = PoolLog(fed.sites)
        pool.mark()
        sampler.start()
        try:
            totals = [run_job(client, sql, assets, poll)[0] for _ in range(options.runs)]
        finally:
            sampler.stop()
            cpu.stop()
    memory = Memory(
        idle,
        sampler.peak_tree,
        sampler.peak_child,
        sampler.most_processes,
        {pid: _status_kib(pid, "VmHWM") for pid in roots},
        sampler.samples,
    )
    return totals, memory, cpu, pool.describe()


def small_job_sql(fed: Federation, url: str) -> str:
    """``COUNT_SQL`` if the gateway accepts it, else ``COUNT_FALLBACK_SQL`` (with a note)."""
    from gateway.client import Client

    sql = COUNT_SQL.format(table=BIG)
    body = {"sql": sql, "assets": fed.assets(BIG), "epsilon": EPSILON, "purpose": "research"}
    with Client(url, fed.operator_key) as client:
        decision = client.dry_run(body)
    if decision["allow"]:
        return COUNT_SQL
    reasons = "; ".join(f"{r['code']}: {r['message']}" for r in decision["reasons"])
    print(
        f"note: '{sql}' is denied at submission ({reasons}); the small jobs use "
        f"'{COUNT_FALLBACK_SQL.format(table=BIG)}' instead"
    )
    return COUNT_FALLBACK_SQL


@dataclass
class Throughput:
    table: str
    sql: str
    wall: float
    submits: list[float]
    latencies: list[float]
    stages: dict[str, list[float]]
    cpu: CpuMeter
    pool: str


def throughput(
    fed: Federation, url: str, table: str, template: str, options: argparse.Namespace
) -> Throughput:
    """(b): ``options.jobs`` small jobs at once from a separate client process."""
    sql = template.format(table=table)
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()
        fed.stages.reset()
        cpu = CpuMeter()
        sandboxes = PoolLog(fed.sites)
        sandboxes.mark()
        outcome = pool.submit(
            load,
            url,
            fed.operator_key,
            sql,
            fed.assets(table),
            options.jobs,
            options.clients,
            options.load_poll / 1000,
        ).result()
        cpu.stop()
    return Throughput(
        table,
        sql,
        outcome["wall"],
        outcome["submits"],
        outcome["latencies"],
        fed.stages.snapshot(),
        cpu,
        sandboxes.describe(),
    )


def sequential(fed: Federation, url: str, options: argparse.Namespace) -> list[float]:
    """(e) The GROUP BY over ``MID`` (100,000 rows), one job at a time: submit to result."""
    from gateway.client import Client

    sql = GROUP_SQL.format(table=MID)
    assets = fed.assets(MID)
    with Client(url, fed.operator_key, timeout=120.0) as client:
        check_counts(run_job(client, sql, assets, options.poll / 1000)[1], options.mid_rows)
        time.sleep(0.5)
        fed.stages.reset()
        return [run_job(client, sql, assets, options.poll / 1000)[0] for _ in range(options.seq)]


def gateway_main(scratch: str, ready: Any, stop: Any) -> None:
    """A gateway process of its own over the benchmark's store: REST and one runner, as
    ``blindgate serve`` runs them (for its memory, apart from the agents and this process)."""
    from prometheus_client import CollectorRegistry

    from blindgate_demo import federation as shared
    from gateway.config import Settings
    from gateway.http.server import HttpServer
    from gateway.metrics import GatewayMetrics
    from gateway.service import build_services
    from gateway.service.jobs.runner import make_runner
    from gateway.siteclient.pool import SitePool
    from gateway.store import open_store

    root = Path(scratch)
    store = open_store(f"sqlite:///{root / 'gateway.db'}")
    metrics = GatewayMetrics(CollectorRegistry())
    services = build_services(
        store,
        Settings(data_dir=root / "data", dev_mode=True),
        metrics=metrics,
        site_pool=SitePool(shared.gateway_tls(root), metrics.registry),
    )
    runner = make_runner(services, owner="bench-gateway-process")
    runner.poll = RUNNER_POLL_SECONDS
    runner.start()
    server = HttpServer(services, port=0)
    server.start()
    ready.put(server.url)
    stop.wait()
    server.stop()
    runner.stop()
    services.site_pool.close()
    store.close()


@dataclass
class GatewayProcess:
    rss_idle: int
    rss_after: int
    hwm: int
    latencies: list[float]


def gateway_process(scratch: Path, fed: Federation, options: argparse.Namespace) -> GatewayProcess:
    """(f) The gateway's own memory: started in a process of its own, idle, then after
    ``options.seq`` sequential GROUP BY jobs over ``MID`` through it."""
    from gateway.client import Client

    context = get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    process = context.Process(target=gateway_main, args=(str(scratch), ready, stop))
    process.start()
    try:
        url = ready.get(timeout=120)
        time.sleep(1.0)
        assert process.pid is not None
        idle = _status_kib(process.pid, "VmRSS")
        sql = GROUP_SQL.format(table=MID)
        with Client(url, fed.operator_key, timeout=120.0) as client:
            latencies = [
                run_job(client, sql, fed.assets(MID), options.poll / 1000)[0]
                for _ in range(options.seq)
            ]
        after = _status_kib(process.pid, "VmRSS")
        hwm = _status_kib(process.pid, "VmHWM")
    finally:
        stop.set()
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
    return GatewayProcess(idle, after, hwm, latencies)


# the report ------------------------------------------------------------------------------
def report_big(
    options: argparse.Namespace,
    totals: list[float],
    duck: list[float],
    fragments: list[float],
    alone: list[float],
    cpu: CpuMeter,
    pool: str,
) -> None:
    blind, base = statistics.median(totals), statistics.median(duck)
    aim = 3 * base + 0.150
    print(f"(a) GROUP BY district, COUNT/SUM/AVG over {options.rows:,} rows on 3 sites")
    print(
        f"      blindgate, REST submit -> released result   median {ms(blind)}   "
        f"min {ms(min(totals))}   max {ms(max(totals))}   n={len(totals)}"
    )
    print(f"      duckdb, same query over the 3 files, 1 process  median {ms(base)}")
    print(
        f"      ratio {blind / base:.1f}x   aim <= 3 x duckdb + 150 ms = {ms(aim).strip()}: "
        f"{'met' if blind <= aim else 'NOT met'}"
    )
    print(
        "      for scale: duckdb running the sites' fragment SQL over each file in turn "
        f"(2 threads, like a sandbox) median {ms(statistics.median(fragments)).strip()}; "
        "one site's fragment alone (straight to its agent, pool warm) median "
        f"{ms(statistics.median(alone)).strip()} in the sandbox"
    )
    print(f"      {cpu.describe(len(totals))}; {pool}")


def report_throughput(options: argparse.Namespace, run: Throughput) -> None:
    rate = options.jobs / run.wall
    busy = sum(run.stages.get("execute (claimed -> released)", [])) / run.wall
    print(f"(b) {options.jobs} x '{run.sql}' from {options.clients} client threads")
    print(
        f"      {rate:.1f} jobs/s (aim >= 20/s: {'met' if rate >= 20 else 'NOT met'})   "
        f"wall {run.wall:.2f} s   submit p50 {ms(statistics.median(run.submits)).strip()}   "
        f"end to end p50 {ms(statistics.median(run.latencies)).strip()}"
    )
    print(
        f"      the runner's workers executed jobs {busy * 100:.0f}% of the wall time "
        f"(summed over its concurrent workers); {run.pool}"
    )
    print(f"      {run.cpu.describe(options.jobs)}")


def report_memory(options: argparse.Namespace, fed: Federation, memory: Memory) -> None:
    print(f"(c) site agent memory during (a) ({memory.samples} samples of each process tree)")
    for site in fed.sites:
        pid = site.process.pid
        print(
            f"      {site.name:<17} agent VmHWM {memory.agent_hwm[pid] / 1024:4.0f} MiB   "
            f"agent + sandboxes, sum of VmRSS: peak {memory.peak_tree[pid] / 1024:4.0f} MiB "
            f"(idle {memory.idle[pid] / 1024:4.0f} MiB, up to "
            f"{memory.most_processes[pid]} processes)   largest sandbox process "
            f"{memory.peak_child[pid] / 1024:4.0f} MiB"
        )
    print(
        "      sums count shared pages (the interpreter, DuckDB) once per process; "
        f"the idle figure is the agent with pool_size {options.pool_size} ready sandboxes "
        "for each of its 2 assets"
    )


def report_sequential(options: argparse.Namespace, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    print(
        f"(e) GROUP BY district over {options.mid_rows:,} rows on 3 sites, one job at a time, "
        f"REST submit -> released result (waiting with Client.wait)"
    )
    print(
        f"      p50 {ms(statistics.median(latencies)).strip()}   p90 {ms(p90).strip()}   "
        f"min {ms(min(latencies)).strip()}   n={len(latencies)}   aim <= 50 ms p50: "
        f"{'met' if statistics.median(latencies) <= 0.050 else 'NOT met'}"
    )


def report_idle(
    fed: Federation,
    idle: dict[int, tuple[int, int, int]],
    parts: dict[str, tuple[int, int]],
    gateway: GatewayProcess,
) -> None:
    print("(f) memory at rest")
    for site in fed.sites:
        rss, pss, count = idle[site.process.pid]
        print(
            f"      {site.name:<17} idle agent with its ready sandboxes: sum of VmRSS "
            f"{rss / 1024:4.0f} MiB, sum of PSS {pss / 1024:4.0f} MiB ({count} processes); "
            f"aim < 150 MiB: {'met' if pss / 1024 < 150 else 'NOT met'} (PSS)"
        )
    print(f"      where {fed.sites[0].name}'s PSS is, by process:")
    for name, (count, pss) in sorted(parts.items(), key=lambda item: -item[1][1]):
        print(f"        {name:<28} {count:2d} x  PSS {pss / 1024:6.1f} MiB in all")
    print(
        f"      gateway process of its own (REST, runner, SQLite store): VmRSS idle "
        f"{gateway.rss_idle / 1024:.0f} MiB, after {len(gateway.latencies)} jobs "
        f"{gateway.rss_after / 1024:.0f} MiB, VmHWM {gateway.hwm / 1024:.0f} MiB; aim < 150 MiB: "
        f"{'met' if gateway.hwm / 1024 < 150 else 'NOT met'}; its jobs took p50 "
        f"{ms(statistics.median(gateway.latencies)).strip()}"
    )


def report_summary(
    options: argparse.Namespace,
    seq: list[float],
    runs: list[Throughput],
    totals: list[float],
    duck: list[float],
    idle: dict[int, tuple[int, int, int]],
    gateway: GatewayProcess,
) -> None:
    small = runs[0]
    cpu = small.cpu.per_job(options.jobs)
    blind, base = statistics.median(totals), statistics.median(duck)
    agents = max(pss for _rss, pss, _n in idle.values()) / 1024
    rows = [
        (
            f"one 3-site job over {options.mid_rows:,} rows, sequential",
            f"{ms(statistics.median(seq)).strip()} p50",
            "<= 50 ms p50",
        ),
        (
            "small jobs per second, 3 sites",
            f"{options.jobs / small.wall:.1f}/s; {cpu:.2f} CPU-s per job",
            ">= 20/s",
        ),
        (
            f"GROUP BY over {options.rows:,} rows on 3 sites",
            f"{ms(blind).strip()} vs DuckDB {ms(base).strip()} ({blind / base:.0f}x)",
            f"<= 3 x DuckDB + 150 ms = {ms(3 * base + 0.150).strip()}",
        ),
        ("an idle site agent with its ready sandboxes", f"{agents:.0f} MiB PSS", "< 150 MiB"),
        ("the gateway process", f"{gateway.hwm / 1024:.0f} MiB VmHWM", "< 150 MiB RSS"),
    ]
    print("summary (he_aggregate: benchmarks/he.py)")
    for name, value, aim in rows:
        print(f"      {name:<48} {value:<44} aim {aim}")


def report_stages(title: str, samples: dict[str, list[float]]) -> None:
    print(f"(d) {title}: p50 per stage in the gateway (n = jobs, or fragments)")
    for stage, values in samples.items():
        print(f"      {stage:<46} {ms(statistics.median(values))}   n={len(values)}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer rows, runs and jobs")
    parser.add_argument("--rows", type=int, help="rows of admissions in all (1,000,000)")
    parser.add_argument("--small-rows", type=int, default=500, help="rows per small partition")
    parser.add_argument("--mid-rows", type=int, default=100_000, help="rows of (e), in all")
    parser.add_argument("--seq", type=int, help="sequential jobs in (e) and (f) (20)")
    parser.add_argument("--runs", type=int, help="timed runs of the big query (5)")
    parser.add_argument("--jobs", type=int, help="small jobs per throughput test (40)")
    parser.add_argument("--clients", type=int, default=4, help="client threads for (b)")
    parser.add_argument("--poll", type=float, default=20, help="client poll in (a), ms")
    parser.add_argument("--load-poll", type=float, default=50, help="client poll in (b), ms")
    parser.add_argument("--pool-size", type=int, default=2, help="warm sandboxes per asset")
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    options = parser.parse_args()
    defaults = (200_000, 3, 20, 8) if options.quick else (1_000_000, 5, 40, 20)
    options.rows = options.rows or defaults[0]
    options.runs = options.runs or defaults[1]
    options.jobs = options.jobs or defaults[2]
    options.seq = options.seq or defaults[3]

    began = time.perf_counter()
    load_before = os.getloadavg()[0]
    with scratch_space("bench-fedsql-") as (tmp, stack):
        fed = build(
            tmp,
            admission_tables(options),
            stack,
            job_kinds=["sql_aggregate"],
            pool_size=options.pool_size,
        )
        setup = time.perf_counter() - began
        instrument(fed.runner, fed.stages)
        fed.runner.start()
        stack.append(fed.runner.stop)
        files = fed.files(BIG)
        print(
            f"{options.rows:,} rows of {BIG} on 3 site agents ({options.format}, "
            f"{os.path.getsize(files[0]) / 2**20:.1f} MiB per file), {options.small_rows} "
            f"rows per {SMALL} partition; SQLite store; runner poll "
            f"{RUNNER_POLL_SECONDS * 1000:.0f} ms (default 500); client poll "
            f"{options.poll:.0f} ms in (a), {options.load_poll:.0f} ms in (b); "
            f"set up in {setup:.1f} s; {len(os.sched_getaffinity(0))} cores, load "
            f"average {load_before:.1f} at start"
        )
        with serving(fed.services) as url:
            totals, memory, big_cpu, big_pool = big_query(fed, url, options)
            big_stages = fed.stages.snapshot()
            duck = duckdb_baseline(files, options.runs)
            program = fed.stages.programs["fragment"]
            fragments = duckdb_fragments(files, program, options.runs, threads=2)
            alone = lone_fragment(fed, fed.stages.programs["job"], options.runs)
            template = small_job_sql(fed, url)
            runs = [throughput(fed, url, t, template, options) for t in (SMALL, BIG)]
            seq = sequential(fed, url, options)
            seq_stages = fed.stages.snapshot()
        time.sleep(2.0)
        idle = {s.process.pid: tree_memory(s.process.pid) for s in fed.sites}
        parts = tree_breakdown(fed.sites[0].process.pid)
        fed.runner.stop()
        gateway = gateway_process(tmp, fed, options)
        report_big(options, totals, duck, fragments, alone, big_cpu, big_pool)
        for run in runs:
            report_throughput(options, run)
        report_memory(options, fed, memory)
        report_sequential(options, seq)
        report_idle(fed, idle, parts, gateway)
        report_stages("the GROUP BY job of (a)", big_stages)
        for run in runs:
            report_stages(f"the small jobs of (b) on {run.table}", run.stages)
        report_stages(f"the sequential jobs of (e) on {MID}", seq_stages)
        report_summary(options, seq, runs, totals, duck, idle, gateway)
    print(f"wall time {time.perf_counter() - began:.1f} s")


if __name__ == "__main__":
    main()
