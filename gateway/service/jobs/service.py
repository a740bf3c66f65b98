"""Jobs of every kind: submit, dry-run, read, approve, cancel.

A job is analysed and decided (:class:`~gateway.service.jobs.decide.JobDecider`) at
submission; it waits for approval when a policy asks for it, then the queue (the job
table) hands it to a runner (:mod:`gateway.service.jobs.runner`), which fans fragments out
to the sites, combines, noises, charges and releases in one transaction.  What differs
between kinds is behind :class:`~gateway.service.jobs.kind.JobKind`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
from typing import Any

from contracts import LicenceError, decode_public_key
from contracts.tickets import ApprovalStatement, canonical, verify_statement
from contracts.tlog.merkle import leaf_hash
from gateway.domain import (
    TERMINAL_STATES,
    Actor,
    Asset,
    Job,
    JobState,
    Licence,
    PendingTrace,
    Role,
)
from gateway.errors import Forbidden, InvalidState, NotFound, ValidationFailed
from gateway.service.catalogue.federated import expand
from gateway.service.catalogue.visibility import visible_asset
from gateway.service.core.access import hide_unless, require_role
from gateway.service.core.context import PageRequest, ServiceContext, encode_cursor
from gateway.service.core.schemas import PageOut
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.decisions import DecisionService
from gateway.service.governance.decisions import out as decision_out
from gateway.service.governance.licences import effective_status
from gateway.service.governance.schemas import DecisionOut
from gateway.service.jobs.completion import MAX_WAIT_SECONDS, RECHECK_SECONDS, Completions
from gateway.service.jobs.decide import JobDecider
from gateway.service.jobs.kind import Draft
from gateway.service.jobs.schemas import (
    ApprovalIn,
    HeJobIn,
    JobOut,
    JobResultOut,
    JobSubmitIn,
    PythonJobIn,
)
from gateway.service.jobs.support import (
    approvals_needed,
    decided,
    job_out,
    statement_of,
    summary,
)
from gateway.service.trace.service import AuditService
from gateway.store import Tx
from policies import Decision

JobBody = JobSubmitIn | HeJobIn | PythonJobIn
"""A submission of any kind."""


def kind_of(body: JobBody) -> str:
    """The job kind a submission body asks for."""
    return body.kind if isinstance(body, HeJobIn | PythonJobIn) else "sql_aggregate"


class JobService:
    """Use cases for jobs."""

    def __init__(
        self,
        ctx: ServiceContext,
        tracer: Tracer,
        decisions: DecisionService,
        decider: JobDecider,
        audit: AuditService,
    ) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.decisions = decisions
        self.decider = decider
        self.audit = audit
        self.wakeup = threading.Event()
        """Set when a job becomes runnable, so an idle runner starts at once."""
        self.completions = Completions()
        """Told when a job finishes, so that long polls answer at once."""

    def receipt_for(self, job: Job) -> dict[str, Any] | None:
        """The receipt of a job's release, built from its trace entry if not stored yet
        (the release commits first; the receipt is attached right after)."""
        if job.receipt is not None:
            return job.receipt
        if job.state != JobState.SUCCEEDED:
            return None
        cursor = None
        while True:
            with self.ctx.store.read() as tx:
                rows = tx.trace_entries(
                    after=cursor, limit=500, action="job.release", actor_org=job.operator_org_id
                )
            for row in rows:
                if json.loads(row.leaf).get("target", {}).get("job") == job.id:
                    pending = PendingTrace(row.leaf, leaf_hash(row.leaf), row.index)
                    receipt = self.audit.receipt(pending).model_dump()
                    self.ctx.store.transact(
                        lambda tx, r=receipt: tx.update_job(  # type: ignore[misc]
                            job.id, [JobState.SUCCEEDED], receipt=r
                        )
                    )
                    return receipt
            if len(rows) < 500:
                return None
            cursor = rows[-1].index

    # decisions -------------------------------------------------------------------------
    def licences_for(
        self, tx: Tx, actor: Actor, assets: list[str], licence_ids: list[str] | None
    ) -> list[Licence]:
        """The licences a job names, or else every active licence of the actor's on them."""
        if licence_ids is not None:
            return [
                lic
                for lid in licence_ids
                if (lic := tx.get_licence(lid)) is not None and lic.operator_org_id == actor.org_id
            ]
        now = self.ctx.clock.now()
        found: dict[str, Licence] = {}
        for asset_id in expand(tx, assets):
            for lic in tx.list_licences(operator_org_id=actor.org_id, asset_id=asset_id):
                if effective_status(lic, now) == "active":
                    found[lic.id] = lic
        return list(found.values())

    # submit and dry run ------------------------------------------------------------------
    def _draft(
        self, tx: Tx, actor: Actor, body: JobBody, draft: Draft, job_id: str
    ) -> tuple[list[Asset], Job]:
        """The job ``body`` describes, over the assets it names, before any decision."""
        now = self.ctx.clock.now()
        assets = [visible_asset(actor, tx, a) for a in expand(tx, body.assets)]
        job = Job(
            id=job_id,
            operator_org_id=actor.org_id,
            principal_id=actor.principal_id,
            kind=draft.kind,
            sql=draft.sql,
            purpose=body.purpose,
            epsilon=body.epsilon,
            delta=draft.delta,
            asset_ids=[a.id for a in assets],
            licence_ids=[
                lic.id for lic in self.licences_for(tx, actor, body.assets, body.licence_ids)
            ],
            idempotency_key=body.idempotency_key,
            state=JobState.SUBMITTED,
            decision={},
            created_at=now,
            updated_at=now,
            spec=draft.spec,
        )
        return assets, job

    def existing(self, actor: Actor, idempotency_key: str | None) -> JobOut | None:
        """The job the actor's organisation submitted earlier under ``idempotency_key``."""
        if idempotency_key is None:
            return None
        with self.ctx.store.read() as tx:
            found = tx.find_job(actor.org_id, idempotency_key)
        return job_out(found) if found is not None else None

    def submit(self, actor: Actor, body: JobBody) -> JobOut:
        """Analyse, decide and persist a job of any kind; denied jobs are kept with their
        reasons.  The job and its ``job.submit`` entry commit together."""
        require_role(actor, Role.OPERATOR)
        existing = self.existing(actor, body.idempotency_key)
        if existing is not None:
            return existing
        kind = self.decider.kind(kind_of(body))
        draft = kind.draft(body)
        precheck = kind.precheck(draft.spec)

        def work(tx: Tx, note: Note) -> Job:
            now = self.ctx.clock.now()
            assets, job = self._draft(tx, actor, body, draft, self.ctx.ids.new("job"))
            decision = self.decider.decide(tx, actor, job, precheck).decision
            self.decisions.record(decision)
            self.decisions.metrics.decided(actor.org_id, decision.allow)
            job = decided(job, decision, now)
            tx.add_job(job, {a.id: a.org_id for a in assets})
            note.target.update(job=job.id, assets=job.asset_ids)
            note.subject_org = assets[0].org_id
            note.record_decision(decision.allow, decision.reasons)
            note.detail = {
                "state": str(job.state),
                **draft.detail,
                "policy_versions": summary(decision)["policy_versions"],
            }
            return job

        job, _ = self.tracer.write(actor, "job.submit", work, request=draft.request)
        self.decisions.metrics.submitted(job.kind, str(job.state))
        if job.state == JobState.QUEUED:
            self.wakeup.set()
        return job_out(job)

    def check(self, actor: Actor, body: JobBody) -> DecisionOut:
        """A dry run: analyse and decide a job without storing, running or charging anything.

        The decision is traced (``job.check``) with the holder as the entry's subject, so
        holders see dry runs on their assets whatever the job's kind.
        """
        require_role(actor, Role.OPERATOR)
        kind = self.decider.kind(kind_of(body))
        draft = dataclasses.replace(kind.draft(body), request=None)
        precheck = kind.precheck(draft.spec)

        def work(tx: Tx, note: Note) -> Decision:
            assets, job = self._draft(tx, actor, body, draft, "check")
            decision = self.decider.decide(tx, actor, job, precheck).decision
            note.target["assets"] = job.asset_ids
            note.subject_org = assets[0].org_id
            note.record_decision(decision.allow, decision.reasons)
            note.detail = dict(draft.detail)
            return decision

        decision = self.tracer.read(actor, "job.check", work)
        self.decisions.record(decision)
        self.decisions.metrics.decided(actor.org_id, decision.allow)
        return decision_out(decision)

    # reading -----------------------------------------------------------------------------
    def _visible(self, actor: Actor, tx: Tx, job_id: str) -> Job:
        job = tx.get_job(job_id)
        if job is None:
            raise NotFound("no such job")
        if actor.role == Role.AUDITOR:
            return job
        if actor.role == Role.OPERATOR and job.operator_org_id == actor.org_id:
            return job
        if actor.role == Role.HOLDER and actor.org_id in tx.job_holders(job.id).values():
            return job
        raise NotFound("no such job")

    def get(self, actor: Actor, job_id: str) -> JobOut:
        with self.ctx.store.read() as tx:
            return job_out(self._visible(actor, tx, job_id))

    async def wait(self, actor: Actor, job_id: str, seconds: float) -> JobOut:
        """The job once it is finished, or as it is after ``seconds`` (a long poll; at
        most :data:`MAX_WAIT_SECONDS`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(max(seconds, 0.0), MAX_WAIT_SECONDS)
        while True:
            with self.completions.watching(job_id) as finished:
                job = await asyncio.to_thread(self.get, actor, job_id)
                remaining = deadline - loop.time()
                if job.state in TERMINAL_STATES or remaining <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), min(remaining, RECHECK_SECONDS))

    def list(self, actor: Actor, page: PageRequest, state: JobState | None) -> PageOut[JobOut]:
        require_role(actor, Role.OPERATOR, Role.HOLDER, Role.AUDITOR)
        with self.ctx.store.read() as tx:
            jobs = tx.list_jobs(
                operator_org_id=actor.org_id if actor.role == Role.OPERATOR else None,
                holder_org_id=actor.org_id if actor.role == Role.HOLDER else None,
                states=[state] if state else None,
                after=page.after,
                limit=page.limit,
            )
        nxt = encode_cursor(jobs[-1].id) if len(jobs) == page.limit else None
        return PageOut[JobOut](items=[job_out(j) for j in jobs], next_cursor=nxt)

    def result(self, actor: Actor, job_id: str) -> JobResultOut:
        """The released result (the operator who ran it, or an auditor); the read is traced."""

        def work(tx: Tx, note: Note) -> JobResultOut:
            job = self._visible(actor, tx, job_id)
            note.target["job"] = job.id
            note.subject_org = next(iter(tx.job_holders(job.id).values()), None)
            hide_unless(actor.role in (Role.OPERATOR, Role.AUDITOR), "job result")
            if job.state != JobState.SUCCEEDED or job.result is None:
                raise InvalidState(f"the job is {job.state}; no result has been released")
            note.result = job.result
            return JobResultOut(job_id=job.id, receipt=job.receipt, **job.result)

        released = self.tracer.read(actor, "job.result.read", work)
        if released.receipt is None:
            with self.ctx.store.read() as tx:
                job = tx.get_job(job_id)
            if job is not None:
                released = released.model_copy(update={"receipt": self.receipt_for(job)})
        return released

    # approval and cancellation -------------------------------------------------------------
    def approve(self, actor: Actor, job_id: str, body: ApprovalIn, approve: bool) -> JobOut:
        """A holder principal of an asset the job uses approves or rejects it."""

        def work(tx: Tx, note: Note) -> Job:
            job = self._visible(actor, tx, job_id)
            note.target["job"] = job.id
            note.subject_org = actor.org_id
            if actor.role != Role.HOLDER:
                raise Forbidden("only a holder of an asset the job uses approves it")
            if job.state != JobState.PENDING_APPROVAL:
                raise InvalidState(f"the job is {job.state}, not pending approval")
            now = self.ctx.clock.now()
            if job.approval_expires_at is not None and now >= job.approval_expires_at:
                # The refusal rolls this transaction back; the runner's recovery denies it.
                raise InvalidState("the approval window has expired; the job is denied")
            if any(a["principal"] == actor.principal_id for a in job.approvals):
                raise InvalidState("you have already decided on this job")
            vote: dict[str, Any] = {
                "principal": actor.principal_id,
                "org": actor.org_id,
                "decision": "approve" if approve else "reject",
                "reason": body.reason,
                "at": now.isoformat(),
            }
            if approve:
                vote.update(self._signed_approval(tx, actor, job, body))
            approvals = [*job.approvals, vote]
            yes = sum(1 for a in approvals if a["decision"] == "approve")
            state: JobState = job.state
            if not approve:
                state = JobState.DENIED
            elif all(
                len(
                    {
                        a["principal"]
                        for a in approvals
                        if a["org"] == org and a["decision"] == "approve"
                    }
                )
                >= needed
                for org, needed in approvals_needed(job, tx.job_holders(job.id)).items()
            ):
                state = JobState.QUEUED
            tx.update_job(
                job.id,
                [JobState.PENDING_APPROVAL],
                approvals=approvals,
                state=state,
                error_code="rejected" if not approve else None,
                updated_at=now,
            )
            note.decision = "allow" if approve else "deny"
            note.detail = {"state": str(state), "approvals": yes}
            updated = tx.get_job(job.id)
            assert updated is not None
            return updated

        action = "job.approve" if approve else "job.reject"
        updated = self.tracer.write(actor, action, work, request=body)[0]
        if updated.state == JobState.QUEUED:
            self.wakeup.set()
        return job_out(updated)

    def _signed_approval(self, tx: Tx, actor: Actor, job: Job, body: ApprovalIn) -> dict[str, str]:
        """The approval as the holder's site will check it: a statement naming the job's
        digest and the approving principal, signed with the organisation's key."""
        if body.signature is None or body.signed_at is None:
            raise ValidationFailed(
                "an approval is signed with your organisation's key, so that your site can "
                "check it: blindgate job approve JOB --key holder.pem"
            )
        statement = ApprovalStatement(
            holder_org_id=actor.org_id,
            principal_id=actor.principal_id,
            job_id=job.id,
            job_sha256=statement_of(job).digest,
            signed_at=body.signed_at,
        )
        org = tx.get_org(actor.org_id)
        try:
            if org is None or org.public_key is None:
                raise LicenceError("bad_key")
            verify_statement(statement, body.signature, (decode_public_key(org.public_key),))
        except LicenceError:
            raise ValidationFailed(
                "the approval's signature does not verify under your organisation's key"
            ) from None
        return {"statement": canonical(statement).decode("utf-8"), "signature": body.signature}

    def cancel(self, actor: Actor, job_id: str) -> JobOut:
        """Cancel a job that has not finished (its operator, or an auditor)."""

        def work(tx: Tx, note: Note) -> Job:
            job = self._visible(actor, tx, job_id)
            note.target["job"] = job.id
            if actor.role not in (Role.OPERATOR, Role.AUDITOR):
                raise Forbidden("only the job's operator or an auditor cancels it")
            if job.state in TERMINAL_STATES:
                raise InvalidState(f"the job is already {job.state}")
            live = [s for s in JobState if s not in TERMINAL_STATES]
            tx.update_job(
                job.id,
                live,
                state=JobState.CANCELLED,
                error_code="cancelled",
                updated_at=self.ctx.clock.now(),
            )
            updated = tx.get_job(job.id)
            assert updated is not None
            return updated

        cancelled = self.tracer.write(actor, "job.cancel", work)[0]
        self.decisions.metrics.finished(cancelled.kind, "cancelled")
        return job_out(cancelled)
