"""Jobs whose results the sites hold for their holders' review (Python jobs' outputs).

When a kind's ``combine`` raises :class:`~gateway.service.jobs.kind.JobHeld`, the runner
parks the job as ``in_review`` (trace entry ``job.run``) and, every ``review_seconds``,
asks each site what its holder decided (``FetchOutputs``).  The kind turns the answers
into a result once every site released (``job.review``, then the usual ``job.release``
with its receipt), or into a failure once one rejected (``job.review``, then
``job.fail`` with the holder's reason).  The runner never names a kind here either.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from gateway.domain import Actor, Asset, Job, JobState, Role
from gateway.errors import InvalidState
from gateway.service.core.tracing import Note
from gateway.service.jobs.kind import FailureCode, JobFailed
from gateway.service.jobs.support import covering_licences
from gateway.service.jobs.tickets import fragment_id
from gateway.store import Tx

if TYPE_CHECKING:
    from gateway.service.core.context import ServiceContext
    from gateway.service.core.tracing import Tracer
    from gateway.service.jobs.decide import JobDecider
    from gateway.siteclient.pool import SitePool

log = logging.getLogger(__name__)


class HeldJobs:
    """The runner's part for held results (mixed into :class:`JobRunner`)."""

    ctx: ServiceContext
    tracer: Tracer
    decider: JobDecider
    pool: SitePool
    owner: str
    observe: Any
    review_seconds: float
    _reviewed_at: float
    _review_lock: threading.Lock

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
        raise NotImplementedError

    def _fail(
        self,
        job: Job,
        actor: Actor,
        code: str,
        reasons: list[dict[str, Any]] | None = None,
        expected: JobState = JobState.RUNNING,
    ) -> None:
        raise NotImplementedError

    def _hold(self, job: Job, actor: Actor, detail: dict[str, Any]) -> None:
        """The sites hold the job's results for their holders' review: park the job."""

        def work(tx: Tx, note: Note) -> None:
            note.target.update(job=job.id, assets=job.asset_ids)
            note.subject_org = next(iter(tx.job_holders(job.id).values()), None)
            note.detail = detail
            if not tx.update_job(
                job.id,
                [JobState.RUNNING],
                lease_owner=self.owner,
                state=JobState.IN_REVIEW,
                lease_until=None,
                updated_at=self.ctx.clock.now(),
            ):
                raise InvalidState("the job was cancelled or taken over before it was held")

        self.tracer.write(actor, "job.run", work)

    def review_held(self) -> int:
        """Ask the sites about every job whose results they hold; release or fail those
        their holders decided.  Returns how many jobs were settled."""
        if not self._review_lock.acquire(blocking=False):
            return 0
        settled = 0
        try:
            self._reviewed_at = time.monotonic()
            with self.ctx.store.read() as tx:
                held = tx.list_jobs(states=[JobState.IN_REVIEW], limit=100)
            for job in held:
                try:
                    settled += self._review(job)
                except Exception as exc:  # one site's trouble must not stop the others
                    log.warning("review of job %s: %s", job.id, type(exc).__name__)
        finally:
            self._review_lock.release()
        return settled

    def _review(self, job: Job) -> int:
        actor = Actor(job.principal_id, job.operator_org_id, Role.OPERATOR)
        kind = self.decider.kind(job.kind)
        with self.ctx.store.read() as tx:
            assets: list[Asset] = [a for a in (tx.get_asset(i) for i in job.asset_ids) if a]
            sites = {a.id: tx.get_site(a.site_id) for a in assets}
            cover = covering_licences(tx, job)
        answers = []
        for asset in assets:
            site = sites.get(asset.id)
            if site is None:
                raise JobFailed(FailureCode.SITE_MISSING)
            client = self.pool.client(site)
            answers.append((asset, client.fetch_outputs(fragment_id(job, asset), timeout=30)))
        try:
            result = kind.reviewed(job, answers)
        except JobFailed as failed:
            self._trace_review(job, actor, answers)
            self._fail(job, actor, failed.code, failed.reasons, expected=JobState.IN_REVIEW)
            return 1
        if result is None:
            return 0
        self._trace_review(job, actor, answers)
        began = time.monotonic()
        self._release(job, actor, result, cover, 0.0, 0.0, expected=JobState.IN_REVIEW)
        if self.observe is not None:
            self.observe("release after review", time.monotonic() - began)
        return 1

    def _trace_review(self, job: Job, actor: Actor, answers: list[tuple[Asset, Any]]) -> None:
        """``job.review``: each site's decision, reviewer and output hashes."""

        def work(tx: Tx, note: Note) -> None:
            note.target.update(job=job.id, assets=job.asset_ids)
            note.subject_org = next(iter(tx.job_holders(job.id).values()), None)
            note.decision = "allow" if all(a.state == "released" for _, a in answers) else "deny"
            note.detail = {
                "sites": [
                    {
                        "asset": asset.id,
                        "state": answer.state,
                        "reviewer": answer.reviewer,
                        "outputs_sha256": answer.outputs_sha256,
                        "outputs": {f.path: f.sha256 for f in answer.files},
                    }
                    for asset, answer in answers
                ]
            }

        self.tracer.write(actor, "job.review", work)
