"""One explainable decision for every job: the facts the policy engine needs are read
from the store (asset cards, latest policies, licences, the budget ledger) and the
engine decides. Dry runs decide without running or charging anything."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from contracts.terms import terms_from_canonical
from gateway.domain import Actor, Asset, Licence, LicenceStatus, Role
from gateway.errors import NotFound, PolicyInvalid
from gateway.metrics import GatewayMetrics
from gateway.service.catalogue.visibility import visible_asset
from gateway.service.core.access import require_role
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.governance.ledger import total
from gateway.service.governance.licences import KEY_ROTATED, signed_under_current_keys
from gateway.service.governance.policies import parse_for_asset
from gateway.service.governance.schemas import DecisionOut, JobDescriptionIn
from gateway.store import Tx
from policies import (
    REASONS,
    AssetContext,
    AssetFacts,
    Decision,
    LicenceFacts,
    Reason,
    UsageCounters,
    evaluate,
)

_STATUS = {
    LicenceStatus.OFFERED: "pending",
    LicenceStatus.ACTIVE: "active",
    LicenceStatus.REVOKED: "revoked",
}


def deny(
    code: str,
    message: str,
    *,
    asset: str | None = None,
    clause: str = "asset",
    fix: str | None = None,
) -> Decision:
    """A denial with one reason: a code of the engine's catalogue (and its fix), or a
    gateway's own code with its ``fix``."""
    info = REASONS.get(code)
    if fix is None:
        if info is None:
            raise ValueError(f"reason code {code!r} needs a fix")
        fix = info.fix
    reason = Reason(code=code, clause=clause, message=message, fix=fix, asset=asset)
    return Decision(allow=False, reasons=(reason,))


def licence_facts(tx: Tx, licence: Licence) -> LicenceFacts:
    terms = terms_from_canonical(licence.terms.encode())
    charges = tx.charges(licence_id=licence.id)
    status = _STATUS[licence.status]
    if status == "active" and not signed_under_current_keys(tx, licence):
        status = KEY_ROTATED  # a key was replaced: no new job under the old signatures
    return LicenceFacts(
        licence_id=licence.id,
        status=status,
        valid_from=terms.valid_from,
        valid_until=terms.valid_until,
        asset_ids=terms.asset_ids,
        purposes=terms.purposes,
        job_kinds=terms.job_kinds,
        epsilon_cap=float(terms.epsilon_cap) if terms.epsilon_cap is not None else None,
        epsilon_used=total(c.epsilon for c in charges),
        job_cap=terms.job_cap,
        jobs_used=len({c.job_ref for c in charges}),
    )


class DecisionService:
    """Builds the evaluation request for a job and records the decision."""

    def __init__(self, ctx: ServiceContext, tracer: Tracer, metrics: GatewayMetrics) -> None:
        self.ctx = ctx
        self.tracer = tracer
        self.metrics = metrics

    def _licences(self, tx: Tx, actor: Actor, job: JobDescriptionIn) -> list[Licence]:
        if job.licence_ids is not None:
            found = []
            for lid in job.licence_ids:
                licence = tx.get_licence(lid)
                if licence is None or licence.operator_org_id != actor.org_id:
                    raise NotFound(f"no such licence: {lid}")
                found.append(licence)
            return found
        seen: dict[str, Licence] = {}
        for asset_id in job.assets:
            for licence in tx.list_licences(operator_org_id=actor.org_id, asset_id=asset_id):
                seen[licence.id] = licence
        return list(seen.values())

    def decide(self, tx: Tx, actor: Actor, job: JobDescriptionIn) -> Decision:
        """The policy decision for ``job`` by ``actor``; fails closed on missing facts."""
        now = self.ctx.clock.now()
        assets: list[Asset] = [visible_asset(actor, tx, a) for a in dict.fromkeys(job.assets)]
        contexts = []
        periods: dict[str, int] = {}
        for asset in assets:
            stored = tx.get_policy(asset.id)
            if stored is None:
                return deny(
                    "empty_policy", f"Asset '{asset.id}' has no policy yet.", asset=asset.id
                )
            try:
                policy = parse_for_asset(stored.document, asset)
            except PolicyInvalid:
                return deny(
                    "policy_invalid",
                    f"The policy of asset '{asset.id}' no longer passes the policy checks.",
                    asset=asset.id,
                    fix="Ask the holder to set the asset's policy again: the error names "
                    "what to change.",
                )
            periods[asset.id] = policy.privacy.budget.period_days
            facts = AssetFacts(
                asset_id=asset.id,
                status=str(asset.status),
                privacy_unit=asset.privacy_unit,
                column_tags={c.name: str(c.tag) for c in asset.columns},
            )
            contexts.append(
                AssetContext(facts=facts, policy=policy, policy_revision=stored.version)
            )
        licences = self._licences(tx, actor, job)
        hour_ago = now - timedelta(hours=1)
        jobs_last_hour = {
            lic.id: len({c.job_ref for c in tx.charges(licence_id=lic.id, since=hour_ago)})
            for lic in licences
        }
        eps: dict[str, float] = {}
        dlt: dict[str, float] = {}
        renews: dict[str, Any] = {}
        for asset in assets:
            # The budget belongs to the asset's data subjects: every licence's and every
            # operator's charges count against it.
            days = periods[asset.id]
            spent = tx.charges(asset_id=asset.id, since=now - timedelta(days=days))
            eps[asset.id] = total(c.epsilon for c in spent)
            dlt[asset.id] = total(c.delta for c in spent)
            if spent:
                renews[asset.id] = min(c.at for c in spent) + timedelta(days=days)
        # A mapping, not a model: the engine validates it and explains what is wrong.
        request: dict[str, Any] = {
            "job_kind": job.kind,
            "purpose": job.purpose,
            "epsilon": job.epsilon,
            "delta": job.delta,
            "assets": tuple(contexts),
            "column_uses": tuple(c.model_dump() for c in job.columns),
            "licences": tuple(licence_facts(tx, lic) for lic in licences),
            "usage": UsageCounters(
                jobs_last_hour=jobs_last_hour,
                epsilon_spent=eps,
                delta_spent=dlt,
                budget_renews_at=renews,
            ),
            "now": now,
            "group_keys": tuple(tuple(key) for key in job.key_columns()),
        }
        if job.code is not None:
            request["python"] = {**job.code.model_dump(), "operator_org_id": actor.org_id}
        return evaluate(request)

    def record(self, decision: Decision) -> None:
        outcome = "allow" if decision.allow else "deny"
        self.metrics.decisions.labels(outcome).inc()
        for reason in decision.reasons:
            self.metrics.decision_reasons.labels(reason.code).inc()

    def dry_run(self, actor: Actor, job: JobDescriptionIn) -> DecisionOut:
        """Decide without running or charging anything; the decision is traced."""
        require_role(actor, Role.OPERATOR)

        def work(tx: Tx, note: Note) -> Decision:
            note.target["assets"] = list(job.assets)
            visible_asset(actor, tx, job.assets[0], note)  # the holder concerned sees the entry
            try:
                decision = self.decide(tx, actor, job)
            except (ValueError, TypeError):
                decision = deny("evaluation_error", "The job could not be evaluated.")
            note.record_decision(decision.allow, decision.reasons)
            note.detail = {
                "kind": job.kind,
                "purpose": job.purpose,
                "epsilon": job.epsilon,
                "policy_versions": dict(decision.policy_versions),
            }
            return decision

        decision = self.tracer.read(actor, "job.dry_run", work)
        self.record(decision)
        self.metrics.decided(actor.org_id, decision.allow)
        return out(decision)


def out(decision: Decision) -> DecisionOut:
    data: dict[str, Any] = decision.model_dump(mode="json")
    return DecisionOut(
        allow=data["allow"],
        reasons=data["reasons"],
        policy_versions=data["policy_versions"],
        parameters=data["parameters"],
    )
