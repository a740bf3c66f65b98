"""The isolated runner: ``Runner(config).run(FragmentSpec) -> FragmentResult``.

Every fragment runs in its own sandbox process (see :mod:`sandbox.isolation` for
the layers), serves exactly one fragment and exits.  Results are validated
before they are returned; failures carry only a :class:`FailureReason` code.
Internal detail (exit status, signal, byte counts, an exception class name) goes
to this module's debug log, never rows and, unless
``unsafe_log_child_stderr`` is set, never the child's stderr.

Example::

    with Runner(RunnerConfig(pool_size=2)) as runner:
        runner.warm("duckdb_sql", Path("/data/admissions.parquet"))
        result = runner.run(FragmentSpec("duckdb_sql", "SELECT COUNT(*) FROM asset",
                                         Path("/data/admissions.parquet")))
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import stat
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Protocol

from sandbox import executors
from sandbox.config import RunnerConfig
from sandbox.executors.base import MAX_REQUEST_BYTES
from sandbox.forkserver import ForkServerPool, ServerBroken, Stopped
from sandbox.isolation import Isolation, IsolationReport
from sandbox.launcher import LAUNCH_FAILED
from sandbox.plans import LaunchRequest, asset_format
from sandbox.pool import SandboxPool
from sandbox.process import RawOutcome
from sandbox.runtime import RuntimeLayout
from sandbox.spec import (
    Bound,
    FailureReason,
    FragmentResult,
    FragmentSpec,
    Limits,
    OutputValidationError,
    ResultTable,
    parse_output,
    table_from_document,
)

log = logging.getLogger(__name__)

MAX_PROGRAM_BYTES = MAX_REQUEST_BYTES - 1024


class Guard(Protocol):
    """Lets another thread stop a running fragment (see ``sandbox.agent.fragments``)."""

    @property
    def reason(self) -> object | None:
        """Why the fragment was stopped, or ``None`` while it may run."""
        ...

    def attach(self, pid: int) -> bool:
        """Bind the running sandbox; ``False`` if the guard was pulled meanwhile."""
        ...

    def detach(self) -> None: ...


class IsolationError(RuntimeError):
    """The host cannot provide the configured minimum isolation level."""


class _BadInput(Exception):
    pass


class _Unreadable(Exception):
    """The sandbox uid cannot read the asset or the input (a site configuration error)."""


def readable_by(path: Path, uid: int, gid: int, *, directory: bool = False) -> bool:
    """Whether ``uid``/``gid`` (no supplementary groups) may read ``path`` by its mode bits.

    Only the file itself counts: the launcher stages sources as root, so their host
    directories need not be open to the sandbox uid.
    """
    info = path.stat()
    if info.st_uid == uid:
        bits = stat.S_IRUSR | (stat.S_IXUSR if directory else 0)
    elif info.st_gid == gid:
        bits = stat.S_IRGRP | (stat.S_IXGRP if directory else 0)
    else:
        bits = stat.S_IROTH | (stat.S_IXOTH if directory else 0)
    return info.st_mode & bits == bits


def classify(outcome: RawOutcome, limits: Limits) -> tuple[ResultTable | FailureReason, str]:
    """Turn what the parent observed into a validated table or a reason code.

    Returns the result and a short label for the debug log.
    """
    if outcome.too_large:
        return FailureReason.OUTPUT_TOO_LARGE, "output cap"
    if outcome.timed_out:
        return FailureReason.TIMEOUT, "wall clock"
    if outcome.exit_code == 0 and outcome.signal is None:
        try:
            parsed = table_from_document(parse_output(outcome.stdout))
        except OutputValidationError as exc:
            return FailureReason.INTERNAL, f"invalid output: {exc}"
        if isinstance(parsed, ResultTable):
            return parsed, "ok"
        return parsed
    if outcome.oom_killed:
        return FailureReason.MEMORY, "oom kill"
    if outcome.signal == signal.SIGXCPU:
        return FailureReason.TIMEOUT, "cpu soft limit"
    if outcome.signal == signal.SIGKILL and outcome.cpu_seconds >= limits.cpu_seconds:
        return FailureReason.TIMEOUT, "cpu hard limit"
    if outcome.signal == signal.SIGSYS:
        return FailureReason.SANDBOX_VIOLATION, "seccomp kill"
    if outcome.exit_code == LAUNCH_FAILED:
        return FailureReason.INTERNAL, "launcher failed"
    return FailureReason.INTERNAL, "abnormal exit"


class Runner:
    """Runs job fragments in per-fragment sandboxes; thread-safe."""

    def __init__(self, config: RunnerConfig | None = None) -> None:
        self.config = config or RunnerConfig()
        if self.config.unsafe_enable_test_executor:
            log.warning("UNSAFE: the python_test executor is enabled (arbitrary code)")
        if self.config.unsafe_log_child_stderr:
            log.warning("UNSAFE: sandbox stderr is written to the debug log")
        self._layout = RuntimeLayout.discover(self.config.python_executable)
        self._layout.precompile()
        self._isolation = Isolation.detect(self.config, self._layout)
        report = self._isolation.report
        self._below_minimum = report.level.rank < self.config.minimum_isolation.rank
        if self._below_minimum and not self.config.unsafe_allow_weak_isolation:
            raise IsolationError(
                f"isolation level {report.level.value} is below the configured minimum "
                f"{self.config.minimum_isolation.value}: {'; '.join(report.notes)}"
            )
        log.info("sandbox isolation: %s", report.as_dict())
        self._pool = SandboxPool(
            self._isolation.start,
            self.config.pool_size,
            self.config.pool_max_keys,
            self.config.pool_idle_seconds,
        )
        self._refiller = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-pool")
        self._servers: ForkServerPool | None = None
        if self.config.fork_servers and self._isolation.forks:
            self._servers = ForkServerPool(
                self._isolation.start_server,
                self.config.fork_servers,
                self.config.pool_max_keys,
                self.config.pool_idle_seconds,
            )
        log.info("fork servers: %s", "on" if self._servers is not None else "off")
        self._stopping = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="sandbox-reaper", daemon=True)
        self._reaper.start()

    def __enter__(self) -> Runner:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def isolation(self) -> Isolation:
        """The detected platform (used by benchmarks to time bare sandbox start-up)."""
        return self._isolation

    def isolation_report(self) -> IsolationReport:
        """Which layers are active on this host and the overall level."""
        return self._isolation.report

    @property
    def pool(self) -> SandboxPool:
        """The pre-started sandboxes (for fragments that no fork server runs)."""
        return self._pool

    @property
    def fork_servers(self) -> ForkServerPool | None:
        """The fork servers, when this host runs fragments in them."""
        return self._servers

    def executors(self) -> frozenset[str]:
        """Names of the executors this runner accepts."""
        names = set(executors.PRODUCTION_EXECUTORS)
        if self.config.unsafe_enable_test_executor:
            names |= set(executors.TEST_EXECUTORS)
        return frozenset(names)

    def warm(
        self,
        executor: str,
        asset_path: Path,
        input_dir: Path | None = None,
        limits: Limits | None = None,
        bound: Bound | None = None,
    ) -> None:
        """Have a sandbox ready for fragments with exactly these settings: a fork server
        where they are used, else ``pool_size`` pre-started sandboxes."""
        spec = FragmentSpec(
            executor, "", asset_path, input_dir, limits or self.config.default_limits, bound
        )
        try:
            request = self._request(spec)
        except (_BadInput, _Unreadable) as exc:
            raise ValueError("cannot warm a pool for an invalid fragment") from exc
        if self._servers is not None and request.forks:
            self._servers.warm(request)
        else:
            # on the refiller's thread, which lives as long as the runner: a sandbox can be
            # sent the parent-death signal when the thread that started it ends
            self._refiller.submit(self._pool.warm, request).result()

    def run(
        self, spec: FragmentSpec, *, guard: Guard | None = None, label: str | None = None
    ) -> FragmentResult:
        """Run one fragment in its own sandbox and return a validated result.

        With ``guard``, another thread can stop the fragment: a guard already pulled
        means the sandbox never starts, and the sandbox is attached to it while it runs.
        ``label`` names the fragment in the debug log (default: a random one).
        """
        begin = time.monotonic()
        fragment = label or uuid.uuid4().hex[:12]
        if self._below_minimum:
            log.warning(
                "UNSAFE: fragment %s runs with %s isolation (minimum %s)",
                fragment,
                self._isolation.report.level.value,
                self.config.minimum_isolation.value,
            )
        try:
            request = self._request(spec)
        except _BadInput as exc:
            log.debug("fragment %s rejected before start: %s", fragment, exc)
            return FragmentResult.failed(FailureReason.BAD_INPUT, _ms(begin))
        except _Unreadable as exc:
            log.warning("fragment %s not started: %s", fragment, exc)
            return FragmentResult.failed(FailureReason.INTERNAL, _ms(begin))
        if guard is not None and guard.reason is not None:
            return FragmentResult.failed(FailureReason.INTERNAL, _ms(begin))
        if self._servers is not None and request.forks:
            forked = self._run_forked(spec, request, guard, fragment, begin)
            if forked is not None:
                return forked
            request = dataclasses.replace(request, forks=False)
        sandbox = self._pool.take(request)
        pooled = sandbox is not None
        try:
            if sandbox is None:
                sandbox = self._isolation.start(request)
            if guard is not None and not guard.attach(sandbox.pid):
                return FragmentResult.failed(FailureReason.INTERNAL, _ms(begin))
            try:
                outcome = sandbox.execute(
                    spec.program,
                    spec.limits.wall_seconds,
                    spec.limits.output_bytes,
                    self.config.stderr_capture_bytes,
                )
            finally:
                if guard is not None:
                    guard.detach()
        except OSError as exc:
            log.debug("fragment %s could not start: %s", fragment, type(exc).__name__)
            return FragmentResult.failed(FailureReason.INTERNAL, _ms(begin))
        finally:
            if sandbox is not None:
                sandbox.close()
            if self._pool.size:
                with contextlib.suppress(RuntimeError):
                    self._refiller.submit(self._pool.refill_for, request)
        result, label = classify(outcome, spec.limits)
        self._log(fragment, pooled, outcome, result, label)
        if isinstance(result, ResultTable):
            return FragmentResult.success(result, _ms(begin))
        return FragmentResult.failed(result, _ms(begin))

    def _run_forked(
        self,
        spec: FragmentSpec,
        request: LaunchRequest,
        guard: Guard | None,
        fragment: str,
        begin: float,
    ) -> FragmentResult | None:
        """Run the fragment in a child of a fork server; ``None`` when no server could be
        had (the caller then starts a sandbox of its own)."""
        assert self._servers is not None
        try:
            server = self._servers.acquire(request, spec.limits.wall_seconds)
        except (OSError, ServerBroken) as exc:
            log.info("fragment %s: no fork server (%s)", fragment, type(exc).__name__)
            return None
        try:
            outcome = server.execute(
                spec.program, spec.limits, self.config.stderr_capture_bytes, guard
            )
        except Stopped:
            return FragmentResult.failed(FailureReason.INTERNAL, _ms(begin))
        except (OSError, ServerBroken) as exc:
            log.warning("fragment %s: fork server retired (%s)", fragment, type(exc).__name__)
            return FragmentResult.failed(FailureReason.INTERNAL, _ms(begin))
        finally:
            self._servers.release(request, server)
        result, label = classify(outcome, spec.limits)
        self._log(fragment, True, outcome, result, label, forked=True)
        if isinstance(result, ResultTable):
            return FragmentResult.success(result, _ms(begin))
        return FragmentResult.failed(result, _ms(begin))

    def _reap(self) -> None:
        """Shrink the pools when idle: fork servers and pre-started sandboxes nobody used
        for ``pool_idle_seconds`` are stopped."""
        interval = max(0.5, min(30.0, self.config.pool_idle_seconds / 4))
        while not self._stopping.wait(interval):
            try:
                self._pool.shrink()
                if self._servers is not None:
                    self._servers.shrink()
            except Exception as exc:  # keep reaping; the next round retries
                log.warning("shrinking the sandbox pools failed: %s", type(exc).__name__)

    def close(self) -> None:
        """Stop every pre-started sandbox and wait for pending refills to clean up."""
        self._stopping.set()
        if self._servers is not None:
            self._servers.close()
        self._pool.close()
        self._refiller.shutdown(wait=True, cancel_futures=True)

    def _request(self, spec: FragmentSpec) -> LaunchRequest:
        if spec.executor not in self.executors():
            raise _BadInput("executor not enabled")
        if len(spec.program.encode("utf-8", "surrogatepass")) > MAX_PROGRAM_BYTES:
            raise _BadInput("program too large")
        try:
            asset = Path(spec.asset_path).resolve(strict=True)
            if not stat.S_ISREG(asset.stat().st_mode):
                raise _BadInput("asset is not a regular file")
            input_dir = None
            if spec.input_dir is not None:
                input_dir = Path(spec.input_dir).resolve(strict=True)
                if not input_dir.is_dir():
                    raise _BadInput("input is not a directory")
        except OSError as exc:
            raise _BadInput(f"path not usable: {type(exc).__name__}") from None
        if asset_format(asset) is None:
            raise _BadInput("unsupported asset format")
        writable = spec.writable_input
        if writable is not None:
            parts = Path(writable).parts
            if (
                input_dir is None
                or not parts
                or Path(writable).is_absolute()
                or any(part in ("..", ".") for part in parts)
                or not (input_dir / writable).is_dir()
                or (input_dir / writable).is_symlink()
            ):
                raise _BadInput("writable input directory not usable")
            if self._isolation.backend != "bwrap":
                raise _BadInput("a writable input directory needs a namespace sandbox")
        if self._isolation.separate_uid:
            uid, gid = self.config.sandbox_uid, self.config.sandbox_gid
            if not readable_by(asset, uid, gid):
                raise _Unreadable(
                    f"the asset {asset} is not readable by the sandbox uid {uid} (gid {gid}); "
                    "make it readable by that group or by others"
                )
            if input_dir is not None and not readable_by(input_dir, uid, gid, directory=True):
                raise _Unreadable(f"the input {input_dir} is not readable by the sandbox uid")
        return LaunchRequest(
            spec.executor,
            asset,
            input_dir,
            spec.limits,
            allow_test_executor=self.config.unsafe_enable_test_executor,
            bound=spec.bound,
            forks=self._servers is not None and spec.executor in executors.FORK_EXECUTORS,
            writable_input=writable,
        )

    def _log(
        self,
        fragment: str,
        pooled: bool,
        outcome: RawOutcome,
        result: ResultTable | FailureReason,
        label: str,
        *,
        forked: bool = False,
    ) -> None:
        code = "ok" if isinstance(result, ResultTable) else result.value
        log.debug(
            "fragment %s: %s (%s) backend=%s pooled=%s forked=%s exit=%s signal=%s cpu=%.2fs "
            "stdout=%dB stderr=%dB wall=%.1fms notes=%s",
            fragment,
            code,
            label,
            self._isolation.backend,
            pooled,
            forked,
            outcome.exit_code,
            outcome.signal,
            outcome.cpu_seconds,
            outcome.stdout_bytes,
            outcome.stderr_bytes,
            outcome.elapsed * 1000,
            outcome.notes,
        )
        if self.config.unsafe_log_child_stderr and outcome.stderr_head:
            log.debug(
                "fragment %s stderr: %r", fragment, outcome.stderr_head.decode("utf-8", "replace")
            )


def _ms(begin: float) -> float:
    return (time.monotonic() - begin) * 1000
