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
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from contracts.terms import rfc3339_utc
from policies.jobs import JobError, OpenDPNoise, combine, site_release
from policies.jobs.he import SiteNoise, site_noise
from sandbox.agent.bounding import Bounding
from sandbox.agent.config import FileAsset, PostgresAsset, SiteConfig
from sandbox.agent.fragments import AgentRunner, StopReason, StopSwitch
from sandbox.agent.held import HeldOutputs
from sandbox.agent.identity import load_identity
from sandbox.agent.ledger import LedgerRefused, SiteLedger
from sandbox.agent.postgres import (
    ExportFailed,
    PostgresExports,
    PushdownFailed,
    SandboxOwner,
    run_pushdown,
)
from sandbox.agent.projection import Projections
from sandbox.agent.python_run import PythonSite
from sandbox.agent.python_run import run as run_python
from sandbox.agent.reviews import outcome_of, settle
from sandbox.agent.sitelog import LOG_FILE, SiteLog, utc_now
from sandbox.agent.tickets import (
    Admitted,
    TicketRefused,
    admit,
    describe,
    pinned_keys,
    read_ticket,
)
from sandbox.inputs import InputStore, PendingInput
from sandbox.spec import (
    Bound,
    FailureReason,
    FragmentSpec,
    Limits,
    OutputValidationError,
    ResultTable,
    validate_table,
)
from sandbox.wire import (
    CANCELLED,
    REFUSED,
    AgentProof,
    AssetStatus,
    CancelOutcome,
    FragmentOutcome,
    FragmentRequest,
    HealthReport,
    HeldOutcome,
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
    """What a fragment id is bound to: the ticket, the input and the limits asked for."""
    limits = dataclasses.asdict(request.limits)
    body = json.dumps({"input": request.input_sha256, "limits": limits}, sort_keys=True)
    return hashlib.sha256(request.ticket + b"\0" + body.encode()).hexdigest()


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
        self.ledger = SiteLedger(config.state / "ledger.db")
        self.bounding = Bounding(self.ledger)
        self.held = HeldOutputs(config.state)
        self.python = PythonSite(
            inputs=self.inputs,
            held=self.held,
            projections=Projections(config.cache_dir / "projections", config.state),
            jobs_dir=config.cache_dir / "python-jobs",
            datasite=config.python.datasite,
            dependencies=frozenset(config.python.dependencies),
            ceiling=self._limits,
            clock=lambda: self.clock(),  # noqa: PLW0108 - tests replace self.clock
        )
        self._noise: OpenDPNoise | None = None
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
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
        """Prepare a sandbox for SQL fragments on every file asset whose bound is known
        (from earlier jobs): a fork server, or ``pool_size`` pre-started sandboxes."""
        if not self.config.pool_size and self.runner.fork_servers is None:
            return
        for asset_id, asset in self.config.assets.items():
            if isinstance(asset, FileAsset) and asset.path.is_file():
                try:
                    bound = self.bounding.known(asset_id, asset.path)
                    if bound is not None:
                        self.runner.warm("duckdb_sql", asset.path, limits=self._limits, bound=bound)
                except (ValueError, OSError):
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

    def fetch_outputs(self, fragment_id: str) -> HeldOutcome:
        """A Python fragment's held outputs: their state, and their files once released.

        A review the holder recorded at the site is verified against the pinned keys
        first (:func:`sandbox.agent.reviews.settle`); a decision is logged once.
        """
        if not FRAGMENT_ID.match(fragment_id):
            raise InvalidRequest("fragment_id must be 1-128 of [A-Za-z0-9._:-]")
        before = self.held.get(fragment_id)
        organisation = self.config.holder.organisation
        held = settle(self.held, fragment_id, organisation, pinned_keys(self.config), self.clock())
        if held is None:
            return HeldOutcome(fragment_id, "unknown")
        if before is not None and before.state != held.state:
            self.log.append(
                {
                    "at": rfc3339_utc(self.clock()),
                    "event": "review",
                    "fragment": fragment_id,
                    "job": held.job_id,
                    "asset": held.asset_id,
                    "decision": held.state,
                    "reviewer": held.reviewer,
                    "outputs_sha256": held.outputs_sha256,
                }
            )
        return outcome_of(self.held, held)

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
        self.ledger.close()
        self.held.close()
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
        warm: tuple[Path, Path, Bound | None] | None = None
        try:
            outcome, warm = self._run(execution, request)
        except Exception as exc:
            log.error("fragment %s: unexpected %s", request.fragment_id, type(exc).__name__)
            outcome = FragmentOutcome.failed(request.fragment_id, FailureReason.INTERNAL.value)
        stopped = execution.switch.finish()
        if stopped is not None:
            outcome = FragmentOutcome.failed(
                request.fragment_id, _code(stopped), outcome.elapsed_ms
            )
        self._complete(execution, outcome)
        if outcome.ok and warm is not None:
            self._warm_he(request, *warm)

    def _warm_he(
        self, request: FragmentRequest, asset: Path, directory: Path, bound: Bound | None
    ) -> None:
        """Keep a sandbox with this HE context already loaded for the next job using it."""
        if not self.config.pool_size:
            return
        try:
            limits = resolve_limits(self._limits, request)
            self.runner.warm("tenseal_he", asset, directory, limits, bound)
        except ValueError:
            log.debug("fragment %s: no sandbox kept for its HE context", request.fragment_id)

    def _record(
        self,
        fragment_id: str,
        ticket: Any,
        digest: str,
        decision: str,
        reason: str,
        **extra: Any,
    ) -> None:
        """Append a ticket's fate to the site's log (ids and digests only)."""
        job = getattr(ticket, "job", None)
        self.log.append(
            {
                "at": rfc3339_utc(self.clock()),
                "event": "ticket",
                "fragment": fragment_id,
                "job": getattr(job, "id", ""),
                "asset": getattr(ticket, "asset_id", ""),
                "kind": getattr(job, "kind", ""),
                "decision": decision,
                "reason": reason,
                "epsilon": float(getattr(job, "epsilon", 0.0)),
                "delta": float(getattr(job, "delta", 0.0)),
                "ticket_sha256": digest,
                **extra,
            }
        )

    def _admit(self, request: FragmentRequest) -> Admitted:
        """Verify, decide and charge the request's ticket; raises :class:`TicketRefused`."""
        digest = hashlib.sha256(request.ticket).hexdigest()
        ticket: Any = None
        try:
            ticket, digest = read_ticket(request.ticket)
            if ticket.fragment_id != request.fragment_id:
                raise TicketRefused("fragment_mismatch")
            now = self.clock()
            admitted = admit(ticket, digest, self.config, self.ledger, now)
            self.ledger.admit(
                ticket.fragment_id,
                digest,
                ticket.job.id,
                ticket.asset_id,
                admitted.charges,
                now=now,
                budget=admitted.budget,
            )
        except LedgerRefused as exc:
            self._record(request.fragment_id, ticket, digest, "refuse", exc.code)
            raise TicketRefused(exc.code) from None
        except TicketRefused as exc:
            log.info("fragment %s refused: %s %s", request.fragment_id, exc.code, exc.reasons)
            self._record(
                request.fragment_id, ticket, digest, "refuse", exc.code, reasons=list(exc.reasons)
            )
            raise
        self._record(request.fragment_id, ticket, digest, "accept", "ok", **describe(admitted))
        return admitted

    def _run(
        self, execution: Execution, request: FragmentRequest
    ) -> tuple[FragmentOutcome, tuple[Path, Path, Bound | None] | None]:
        fragment_id = request.fragment_id
        bad_input = FragmentOutcome.failed(fragment_id, FailureReason.BAD_INPUT.value)
        if execution.switch.reason is not None:
            return bad_input, None
        try:
            admitted = self._admit(request)
        except TicketRefused as exc:
            outcome = FragmentOutcome.failed(fragment_id, REFUSED, reasons=(exc.code, *exc.reasons))
            return outcome, None
        asset = self.config.assets[admitted.ticket.local_ref]
        if admitted.python is not None and isinstance(asset, PostgresAsset):
            return FragmentOutcome.failed(fragment_id, REFUSED, reasons=("python_postgres",)), None
        if (
            admitted.sql is not None
            and isinstance(asset, PostgresAsset)
            and asset.postgres.pushdown
        ):
            return self._release(admitted, self._pushdown(request, admitted, asset)), None
        if isinstance(asset, PostgresAsset):
            try:
                asset_path = self.exports.snapshot(admitted.ticket.local_ref, asset.postgres)
            except ExportFailed as exc:
                log.warning(
                    "fragment %s: asset %s: %s", fragment_id, admitted.ticket.local_ref, exc
                )
                return FragmentOutcome.failed(fragment_id, FailureReason.INTERNAL.value), None
        else:
            asset_path = asset.path
        if admitted.python is not None:
            assert isinstance(asset, FileAsset)
            outcome = run_python(
                self.python,
                admitted,
                fragment_id,
                request.input_sha256,
                asset_path,
                asset.resolved_format,
                lambda spec: self.runner.run_stoppable(spec, execution.switch, fragment_id),
            )
            return outcome, None
        input_dir: Path | None = None
        if request.input_sha256:
            input_dir = self.inputs.directory(request.input_sha256)
            if input_dir is None:
                log.debug("fragment %s: input not stored", fragment_id)
                return bad_input, None
        try:
            limits = resolve_limits(self._limits, request)
        except ValueError:
            return bad_input, None
        executor, program, noise = self._program(admitted)
        # SQL and HE fragments read the same bounded view: which of a person's rows count
        # is fixed per asset version, whatever the job's kind or filter
        bounded = admitted.sql if admitted.sql is not None else admitted.he
        bound = None
        if bounded is not None:
            try:
                bound = self.bounding.bound(
                    admitted.ticket.local_ref, asset_path, bounded.unit, bounded.max_rows_per_unit
                )
            except OSError:
                return bad_input, None
        spec = FragmentSpec(executor, program, asset_path, input_dir, limits, bound)
        result = self.runner.run_stoppable(spec, execution.switch, fragment_id)
        if not result.ok or result.table is None:
            failure = (result.failure or FailureReason.INTERNAL).value
            return FragmentOutcome.failed(fragment_id, failure, result.elapsed_ms), None
        outcome = FragmentOutcome(fragment_id, True, result.table, elapsed_ms=result.elapsed_ms)
        if noise is not None:  # an HE step: noised before it was encrypted
            release = {"he": {"charges": noise.charges}}
            outcome = dataclasses.replace(outcome, release=json.dumps(release))
            warm = (asset_path, input_dir, bound) if input_dir is not None else None
            return outcome, warm
        if admitted.test_program is not None:
            return outcome, None
        return self._release(admitted, outcome), None

    def _program(self, admitted: Admitted) -> tuple[str, str, SiteNoise | None]:
        """(executor, program, HE noise) the site derived itself from the ticket's job."""
        if admitted.sql is not None:
            return "duckdb_sql", admitted.sql.bounded_sql, None
        if admitted.test_program is not None:
            return "python_test", admitted.test_program, None
        assert admitted.he is not None
        noise = site_noise(admitted.he, self.noise)
        program = {**admitted.he.site_program(), "noise": noise.program}
        program.update(admitted.attachments or {})
        return "tenseal_he", json.dumps(program), noise

    @property
    def noise(self) -> OpenDPNoise:
        if self._noise is None:
            self._noise = OpenDPNoise()
        return self._noise

    def _release(self, admitted: Admitted, outcome: FragmentOutcome) -> FragmentOutcome:
        """Key and noise a SQL fragment's exact partials before they leave the site."""
        if not outcome.ok or outcome.table is None:
            return outcome
        plan = admitted.sql
        assert plan is not None
        table = outcome.table
        rows = [dict(zip(table.columns, row, strict=True)) for row in table.rows]
        try:
            groups = combine(plan, [rows])
            released = site_release(plan, groups, admitted.params, noise=self.noise)
        except (JobError, ValueError) as exc:
            log.info("fragment %s: release refused: %s", outcome.fragment_id, type(exc).__name__)
            return FragmentOutcome.failed(
                outcome.fragment_id, FailureReason.INTERNAL.value, outcome.elapsed_ms
            )
        columns, noisy_rows, meta = released.to_wire(plan)
        noisy = ResultTable(
            columns=tuple(columns),
            types=tuple("DOUBLE" for _ in columns),
            rows=tuple(tuple(row) for row in noisy_rows),
        )
        return dataclasses.replace(outcome, table=noisy, release=json.dumps(meta))

    def _pushdown(
        self, request: FragmentRequest, admitted: Admitted, asset: PostgresAsset
    ) -> FragmentOutcome:
        """Run the site's own fragment inside the holder's PostgreSQL (read-only, time-limited)."""
        fragment_id = request.fragment_id
        assert admitted.sql is not None
        try:
            program = admitted.sql.pushdown_sql("asset")
        except (JobError, ValueError):
            return FragmentOutcome.failed(fragment_id, FailureReason.BAD_INPUT.value)
        begin = time.monotonic()
        wall = request.limits.wall_seconds or self._limits.wall_seconds
        try:
            columns, types, rows = run_pushdown(asset.postgres, os.environ, program, wall)
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
