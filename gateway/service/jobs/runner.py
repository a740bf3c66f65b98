"""The job runner: takes queued jobs from the store, runs each kind's fragments at the
sites, combines, and charges and releases in one transaction.

The runner never branches on a job's kind: it decides the job again, asks the kind for
its site steps, fans them out (uploading any input a site needs first), waits or cancels,
asks the kind to combine the answers, and releases.  Nothing is charged without a release
and nothing released without a charge: the charge, the result and the ``job.release``
trace entry commit together.

A runner holds a short lease on each job it runs and renews it from a heartbeat thread
while the job runs. A job whose runner died (its heartbeat stopped) is queued again as
soon as its lease lapses, by whichever runner polls next (no budget was spent), or, after
``max_attempts``, failed; a long job whose runner is alive keeps its lease.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any

from contracts.tickets import encode_ticket
from gateway.domain import Actor, Asset, Job, JobState, Role, Site
from gateway.errors import BlindgateError, InvalidState
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.ledger import Ledger
from gateway.service.jobs.decide import JobDecider
from gateway.service.jobs.kind import FailureCode, JobFailed, JobHeld, SiteResult, SiteStep
from gateway.service.jobs.leases import LeaseKeeper
from gateway.service.jobs.review import HeldJobs
from gateway.service.jobs.service import JobService
from gateway.service.jobs.support import covering_licences
from gateway.service.jobs.tickets import fragment_id, ticket_for
from gateway.service.trace.service import AuditService
from gateway.siteclient.pool import SitePool
from gateway.store import Tx
from sandbox.wire import FragmentOutcome, FragmentRequest

log = logging.getLogger(__name__)

_CODES = frozenset(code.value for code in FailureCode)
StageObserver = Callable[[str, float], None]
"""Told the name and duration (seconds) of each stage of each job the runner runs."""


RECOVER_SECONDS = 1.0
"""How often each worker looks for jobs whose lease expired (a dead gateway's jobs) and
approval windows that passed."""


class JobRunner(HeldJobs):
    """One runner per gateway process; several may share one PostgreSQL."""

    def __init__(
        self,
        ctx: ServiceContext,
        tracer: Tracer,
        jobs: JobService,
        ledger: Ledger,
        audit: AuditService,
        pool: SitePool,
        *,
        owner: str,
        lease_seconds: float = 10.0,
        heartbeat_seconds: float | None = None,
        poll_seconds: float = 0.5,
        fragment_timeout: float = 120.0,
        max_attempts: int = 3,
        concurrency: int = 4,
        observe: StageObserver | None = None,
        review_seconds: float = 5.0,
    ) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.jobs = jobs
        self.decider: JobDecider = jobs.decider
        self.ledger = ledger
        self.audit = audit
        self.pool = pool
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.recover_every = min(RECOVER_SECONDS, lease_seconds / 4)
        """Seconds between each worker's looks for expired leases and approval windows."""
        self.poll = poll_seconds
        self.fragment_timeout = fragment_timeout
        self.max_attempts = max_attempts
        self.observe = observe
        """Told each stage's duration (for benchmarks and metrics); ``None`` for none."""
        self.review_seconds = review_seconds
        """How often the sites are asked about jobs whose results they hold for review."""
        self._reviewed_at = 0.0
        self._review_lock = threading.Lock()
        self._stop = threading.Event()
        self.leases = LeaseKeeper(
            ctx,
            owner,
            self.lease,
            heartbeat_seconds if heartbeat_seconds is not None else lease_seconds / 4,
        )
        self._threads = [
            threading.Thread(target=self._loop, name=f"job-runner-{n}", daemon=True)
            for n in range(max(1, concurrency))
        ]
        self._fanout = ThreadPoolExecutor(
            max_workers=8 * max(1, concurrency), thread_name_prefix="fragments"
        )

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start ``concurrency`` workers (each claims and runs one job at a time) and the
        heartbeat that renews their leases."""
        self.leases.start()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.jobs.wakeup.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        self.leases.stop()
        self._fanout.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        recovered = 0.0
        while not self._stop.is_set():
            try:
                # Expired leases and approval windows are looked for at most every
                # recover_every seconds per worker, not before every claim under load.
                due = time.monotonic() - recovered >= self.recover_every
                if due:
                    recovered = time.monotonic()
                worked = self.run_once(recover=due)
            except Exception as exc:  # keep serving the queue
                log.error("job runner error: %s", type(exc).__name__)
                worked = False
            if not worked and not self._stop.is_set() and self.jobs.wakeup.wait(self.poll):
                self.jobs.wakeup.clear()

    # queue -------------------------------------------------------------------------------
    def recover(self) -> int:
        """Requeue (or fail) jobs whose runner's lease expired, and deny jobs whose approval
        window passed; return how many changed."""
        now = self.ctx.clock.now()
        with self.ctx.store.read() as tx:
            if not tx.expired_running_jobs(now) and not tx.expired_approval_jobs(now):
                return 0  # nothing to do: no write transaction

        def unit(tx: Tx) -> int:
            moved = 0
            for job in tx.expired_approval_jobs(now):
                moved += int(
                    tx.update_job(
                        job.id,
                        [JobState.PENDING_APPROVAL],
                        state=JobState.DENIED,
                        error_code=FailureCode.APPROVAL_EXPIRED,
                        updated_at=now,
                    )
                )
            for job in tx.expired_running_jobs(now):
                if job.attempts >= self.max_attempts:
                    done = tx.update_job(
                        job.id,
                        [JobState.RUNNING],
                        state=JobState.FAILED,
                        error_code=FailureCode.TIMEOUT,
                        lease_owner=None,
                        lease_until=None,
                        updated_at=now,
                    )
                else:
                    done = tx.update_job(
                        job.id,
                        [JobState.RUNNING],
                        state=JobState.QUEUED,
                        lease_owner=None,
                        lease_until=None,
                        updated_at=now,
                    )
                moved += int(done)
            return moved

        return self.ctx.store.transact(unit)

    def run_once(self, *, recover: bool = True) -> bool:
        """Recover expired leases (unless ``recover`` is false), ask the sites about held
        results now and then, then run the oldest queued job; whether one ran."""
        if recover:
            with self._stage("recover expired leases"):
                self.recover()
        if time.monotonic() - self._reviewed_at >= self.review_seconds:
            self.review_held()
        now = self.ctx.clock.now()
        job = self.ctx.store.transact(
            lambda tx: tx.claim_next_job(self.owner, now, now + self.lease)
        )
        if job is None:
            return False
        self.execute(job)
        return True

    # one job -----------------------------------------------------------------------------
    def execute(self, job: Job) -> None:
        """Run one claimed job to its release or its failure."""
        actor = Actor(job.principal_id, job.operator_org_id, Role.OPERATOR)
        with self.leases.holding(job.id):
            try:
                self._execute(job, actor)
            except JobHeld as held:
                self._hold(job, actor, held.detail)
            except JobFailed as failed:
                self._fail(job, actor, failed.code, failed.reasons)
            except BlindgateError as exc:
                self._fail(job, actor, exc.code)
            except Exception as exc:
                log.error("job %s failed: %s", job.id, type(exc).__name__)
                self._fail(job, actor, FailureCode.INTERNAL)

    def _execute(self, job: Job, actor: Actor) -> None:
        started = time.monotonic()
        if self.observe is not None:
            waited = (self.ctx.clock.now() - job.created_at).total_seconds()
            self.observe("queue wait (committed -> claimed)", waited)
        kind = self.decider.kind(job.kind)
        with self._stage("decide again"):
            precheck = kind.precheck(job.spec)
            with self.ctx.store.read() as tx:
                # Decided again now: a revoked or expired licence, a frozen asset or a spent
                # budget stops the job before anything runs.
                decided = self.decider.decide(tx, actor, job, precheck)
                assets: list[Asset] = [a for a in (tx.get_asset(i) for i in job.asset_ids) if a]
                sites: dict[str, Site | None] = {a.id: tx.get_site(a.site_id) for a in assets}
                cover = covering_licences(tx, job)
        if not decided.allowed:
            reasons = [{"code": r.code, "clause": r.clause} for r in decided.decision.reasons]
            raise JobFailed(FailureCode.POLICY_DENIED, reasons)
        if [a for a in job.asset_ids if a not in cover]:
            raise JobFailed(FailureCode.LICENCE_NOT_COVERING)
        steps = kind.site_steps(job, decided.plan, assets)
        now = self.ctx.clock.now()
        with self.ctx.store.read() as tx:
            requests = [
                FragmentRequest(
                    fragment_id=fragment_id(job, step.asset),
                    ticket=encode_ticket(ticket_for(tx, job, step, now)),
                    deadline_ms=int(self.fragment_timeout * 1000),
                    input_sha256=step.input_sha256,
                )
                for step in steps
            ]
        with self._stage("fragments, fan-out to last answer"):
            results = self._run_steps(job, list(zip(steps, requests, strict=True)), sites)
        with self._stage("combine and noise"):
            result = kind.combine(job, decided.plan, results)
        compute = sum(r.elapsed_ms for r in results) / 1000
        with self._stage("release, all (transaction, receipt, store it)"):
            self._release(job, actor, result, cover, compute, time.monotonic() - started)
        if self.observe is not None:
            self.observe("execute (claimed -> released)", time.monotonic() - started)

    def _run_steps(
        self,
        job: Job,
        steps: list[tuple[SiteStep, FragmentRequest]],
        sites: dict[str, Site | None],
    ) -> list[SiteResult]:
        """Run every site's fragment (after its upload, if any); all must succeed."""
        futures: list[Future[FragmentOutcome]] = []
        clients: list[tuple[Any, str]] = []
        for step, request in steps:
            site = sites.get(step.asset.id)
            if site is None:
                raise JobFailed(FailureCode.SITE_MISSING)
            client = self.pool.client(site)
            clients.append((client, request.fragment_id))
            futures.append(self._fanout.submit(self._site_step, client, step, request))
        self._wait_or_cancel(job, futures, clients)
        results = []
        for (step, _), future in zip(steps, futures, strict=True):
            outcome = future.result()
            if not outcome.ok or outcome.table is None:
                reasons = [{"code": code} for code in outcome.reasons]
                raise JobFailed(FailureCode.of_fragment(outcome.failure), reasons)
            results.append(SiteResult(step, outcome.table, outcome.elapsed_ms, outcome.release))
        return results

    def _site_step(self, client: Any, step: SiteStep, request: FragmentRequest) -> FragmentOutcome:
        if step.upload is not None:
            with self._stage("input upload (gRPC, per site)"):
                client.upload_input(
                    step.upload, timeout=self.fragment_timeout, digest=step.input_sha256
                )
        with self._stage("fragment round trip (gRPC, per site)"):
            outcome: FragmentOutcome = client.run_fragment(request, self.fragment_timeout + 10)
        if self.observe is not None:
            self.observe("fragment in the site's sandbox (per site)", outcome.elapsed_ms / 1000)
        return outcome

    def _wait_or_cancel(
        self, job: Job, futures: list[Future[Any]], clients: list[tuple[Any, str]]
    ) -> None:
        """Wait for the fragments; if the job is cancelled meanwhile, cancel them at the sites."""
        pending = set(futures)
        while pending:
            _done, pending = wait(pending, timeout=0.5)
            if not pending:
                return
            with self.ctx.store.read() as tx:
                current = tx.get_job(job.id)
            if current is None or current.state != JobState.RUNNING:
                for client, fragment_id in clients:
                    try:
                        client.cancel(fragment_id, timeout=5)
                    except Exception as exc:  # the site may be gone; the job is over anyway
                        log.warning("cancel of %s failed: %s", fragment_id, type(exc).__name__)
                raise JobFailed(FailureCode.CANCELLED)

    @contextlib.contextmanager
    def _stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            if self.observe is not None:
                self.observe(name, time.perf_counter() - began)

    def _release(
        self,
        job: Job,
        actor: Actor,
        result: dict[str, Any],
        cover: dict[str, str],
        compute: float,
        wall: float,
        expected: JobState = JobState.RUNNING,
    ) -> None:
        owner = self.owner if expected == JobState.RUNNING else None

        def work(tx: Tx, note: Note) -> None:
            note.target.update(job=job.id, assets=job.asset_ids)
            holders = tx.job_holders(job.id)
            note.subject_org = next(iter(holders.values()), None)
            epsilon, delta = spent(job, result)
            for asset_id, licence_id in cover.items():
                self.ledger.charge_in(tx, licence_id, [asset_id], epsilon, delta, job.id)
            now = self.ctx.clock.now()
            if not tx.update_job(
                job.id,
                [expected],
                lease_owner=owner,
                state=JobState.SUCCEEDED,
                result=result,
                compute_seconds=compute,
                lease_until=None,
                updated_at=now,
            ):
                raise InvalidState("the job was cancelled or taken over before release")
            tx.mark_charges(job.id, released=True)
            for asset_id in job.asset_ids:
                asset = tx.get_asset(asset_id)
                if asset is not None:
                    tx.update_asset(
                        dataclasses.replace(
                            asset,
                            jobs_run=asset.jobs_run + 1,
                            last_access=now,
                            operators=tuple(sorted({*asset.operators, job.operator_org_id})),
                        ),
                        expected_version=asset.version,
                    )
            note.result = result
            note.detail = {
                "epsilon_spent": result["epsilon_spent"],
                "rows": len(result["rows"]),
                "compute_seconds": round(compute, 3),
                "wall_seconds": round(wall, 3),
                **({"digests": result["digests"]} if "digests" in result else {}),
            }

        with self._stage("release transaction (charge, result, trace)"):
            _, pending = self.tracer.write(actor, "job.release", work)
        epsilon, delta = spent(job, result)
        charged = [(asset_id, epsilon, delta) for asset_id in cover]
        self.ledger.metrics.released(job.kind, job.operator_org_id, charged, result, wall)
        with self._stage("receipt (inclusion proof, signature)"):
            receipt = self.audit.receipt(pending).model_dump()
        self.ctx.store.transact(
            lambda tx: tx.update_job(job.id, [JobState.SUCCEEDED], receipt=receipt)
        )
        self.jobs.completions.finished(job.id)

    def _fail(
        self,
        job: Job,
        actor: Actor,
        code: str,
        reasons: list[dict[str, Any]] | None = None,
        expected: JobState = JobState.RUNNING,
    ) -> None:
        owner = self.owner if expected == JobState.RUNNING else None

        def work(tx: Tx, note: Note) -> None:
            note.target["job"] = job.id
            note.subject_org = next(iter(tx.job_holders(job.id).values()), None)
            note.decision = "deny"
            note.reasons = [{"code": code, "clause": "job"}, *(reasons or [])]
            if code in _CODES and FailureCode(code).charged:
                # The sites ran on the data: the job is charged as if it had been released.
                for asset_id, licence_id in covering_licences(tx, job).items():
                    self.ledger.record_in(tx, licence_id, asset_id, job.epsilon, job.delta, job.id)
                tx.mark_charges(job.id, released=True)
                note.detail = {"epsilon_charged": job.epsilon, "delta_charged": job.delta}
            tx.update_job(
                job.id,
                [expected],
                lease_owner=owner,
                result={"failure_reasons": reasons} if reasons else None,
                state=JobState.FAILED,
                error_code=code,
                lease_until=None,
                updated_at=self.ctx.clock.now(),
            )

        try:
            self.tracer.write(actor, "job.fail", work)
        except BlindgateError:
            log.error("could not record the failure of job %s", job.id)
        self.jobs.completions.finished(job.id)
        if code != FailureCode.CANCELLED:
            self.ledger.metrics.finished(job.kind, "failed", code)
        if code in _CODES and FailureCode(code).charged:
            self.ledger.metrics.charged([(a, job.epsilon, job.delta) for a in job.asset_ids])
        self.pool.metrics.violation("gateway", code)


def spent(job: Job, result: dict[str, Any]) -> tuple[float, float]:
    """What a release charges: the job's ε and δ, or what it spent when that is less (a
    suppressed ``he_linear`` spends only the ε of its count of people)."""
    epsilon = float(result.get("epsilon_spent", job.epsilon))
    delta = float(result.get("delta_spent", job.delta))
    epsilon = job.epsilon if epsilon >= job.epsilon * (1 - 1e-6) else max(epsilon, 0.0)
    delta = job.delta if delta >= job.delta * (1 - 1e-6) else max(delta, 0.0)
    return epsilon, delta


def make_runner(services: Any, owner: str, observe: StageObserver | None = None) -> JobRunner:
    """A runner over ``services`` (a :class:`gateway.service.Services`)."""
    return JobRunner(
        services.ctx,
        services.tracer,
        services.jobs,
        services.ledger,
        services.audit,
        services.site_pool,
        owner=owner,
        lease_seconds=services.ctx.settings.job_lease_seconds,
        observe=observe,
    )
