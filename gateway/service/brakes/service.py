"""Emergency suspensions.

An auditor suspends an operator organisation, one principal or one licence.  In the same
transaction every live job of the target (submitted, pending approval, queued or running)
is cancelled, each with a ``job.cancel`` trace entry; a runner that is running one sees
the job leave ``running`` and cancels its fragments at the sites.  While the suspension is
active, every decision on a job of the target — at submission, in a dry run and again
when a queued job starts — is a denial with the reason ``operator_suspended``,
``principal_suspended`` or ``licence_suspended``.  Only an auditor lifts it.  Applying and
lifting are traced (``security.suspend``, ``security.lift``).
"""

from __future__ import annotations

from gateway.domain import (
    TERMINAL_STATES,
    Actor,
    Job,
    JobState,
    Role,
    Suspension,
    SuspensionKind,
)
from gateway.errors import Conflict, InvalidState, NotFound
from gateway.metrics import GatewayMetrics
from gateway.service.brakes.schemas import LiftIn, SuspensionIn, SuspensionOut, suspension_out
from gateway.service.core.access import require_role
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.store import Tx
from policies import Decision, Reason

LIVE_STATES = [s for s in JobState if s not in TERMINAL_STATES]

_CODES = {
    SuspensionKind.ORG: "operator_suspended",
    SuspensionKind.PRINCIPAL: "principal_suspended",
    SuspensionKind.LICENCE: "licence_suspended",
}
_WHAT = {
    SuspensionKind.ORG: "Your organisation",
    SuspensionKind.PRINCIPAL: "Your principal",
    SuspensionKind.LICENCE: "Licence '{target}'",
}


def refusal(suspension: Suspension) -> Decision:
    """The denial every job of a suspended target gets."""
    what = _WHAT[suspension.kind].format(target=suspension.target_id)
    reason = Reason(
        code=_CODES[suspension.kind],
        clause=f"suspensions[{suspension.id}]",
        message=f"{what} is suspended by an auditor ({suspension.id}); no job runs meanwhile.",
        fix="Contact the platform's security team; only an auditor can lift a suspension.",
    )
    return Decision(allow=False, reasons=(reason,))


def _affects(suspension: Suspension, job: Job) -> bool:
    if suspension.kind == SuspensionKind.ORG:
        return job.operator_org_id == suspension.target_id
    if suspension.kind == SuspensionKind.PRINCIPAL:
        return job.principal_id == suspension.target_id
    return suspension.target_id in job.licence_ids


class Brakes:
    """Suspend, lift, list, and the check every job decision makes first."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer, metrics: GatewayMetrics) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.metrics = metrics

    # the check -----------------------------------------------------------------------------
    def check(self, tx: Tx, actor: Actor, licence_ids: list[str]) -> Decision | None:
        """The denial for a job by ``actor`` under ``licence_ids`` if a suspension stops
        it, else ``None``."""
        for kind, target in (
            (SuspensionKind.ORG, actor.org_id),
            (SuspensionKind.PRINCIPAL, actor.principal_id),
            *((SuspensionKind.LICENCE, lid) for lid in licence_ids),
        ):
            found = tx.list_suspensions(active=True, kind=kind, target_id=target, limit=1)
            if found:
                return refusal(found[0])
        return None

    # use cases -----------------------------------------------------------------------------
    def _operator_org(self, tx: Tx, kind: SuspensionKind, target: str) -> str:
        """The operator organisation a target belongs to (404 for an unknown target)."""
        if kind == SuspensionKind.ORG:
            if tx.get_org(target) is None:
                raise NotFound("no such organisation")
            return target
        if kind == SuspensionKind.PRINCIPAL:
            principal = tx.get_principal(target)
            if principal is None:
                raise NotFound("no such principal")
            if principal.role == Role.AUDITOR:
                raise InvalidState("an auditor cannot be suspended by this brake")
            return principal.org_id
        licence = tx.get_licence(target)
        if licence is None:
            raise NotFound("no such licence")
        return licence.operator_org_id

    def suspend(self, actor: Actor, body: SuspensionIn) -> SuspensionOut:
        """Suspend the target now and cancel its live jobs (auditors only)."""

        def work(tx: Tx, note: Note) -> tuple[SuspensionOut, list[Job]]:
            require_role(actor, Role.AUDITOR)
            note.target[str(body.kind)] = body.target_id
            org = self._operator_org(tx, body.kind, body.target_id)
            note.subject_org = org
            active = tx.list_suspensions(
                active=True, kind=body.kind, target_id=body.target_id, limit=1
            )
            if active:
                raise Conflict(f"already suspended ({active[0].id})")
            now = self.ctx.clock.now()
            suspension = Suspension(
                id=self.ctx.ids.new("sus"),
                kind=body.kind,
                target_id=body.target_id,
                operator_org_id=org,
                reason=body.reason,
                created_by=actor.principal_id,
                created_at=now,
            )
            tx.add_suspension(suspension)
            cancelled = []
            for job in tx.list_jobs(operator_org_id=org, states=LIVE_STATES, limit=100_000):
                if not _affects(suspension, job):
                    continue
                if tx.update_job(
                    job.id,
                    LIVE_STATES,
                    state=JobState.CANCELLED,
                    error_code=_CODES[body.kind],
                    updated_at=now,
                ):
                    cancelled.append(job)
                    entry = Note(target={"job": job.id}, subject_org=org)
                    entry.detail = {"state_was": str(job.state), "suspension": suspension.id}
                    tx.append_trace(self.tracer.record(actor, "job.cancel", entry))
            note.target["suspension"] = suspension.id
            note.detail = {"kind": str(body.kind), "cancelled_jobs": len(cancelled)}
            return suspension_out(suspension, [j.id for j in cancelled]), cancelled

        (out, cancelled), _ = self.tracer.write(actor, "security.suspend", work, request=body)
        self.metrics.suspensions.labels(str(body.kind), "suspend").inc()
        for job in cancelled:
            self.metrics.finished(job.kind, "cancelled")
        return out

    def lift(self, actor: Actor, suspension_id: str, body: LiftIn) -> SuspensionOut:
        """Lift an active suspension (auditors only)."""

        def work(tx: Tx, note: Note) -> SuspensionOut:
            require_role(actor, Role.AUDITOR)
            note.target["suspension"] = suspension_id
            found = tx.get_suspension(suspension_id)
            if found is None:
                raise NotFound("no such suspension")
            note.subject_org = found.operator_org_id
            now = self.ctx.clock.now()
            if not tx.lift_suspension(
                suspension_id, by=actor.principal_id, at=now, reason=body.reason
            ):
                raise InvalidState("the suspension was already lifted")
            lifted = tx.get_suspension(suspension_id)
            assert lifted is not None
            note.detail = {"kind": str(lifted.kind)}
            return suspension_out(lifted)

        out = self.tracer.write(actor, "security.lift", work, request=body)[0]
        self.metrics.suspensions.labels(str(out.kind), "lift").inc()
        return out

    def list(self, actor: Actor, *, active: bool | None) -> list[SuspensionOut]:
        """Suspensions, oldest first (auditors and admins)."""
        require_role(actor, Role.AUDITOR, Role.ADMIN)
        with self.ctx.store.read() as tx:
            return [suspension_out(s) for s in tx.list_suspensions(active=active)]
