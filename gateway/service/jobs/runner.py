"""The job runner: takes queued jobs from the store, fans fragments out to the sites,
combines, noises, and charges and releases in one transaction.

Nothing is charged without a release and nothing released without a charge: the charge,
the result and the ``job.release`` trace entry commit together. A job whose runner dies
keeps its lease until it expires; it is then queued again (no budget was spent) or, after
``max_attempts``, failed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import timedelta
from typing import Any

from gateway.domain import Actor, Asset, Job, JobState, Role, Site
from gateway.errors import BlindgateError, InvalidState
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.ledger import Ledger
from gateway.service.jobs.he import HE_KINDS, HeJobs
from gateway.service.jobs.he_run import HeJobFailed, HeRun
from gateway.service.jobs.service import JobService
from gateway.service.jobs.support import covering_licences
from gateway.service.trace.service import AuditService
from gateway.siteclient.pool import SitePool
from gateway.store import Tx
from policies.jobs import JobError, combine, release
from sandbox.wire import FragmentRequest

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """A job cannot finish; ``code`` is what its operator is told."""

    def __init__(self, code: str, reasons: list[dict[str, Any]] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.reasons = reasons or []


def _cells(rel: Any) -> dict[str, Any]:
    rows = [
        [
            {
                "value": cell.value,
                "mechanism": cell.mechanism,
                "scales": dict(cell.scales),
                "epsilon": cell.epsilon,
            }
            for cell in (row[name] for name in rel.columns)
        ]
        for row in rel.rows
    ]
    return {
        "columns": list(rel.columns),
        "rows": rows,
        "epsilon_spent": rel.epsilon_spent,
        "delta_spent": rel.delta_spent,
        "threshold": rel.threshold,
        "key_release": str(rel.key_release),
    }


class JobRunner:
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
        lease_seconds: float = 300.0,
        poll_seconds: float = 0.5,
        fragment_timeout: float = 120.0,
        max_attempts: int = 3,
        concurrency: int = 4,
        he: HeJobs | None = None,
    ) -> None:
        self.he = he
        self.ctx = ctx
        self.tracer = tracer
        self.jobs = jobs
        self.ledger = ledger
        self.audit = audit
        self.pool = pool
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.poll = poll_seconds
        self.fragment_timeout = fragment_timeout
        self.max_attempts = max_attempts
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"job-runner-{n}", daemon=True)
            for n in range(max(1, concurrency))
        ]
        self._fanout = ThreadPoolExecutor(
            max_workers=8 * max(1, concurrency), thread_name_prefix="fragments"
        )

    # lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start ``concurrency`` workers; each claims and runs one job at a time."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.jobs.wakeup.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)
        self._fanout.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
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
                        error_code="approval_expired",
                        updated_at=now,
                    )
                )
            for job in tx.expired_running_jobs(now):
                if job.attempts >= self.max_attempts:
                    done = tx.update_job(
                        job.id,
                        [JobState.RUNNING],
                        state=JobState.FAILED,
                        error_code="timeout",
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

    def run_once(self) -> bool:
        """Recover expired leases, then run the oldest queued job; whether one ran."""
        self.recover()
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
        actor = Actor(job.principal_id, job.operator_org_id, Role.OPERATOR)
        try:
            self._execute(job, actor)
        except JobFailed as failed:
            self._fail(job, actor, failed.code, failed.reasons)
        except BlindgateError as exc:
            self._fail(job, actor, exc.code)
        except Exception as exc:
            log.error("job %s failed: %s", job.id, type(exc).__name__)
            self._fail(job, actor, "internal")

    def _execute(self, job: Job, actor: Actor) -> None:
        started = time.monotonic()
        if job.kind in HE_KINDS:
            self._execute_he(job, actor, started)
            return
        with self.ctx.store.read() as tx:
            # Decided again now: a revoked or expired licence, a frozen asset or a spent
            # budget stops the job before anything runs.
            decision, planned = self.jobs.decide(tx, actor, job)
            assets: list[Asset] = [a for a in (tx.get_asset(i) for i in job.asset_ids) if a]
            sites: dict[str, Site | None] = {a.id: tx.get_site(a.site_id) for a in assets}
            cover = covering_licences(tx, job)
        if not decision.allow or planned is None:
            reasons = [{"code": r.code, "clause": r.clause} for r in decision.reasons]
            raise JobFailed("policy_denied", reasons)
        plan, params = planned
        missing = [a for a in job.asset_ids if a not in cover]
        if missing:
            raise JobFailed("licence_not_covering")
        digest = hashlib.sha256(plan.sql.encode()).hexdigest()[:16]
        try:  # for sites that push fragments down to the holder's PostgreSQL
            pushdown = plan.pushdown_sql("asset")
        except (JobError, ValueError):
            pushdown = ""
        futures = []
        clients: list[tuple[Any, str]] = []
        for asset in assets:
            site = sites[asset.id]
            if site is None:
                raise JobFailed("site_missing")
            request = FragmentRequest(
                fragment_id=f"{job.id}.{asset.id}.{digest}",
                job_id=job.id,
                asset_id=asset.local_ref,
                executor="duckdb_sql",
                program=plan.sql,
                deadline_ms=int(self.fragment_timeout * 1000),
                pushdown_program=pushdown,
            )
            client = self.pool.client(site)
            clients.append((client, request.fragment_id))
            futures.append(
                self._fanout.submit(client.run_fragment, request, self.fragment_timeout + 10)
            )
        self._wait_or_cancel(job, futures, clients)
        partials = []
        compute = 0.0
        for future in futures:
            outcome = future.result()
            if not outcome.ok or outcome.table is None:
                raise JobFailed(f"fragment_{outcome.failure or 'internal'}")
            compute += outcome.elapsed_ms / 1000
            table = outcome.table
            partials.append([dict(zip(table.columns, row, strict=True)) for row in table.rows])
        try:
            groups = combine(plan, partials)
            if params.max_groups is not None and len(groups) > params.max_groups:
                raise JobFailed("too_many_groups")
            released = release(plan, groups, params)
        except JobError as exc:
            raise JobFailed("release_refused", [{"code": r.code} for r in exc.reasons]) from None
        result = _cells(released)
        self._release(
            job,
            actor,
            result,
            cover,
            compute,
            time.monotonic() - started,
        )

    def _execute_he(self, job: Job, actor: Actor, started: float) -> None:
        if self.he is None:
            raise JobFailed("he_unavailable")
        denied = self.he.check_context(job.spec or {})
        with self.ctx.store.read() as tx:
            decision, plan = self.he.decide(tx, actor, job)
            assets: list[Asset] = [a for a in (tx.get_asset(i) for i in job.asset_ids) if a]
            sites: dict[str, Site | None] = {a.id: tx.get_site(a.site_id) for a in assets}
            cover = covering_licences(tx, job)
        decision = denied or decision
        if not decision.allow or plan is None:
            reasons = [{"code": r.code, "clause": r.clause} for r in decision.reasons]
            raise JobFailed("policy_denied", reasons)
        if [a for a in job.asset_ids if a not in cover]:
            raise JobFailed("licence_not_covering")
        run = HeRun(
            self.he,
            self.pool,
            self._fanout,
            lambda futures, clients: self._wait_or_cancel(job, futures, clients),
            self.fragment_timeout,
        )
        try:
            result, compute = run.execute(job, plan, assets, sites)
        except HeJobFailed as exc:
            raise JobFailed(exc.code) from None
        self._release(job, actor, result, cover, compute, time.monotonic() - started)

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
                raise JobFailed("cancelled")

    def _release(
        self,
        job: Job,
        actor: Actor,
        result: dict[str, Any],
        cover: dict[str, str],
        compute: float,
        wall: float,
    ) -> None:
        def work(tx: Tx, note: Note) -> None:
            note.target.update(job=job.id, assets=job.asset_ids)
            holders = tx.job_holders(job.id)
            note.subject_org = next(iter(holders.values()), None)
            for asset_id, licence_id in cover.items():
                self.ledger.charge_in(tx, licence_id, [asset_id], job.epsilon, job.delta, job.id)
            now = self.ctx.clock.now()
            if not tx.update_job(
                job.id,
                [JobState.RUNNING],
                lease_owner=self.owner,
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
            }

        _, pending = self.tracer.write(actor, "job.release", work)
        receipt = self.audit.receipt(pending).model_dump()
        self.ctx.store.transact(
            lambda tx: tx.update_job(job.id, [JobState.SUCCEEDED], receipt=receipt)
        )

    def _fail(
        self, job: Job, actor: Actor, code: str, reasons: list[dict[str, Any]] | None = None
    ) -> None:
        def work(tx: Tx, note: Note) -> None:
            note.target["job"] = job.id
            note.subject_org = next(iter(tx.job_holders(job.id).values()), None)
            note.decision = "deny"
            note.reasons = [{"code": code, "clause": "job"}, *(reasons or [])]
            tx.update_job(
                job.id,
                [JobState.RUNNING],
                lease_owner=self.owner,
                state=JobState.FAILED,
                error_code=code,
                lease_until=None,
                updated_at=self.ctx.clock.now(),
            )

        try:
            self.tracer.write(actor, "job.fail", work)
        except BlindgateError:
            log.error("could not record the failure of job %s", job.id)


def make_runner(services: Any, owner: str) -> JobRunner:
    """A runner over ``services`` (a :class:`gateway.service.Services`)."""
    return JobRunner(
        services.ctx,
        services.tracer,
        services.jobs,
        services.ledger,
        services.audit,
        services.site_pool,
        owner=owner,
        he=services.he,
    )
