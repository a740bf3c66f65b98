"""The privacy-budget ledger: charged atomically before anything is released, refunded
only if nothing was released, and reported as what remains and how many jobs still fit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from contracts.terms import terms_from_canonical
from gateway.domain import Actor, BudgetCharge, LicenceStatus, Role
from gateway.errors import BudgetExhausted, NotFound, ValidationFailed
from gateway.metrics import GatewayMetrics
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.licences import LicenceService, effective_status
from gateway.service.governance.policies import parse_for_asset
from gateway.service.governance.schemas import (
    AssetBudget,
    BudgetOut,
    SettlementLine,
    SettlementOut,
    UsageOut,
)
from gateway.store import Tx
from policies import PrivacyRules, fits, jobs_that_fit, remaining
from policies.budget import exact


def total(values: Iterable[float]) -> float:
    """An exact decimal sum of budget amounts (0.1 ten times is exactly 1)."""
    return float(sum((exact(v) for v in values), Decimal(0)))


class Ledger:
    """Charges, refunds and reports of privacy budget per asset and period.

    **The budget belongs to the data subjects.**  ε and δ are charged to each asset a job
    reads, across every licence and operator; a licence's ``epsilon_cap`` is a sub-limit
    under the assets' budgets.  Composition is basic (sequential) composition: the ε of
    the jobs released in an asset's rolling period add up, and so do their δ — a sound
    bound for any mix of pure-ε and (ε, δ) releases.  A person present in several
    partitions of a federated asset is bounded per partition (``max_rows_per_unit`` rows
    each) and each partition's budget is charged, so such a person's loss is at most the
    sum of the budgets of the partitions holding them.
    """

    def __init__(self, ctx: ServiceContext, tracer: Tracer, metrics: GatewayMetrics) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.metrics = metrics

    def _asset_budget(self, tx: Tx, asset_id: str) -> PrivacyRules | None:
        asset = tx.get_asset(asset_id)
        stored = tx.get_policy(asset_id)
        if asset is None or stored is None:
            return None
        return parse_for_asset(stored.document, asset).privacy

    def charge_in(
        self,
        tx: Tx,
        licence_id: str,
        asset_ids: Sequence[str],
        epsilon: float,
        delta: float,
        job_ref: str,
        note: Note | None = None,
    ) -> list[BudgetCharge]:
        """Charge inside the caller's write transaction (all or nothing with it)."""
        licence = tx.get_licence(licence_id, lock=True)
        if licence is None:
            raise NotFound("no such licence")
        if note is not None:
            note.subject_org = licence.holder_org_id
        now = self.ctx.clock.now()
        if effective_status(licence, now) != str(LicenceStatus.ACTIVE):
            raise BudgetExhausted("the licence is not in force")
        terms = terms_from_canonical(licence.terms.encode())
        if terms.job_cap is not None:
            # Counted under the licence row's lock, so parallel releases cannot overrun it.
            charged = {c.job_ref for c in tx.charges(licence_id=licence_id)} - {job_ref}
            if len(charged) >= terms.job_cap:
                raise BudgetExhausted("the licence's job cap is reached")
        if terms.epsilon_cap is not None:
            used = total(c.epsilon for c in tx.charges(licence_id=licence_id))
            if not fits(used, epsilon, float(terms.epsilon_cap)):
                raise BudgetExhausted("the licence's epsilon cap would be exceeded")
        # The asset's budget belongs to its data subjects: every licence's and operator's
        # charges count, and concurrent charges on the same asset are serialised.
        tx.lock_budget(list(asset_ids))
        for asset_id in asset_ids:
            if asset_id not in terms.asset_ids:
                raise BudgetExhausted(f"the licence does not cover asset {asset_id}")
            privacy = self._asset_budget(tx, asset_id)
            if privacy is None:
                raise BudgetExhausted(f"asset {asset_id} has no policy")
            since = now - timedelta(days=privacy.budget.period_days)
            spent = tx.charges(asset_id=asset_id, since=since)
            if not fits(total(c.epsilon for c in spent), epsilon, privacy.budget.epsilon):
                raise BudgetExhausted(f"the epsilon budget of asset {asset_id} is spent")
            if delta and not fits(total(c.delta for c in spent), delta, privacy.budget.delta):
                raise BudgetExhausted(f"the delta budget of asset {asset_id} is spent")
        charges = [
            self._new_charge(licence_id, asset_id, job_ref, epsilon, delta, now)
            for asset_id in asset_ids
        ]
        tx.add_charges(charges)
        return charges

    def _new_charge(
        self,
        licence_id: str,
        asset_id: str,
        job_ref: str,
        epsilon: float,
        delta: float,
        at: datetime,
    ) -> BudgetCharge:
        return BudgetCharge(
            id=self.ctx.ids.new("chg"),
            licence_id=licence_id,
            asset_id=asset_id,
            job_ref=job_ref,
            epsilon=epsilon,
            delta=delta,
            at=at,
        )

    def record_in(
        self,
        tx: Tx,
        licence_id: str,
        asset_id: str,
        epsilon: float,
        delta: float,
        job_ref: str,
    ) -> None:
        """Record a charge without the budget checks: for a job that was admitted and ran
        but failed in a way that may depend on the data (it costs what a release costs)."""
        now = self.ctx.clock.now()
        tx.add_charges([self._new_charge(licence_id, asset_id, job_ref, epsilon, delta, now)])

    def charge(
        self,
        actor: Actor,
        licence_id: str,
        asset_ids: Sequence[str],
        epsilon: float,
        delta: float,
        job_ref: str,
    ) -> list[BudgetCharge]:
        """Charge ``epsilon``/``delta`` to every asset under the licence, all or nothing.

        Runs under the licence row's lock (PostgreSQL ``FOR UPDATE``; SQLite's single
        writer), so concurrent charges can never spend the same budget twice.
        """

        def work(tx: Tx, note: Note) -> list[BudgetCharge]:
            note.target.update(licence=licence_id, job=job_ref)
            charges = self.charge_in(tx, licence_id, asset_ids, epsilon, delta, job_ref, note)
            note.detail = {"epsilon": epsilon, "delta": delta, "assets": list(asset_ids)}
            return charges

        try:
            charged = self.tracer.write(actor, "budget.charge", work)[0]
        except BudgetExhausted:
            self.metrics.budget_charges.labels("refused").inc()
            raise
        self.metrics.budget_charges.labels("charged").inc()
        return charged

    def release(self, actor: Actor, job_ref: str) -> int:
        """Mark a job's charges as released: they can never be refunded."""

        def work(tx: Tx, note: Note) -> int:
            note.target["job"] = job_ref
            return tx.mark_charges(job_ref, released=True)

        return self.tracer.write(actor, "budget.release", work)[0]

    def refund(self, actor: Actor, job_ref: str) -> int:
        """Refund a job's charges, only if nothing of it was released."""

        def work(tx: Tx, note: Note) -> int:
            note.target["job"] = job_ref
            found = tx.charges(job_ref=job_ref)
            if any(c.released for c in found):
                raise ValidationFailed("a released result's budget is never refunded")
            return tx.mark_charges(job_ref, refunded_at=self.ctx.clock.now())

        refunded = self.tracer.write(actor, "budget.refund", work)[0]
        if refunded:
            self.metrics.budget_charges.labels("refunded").inc()
        return refunded

    def budget(self, actor: Actor, licence_id: str, epsilon_per_job: float | None) -> BudgetOut:
        """What remains under the licence, per asset, and how many jobs of a shape fit."""
        if epsilon_per_job is not None and not epsilon_per_job > 0:
            raise ValidationFailed("epsilon_per_job must be positive")
        now = self.ctx.clock.now()
        with self.ctx.store.read() as tx:
            licence = LicenceService.visible(actor, tx.get_licence(licence_id))
            terms = terms_from_canonical(licence.terms.encode())
            assets = []
            fit_counts: list[int] = []
            for asset_id in terms.asset_ids:
                privacy = self._asset_budget(tx, asset_id)
                if privacy is None:
                    continue
                since = now - timedelta(days=privacy.budget.period_days)
                charged = tx.charges(asset_id=asset_id, since=since)
                spent = total(c.epsilon for c in charged)
                mine = total(c.epsilon for c in charged if c.licence_id == licence_id)
                left = remaining(privacy.budget.epsilon, spent)
                fit = None
                if epsilon_per_job is not None:
                    fit = (
                        0
                        if not privacy.epsilon_per_job_min
                        <= epsilon_per_job
                        <= privacy.epsilon_per_job_max
                        else jobs_that_fit(left, epsilon_per_job)
                    )
                    fit_counts.append(fit)
                assets.append(
                    AssetBudget(
                        asset_id=asset_id,
                        epsilon_budget=privacy.budget.epsilon,
                        delta_budget=privacy.budget.delta,
                        period_days=privacy.budget.period_days,
                        epsilon_spent=spent,
                        epsilon_spent_by_licence=mine,
                        delta_spent=total(c.delta for c in charged),
                        epsilon_remaining=left,
                        epsilon_per_job_max=privacy.epsilon_per_job_max,
                        epsilon_per_job_min=privacy.epsilon_per_job_min,
                        renews_at=(
                            min(c.at for c in charged) + timedelta(days=privacy.budget.period_days)
                            if charged
                            else None
                        ),
                        jobs_that_fit=fit,
                    )
                )
            used = total(c.epsilon for c in tx.charges(licence_id=licence_id))
            jobs_used = len({c.job_ref for c in tx.charges(licence_id=licence_id)})
        cap = float(terms.epsilon_cap) if terms.epsilon_cap is not None else None
        cap_left = remaining(cap, used) if cap is not None else None
        total_fit = None
        if epsilon_per_job is not None:
            if cap_left is not None:
                fit_counts.append(jobs_that_fit(cap_left, epsilon_per_job))
            if terms.job_cap is not None:
                fit_counts.append(max(0, terms.job_cap - jobs_used))
            in_force = effective_status(licence, now) == str(LicenceStatus.ACTIVE)
            total_fit = min(fit_counts) if fit_counts and in_force else 0
        return BudgetOut(
            licence_id=licence_id,
            at=now,
            assets=assets,
            licence_epsilon_cap=cap,
            licence_epsilon_used=used,
            licence_epsilon_remaining=cap_left,
            epsilon_per_job=epsilon_per_job,
            jobs_that_fit=total_fit,
        )

    def usage(self, actor: Actor, licence_id: str) -> UsageOut:
        """Metering of one licence: jobs charged, budget spent."""
        now = self.ctx.clock.now()
        with self.ctx.store.read() as tx:
            LicenceService.visible(actor, tx.get_licence(licence_id))
            live = tx.charges(licence_id=licence_id)
            everything = tx.charges(licence_id=licence_id, include_refunded=True)
            last_hour = tx.charges(licence_id=licence_id, since=now - timedelta(hours=1))
            compute = 0.0
            for job_ref in {c.job_ref for c in live}:
                job = tx.get_job(job_ref)
                compute += job.compute_seconds if job is not None else 0.0
        return UsageOut(
            licence_id=licence_id,
            jobs=len({c.job_ref for c in live}),
            jobs_last_hour=len({c.job_ref for c in last_hour}),
            epsilon_spent=total(c.epsilon for c in live),
            delta_spent=total(c.delta for c in live),
            charges_refunded=len(everything) - len(live),
            compute_seconds=compute,
        )

    def settlement(self, actor: Actor, start: datetime, end: datetime) -> SettlementOut:
        """A holder's statement for revenue sharing: per licence, fee terms and use."""
        if not start < end:
            raise ValidationFailed("period_start must be before period_end")
        if actor.role not in (Role.HOLDER, Role.AUDITOR):
            raise NotFound("no settlement")
        lines = []
        with self.ctx.store.read() as tx:
            holder = actor.org_id if actor.role == Role.HOLDER else None
            for licence in tx.list_licences(holder_org_id=holder):
                terms = terms_from_canonical(licence.terms.encode())
                used = [c for c in tx.charges(licence_id=licence.id, since=start) if c.at < end]
                lines.append(
                    SettlementLine(
                        licence_id=licence.id,
                        operator_org_id=licence.operator_org_id,
                        currency=terms.fee.currency,
                        fixed_fee=str(terms.fee.amount),
                        revenue_share_percent=str(terms.fee.revenue_share_percent),
                        jobs=len({c.job_ref for c in used}),
                        epsilon_spent=total(c.epsilon for c in used),
                    )
                )
        return SettlementOut(
            holder_org_id=actor.org_id, period_start=start, period_end=end, lines=lines
        )
