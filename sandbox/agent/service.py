"""The site agent's use cases, independent of the transport.

:class:`AgentService` runs fragments on a bounded worker pool with the sandbox
runner, keeps every fragment's outcome by ``fragment_id`` (a repeated id returns
the stored outcome, or waits for the running one, instead of running again),
stops fragments on ``Cancel`` or at their deadline, stores uploaded inputs, and
reports health.  At start-up it checks the agent's identity and endorsement
(:mod:`sandbox.agent.identity`) and opens the site's own log (``self.log``,
:mod:`sandbox.agent.sitelog`), where it records its start and every ``Prove``.  The gRPC
server (:mod:`sandbox.agent.server`) is a thin shell over it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from sandbox.agent.config import FileAsset, PostgresAsset, SiteConfig
from sandbox.agent.fragments import AgentRunner, StopReason, StopSwitch
from sandbox.agent.identity import load_identity
from sandbox.agent.postgres import (
    ExportFailed,
    PostgresExports,
    PushdownFailed,
    SandboxOwner,
    run_pushdown,
)
from sandbox.agent.sitelog import LOG_FILE, SiteLog, utc_now
from sandbox.inputs import InputStore, PendingInput
from sandbox.spec import (
    FailureReason,
    FragmentSpec,
    Limits,
    OutputValidationError,
    validate_table,
)
from sandbox.wire import (
    CANCELLED,
    AgentProof,
    AssetStatus,
    CancelOutcome,
    FragmentOutcome,
    FragmentRequest,
    HealthReport,
)

log = logging.getLogger(__name__)

FRAGMENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_DEADLINE_MS = 24 * 3600 * 1000
_WAIT_SLICE = 0.25


class AgentError(Exception):
    """A refused call (not a fragment failure); ``status`` names the gRPC status."""

    status = "INTERNAL"


class InvalidRequest(AgentError):
    status = "INVALID_ARGUMENT"


class FragmentIdReused(AgentError):
    status = "ALREADY_EXISTS"


class Busy(AgentError):
    status = "RESOURCE_EXHAUSTED"


class WaitAbandoned(AgentError):
    """The caller stopped waiting (deadline passed or call cancelled); the fragment goes on."""

    status = "DEADLINE_EXCEEDED"


def agent_version() -> str:
    """The installed Blindgate version."""
    try:
        return metadata.version("blindgate")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def request_digest(request: FragmentRequest) -> str:
    """What a fragment id is bound to: everything but the id and the deadline."""
    body = dataclasses.asdict(request)
    body.pop("fragment_id")
    body.pop("deadline_ms")
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def resolve_limits(ceiling: Limits, request: FragmentRequest) -> Limits:
    """The requested limits, with 0 meaning the site's and nothing above the site's."""
    asked = request.limits
    if not math.isfinite(asked.wall_seconds) or asked.wall_seconds < 0:
        raise ValueError("wall_seconds must be finite and not negative")

    def pick(value: float, limit: float) -> float:
        return limit if not value else min(value, limit)

    return dataclasses.replace(
        ceiling,
        memory_bytes=int(pick(asked.memory_bytes, ceiling.memory_bytes)),
        cpu_seconds=int(pick(asked.cpu_seconds, ceiling.cpu_seconds)),
        wall_seconds=pick(asked.wall_seconds, ceiling.wall_seconds),
        output_bytes=int(pick(asked.output_bytes, ceiling.output_bytes)),
        threads=int(pick(asked.threads, ceiling.threads)),
    )


def _outcome_size(outcome: FragmentOutcome) -> int:
    if outcome.table is None:
        return 128
    cells = sum(len(str(cell)) + 8 for row in outcome.table.rows for cell in row)
    return 128 + cells + sum(len(name) + 8 for name in outcome.table.columns)


@dataclass(eq=False)
class Execution:
    """One fragment id: running, queued or finished."""

    fragment_id: str
    digest: str | None
    switch: StopSwitch = field(default_factory=StopSwitch)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: FragmentOutcome | None = None
    future: Future[None] | None = None
    timer: threading.Timer | None = None
    size: int = 0


class AgentService:
    """Fragments, inputs and health for one site; thread-safe."""

    def __init__(self, config: SiteConfig, runner: AgentRunner) -> None:
        self.config = config
        self.runner = runner
        self.identity = load_identity(config)
        self.inputs = InputStore(
            config.cache_dir / "inputs", config.max_input_bytes, config.max_cache_bytes
        )
        self.exports = PostgresExports(config.cache_dir / "exports", _snapshot_owner(runner))
        self._limits = config.limits.to_limits()
        self._lock = threading.Lock()
        self._executions: OrderedDict[str, Execution] = OrderedDict()
        self._active = 0
        self._stored_bytes = 0
        self._capacity = config.max_concurrent_fragments + config.max_queued_fragments
        self._workers = ThreadPoolExecutor(
            max_workers=config.max_concurrent_fragments, thread_name_prefix="fragment"
        )
        self._uploads = threading.BoundedSemaphore(config.max_concurrent_uploads)
        self._closed = False
        self.log = SiteLog.open(config.state / LOG_FILE, self.identity.private_key)
        self.log.append(
            {
                "at": utc_now(),
                "event": "start",
                "agent_key": self.identity.public_key,
                "organisation": self.identity.organisation,
                "assets": sorted(config.assets),
                "version": agent_version(),
            }
        )

    def warm(self) -> None:
        """Pre-start sandboxes for plain SQL fragments on every file asset."""
        if not self.config.pool_size:
            return
        for asset_id, asset in self.config.assets.items():
            if isinstance(asset, FileAsset) and asset.path.is_file():
                try:
                    self.runner.warm("duckdb_sql", asset.path, limits=self._limits)
                except ValueError:
                    log.warning("could not pre-start sandboxes for asset %s", asset_id)

    def health(self) -> HealthReport:
        """Version, isolation layers and the assets served."""
        report = self.runner.isolation_report()
        assets = tuple(
            AssetStatus(
                id=asset_id,
                kind=asset.kind,
                format=asset.resolved_format,
                ready=asset.path.is_file()
                if isinstance(asset, FileAsset)
                else self.exports.configured(asset.postgres),
            )
            for asset_id, asset in sorted(self.config.assets.items())
        )
        return HealthReport(
            agent_version=agent_version(),
            isolation_level=report.level.value,
            isolation_backend=report.backend,
            layers=dict(report.layers),
            assets=assets,
            executors=tuple(sorted(self.runner.executors())),
        )

    def submit(self, request: FragmentRequest) -> tuple[Execution, bool]:
        """Start ``request``, or find the execution its fragment id already has.

        Returns the execution and whether this call created it.
        """
        if not FRAGMENT_ID.match(request.fragment_id):
            raise InvalidRequest("fragment_id must be 1-128 of [A-Za-z0-9._:-]")
        if request.deadline_ms > MAX_DEADLINE_MS:
            raise InvalidRequest("deadline_ms is too large")
        digest = request_digest(request)
        with self._lock:
            if self._closed:
                raise Busy("the agent is shutting down")
            found = self._executions.get(request.fragment_id)
            if found is not None:
                if found.digest not in (None, digest):
                    raise FragmentIdReused("fragment_id was used for a different fragment")
                self._executions.move_to_end(request.fragment_id)
                return found, False
            if self._active >= self._capacity:
                raise Busy("too many fragments")
            execution = Execution(request.fragment_id, digest)
            self._executions[request.fragment_id] = execution
            self._active += 1
            if request.deadline_ms:
                execution.timer = threading.Timer(
                    request.deadline_ms / 1000, self._stop, (execution, StopReason.DEADLINE)
                )
                execution.timer.daemon = True
                execution.timer.start()
            execution.future = self._workers.submit(self._execute, execution, request)
        return execution, True

    def wait(
        self,
        execution: Execution,
        timeout: float | None,
        active: Callable[[], bool] = lambda: True,
    ) -> FragmentOutcome:
        """The execution's outcome, waiting at most ``timeout`` seconds while ``active()``."""
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = _WAIT_SLICE if end is None else min(_WAIT_SLICE, end - time.monotonic())
            if remaining <= 0 or not active():
                raise WaitAbandoned("the caller stopped waiting")
            if execution.done.wait(remaining):
                assert execution.outcome is not None
                return execution.outcome

    def run(
        self,
        request: FragmentRequest,
        timeout: float | None = None,
        active: Callable[[], bool] = lambda: True,
    ) -> FragmentOutcome:
        """Submit and wait; an earlier request's outcome is marked ``replayed``."""
        execution, created = self.submit(request)
        outcome = self.wait(execution, timeout, active)
        return outcome if created else dataclasses.replace(outcome, replayed=True)

    def cancel(self, fragment_id: str) -> CancelOutcome:
        """Stop a fragment; an id not seen yet is recorded so that it never runs."""
        if not FRAGMENT_ID.match(fragment_id):
            raise InvalidRequest("fragment_id must be 1-128 of [A-Za-z0-9._:-]")
        with self._lock:
            execution = self._executions.get(fragment_id)
            if execution is None:
                tombstone = Execution(fragment_id, None)
                self._executions[fragment_id] = tombstone
                self._active += 1
        if execution is None:
            tombstone.switch.finish()
            self._complete(tombstone, FragmentOutcome.failed(fragment_id, CANCELLED))
            return CancelOutcome.NOT_STARTED
        if self._stop(execution, StopReason.CANCELLED):
            return CancelOutcome.STOPPED
        return CancelOutcome.ALREADY_FINISHED

    def prove(self, challenge: bytes) -> AgentProof:
        """Answer the gateway's challenge with this agent's key and endorsement (logged)."""
        try:
            proof = self.identity.prove(challenge)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        self.log.append(
            {
                "at": utc_now(),
                "event": "prove",
                "challenge_sha256": hashlib.sha256(challenge).hexdigest(),
                "tls_fingerprint": proof.tls_fingerprint,
            }
        )
        return proof

    @contextlib.contextmanager
    def upload(self, total_size: int, sha256: str) -> Iterator[PendingInput]:
        """Receive one input (at most ``max_concurrent_uploads`` at a time)."""
        if not self._uploads.acquire(blocking=False):
            raise Busy("too many uploads")
        try:
            with self.inputs.begin(total_size, sha256) as pending:
                yield pending
        finally:
            self._uploads.release()

    def close(self) -> None:
        """Stop every fragment and the worker pool, then the runner."""
        with self._lock:
            self._closed = True
            running = list(self._executions.values())
        for execution in running:
            self._stop(execution, StopReason.CANCELLED)
        self._workers.shutdown(wait=True, cancel_futures=True)
        self.runner.close()
        self.exports.clear()
        self.log.close()

    def _stop(self, execution: Execution, reason: StopReason) -> bool:
        if not execution.switch.stop(reason):
            return False
        future = execution.future
        if future is not None and future.cancel():
            execution.switch.finish()
            self._complete(execution, FragmentOutcome.failed(execution.fragment_id, _code(reason)))
        return True

    def _execute(self, execution: Execution, request: FragmentRequest) -> None:
        try:
            outcome = self._run(execution, request)
        except Exception as exc:
            log.error("fragment %s: unexpected %s", request.fragment_id, type(exc).__name__)
            outcome = FragmentOutcome.failed(request.fragment_id, FailureReason.INTERNAL.value)
        stopped = execution.switch.finish()
        if stopped is not None:
            outcome = FragmentOutcome.failed(
                request.fragment_id, _code(stopped), outcome.elapsed_ms
            )
        self._complete(execution, outcome)
        if outcome.ok and request.executor == "tenseal_he":
            self._warm_he(request)

    def _warm_he(self, request: FragmentRequest) -> None:
        """Keep a sandbox with this HE context already loaded for the next job using it."""
        asset = self.config.assets.get(request.asset_id)
        directory = self.inputs.directory(request.input_sha256)
        if not self.config.pool_size or not isinstance(asset, FileAsset) or directory is None:
            return
        try:
            limits = resolve_limits(self._limits, request)
            self.runner.warm("tenseal_he", asset.path, directory, limits)
        except ValueError:
            log.debug("fragment %s: no sandbox kept for its HE context", request.fragment_id)

    def _run(self, execution: Execution, request: FragmentRequest) -> FragmentOutcome:
        fragment_id = request.fragment_id
        bad_input = FragmentOutcome.failed(fragment_id, FailureReason.BAD_INPUT.value)
        if execution.switch.reason is not None:
            return bad_input
        asset = self.config.assets.get(request.asset_id)
        if asset is None:
            log.debug("fragment %s: unknown asset", fragment_id)
            return bad_input
        if isinstance(asset, PostgresAsset) and asset.postgres.pushdown:
            return self._pushdown(request, asset)
        if isinstance(asset, PostgresAsset):
            try:
                asset_path = self.exports.snapshot(request.asset_id, asset.postgres)
            except ExportFailed as exc:
                log.warning("fragment %s: asset %s: %s", fragment_id, request.asset_id, exc)
                return FragmentOutcome.failed(fragment_id, FailureReason.INTERNAL.value)
        else:
            asset_path = asset.path
        input_dir: Path | None = None
        if request.input_sha256:
            input_dir = self.inputs.directory(request.input_sha256)
            if input_dir is None:
                log.debug("fragment %s: input not stored", fragment_id)
                return bad_input
        try:
            limits = resolve_limits(self._limits, request)
        except ValueError:
            return bad_input
        spec = FragmentSpec(request.executor, request.program, asset_path, input_dir, limits)
        result = self.runner.run_stoppable(spec, execution.switch, fragment_id)
        if result.ok:
            return FragmentOutcome(fragment_id, True, result.table, elapsed_ms=result.elapsed_ms)
        failure = (result.failure or FailureReason.INTERNAL).value
        return FragmentOutcome.failed(fragment_id, failure, result.elapsed_ms)

    def _pushdown(self, request: FragmentRequest, asset: PostgresAsset) -> FragmentOutcome:
        """Run the fragment inside the holder's PostgreSQL (read-only, time-limited)."""
        fragment_id = request.fragment_id
        if not request.pushdown_program or request.executor != "duckdb_sql":
            return FragmentOutcome.failed(fragment_id, FailureReason.BAD_INPUT.value)
        begin = time.monotonic()
        wall = request.limits.wall_seconds or self._limits.wall_seconds
        try:
            columns, types, rows = run_pushdown(
                asset.postgres, os.environ, request.pushdown_program, wall
            )
        except PushdownFailed as exc:
            elapsed = (time.monotonic() - begin) * 1000
            return FragmentOutcome.failed(fragment_id, exc.code, elapsed)
        document: dict[str, object] = {
            "ok": True,
            "columns": list(columns),
            "types": list(types),
            "rows": [list(r) for r in rows],
        }
        elapsed = (time.monotonic() - begin) * 1000
        try:
            table = validate_table(document)
        except OutputValidationError:
            return FragmentOutcome.failed(fragment_id, FailureReason.INTERNAL.value, elapsed)
        return FragmentOutcome(fragment_id, True, table, elapsed_ms=elapsed)

    def _complete(self, execution: Execution, outcome: FragmentOutcome) -> None:
        if execution.timer is not None:
            execution.timer.cancel()
        size = _outcome_size(outcome)
        with self._lock:
            execution.outcome = outcome
            execution.size = size
            self._active -= 1
            if self._executions.get(execution.fragment_id) is execution:
                self._executions.move_to_end(execution.fragment_id)
            self._stored_bytes += size
            self._evict()
        execution.done.set()

    def _evict(self) -> None:
        """Drop the oldest finished outcomes beyond the entry and byte bounds (lock held)."""
        entries = self.config.result_cache_entries
        budget = self.config.result_cache_bytes
        over = len(self._executions) - entries
        if over <= 0 and self._stored_bytes <= budget:
            return
        for fragment_id, execution in list(self._executions.items()):
            if over <= 0 and self._stored_bytes <= budget:
                break
            if execution.outcome is None or len(self._executions) == 1:
                continue
            del self._executions[fragment_id]
            self._stored_bytes -= execution.size
            over -= 1


def _snapshot_owner(runner: AgentRunner) -> SandboxOwner:
    """Who must read PostgreSQL snapshots: the sandbox uid when it is a separate host uid."""
    report = runner.isolation_report()
    if report.layers.get("separate_uid"):
        return SandboxOwner(runner.config.sandbox_uid, runner.config.sandbox_gid)
    return SandboxOwner()


def _code(reason: StopReason) -> str:
    return CANCELLED if reason == StopReason.CANCELLED else FailureReason.TIMEOUT.value
