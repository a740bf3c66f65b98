"""Helpers of the job use cases: schemas of partitions, job views, decisions as data."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from typing import Any

from contracts.terms import terms_from_canonical
from contracts.tickets import JobStatement, job_statement
from gateway.domain import Job, JobState
from gateway.service.governance.decisions import deny
from gateway.service.jobs.schemas import JobOut
from gateway.store import Tx
from policies import Decision, EffectiveParameters, Reason
from policies.jobs import JobError


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        state=str(job.state),
        kind=job.kind,
        sql=job.sql,
        purpose=job.purpose,
        epsilon=job.epsilon,
        delta=job.delta,
        assets=job.asset_ids,
        operator_org_id=job.operator_org_id,
        decision=job.decision,
        approvals=job.approvals,
        approvals_required=job.approvals_required,
        approval_expires_at=job.approval_expires_at,
        created_at=job.created_at,
        updated_at=job.updated_at,
        error_code=job.error_code,
        attempts=job.attempts,
        has_result=job.result is not None and job.state == JobState.SUCCEEDED,
        failure_reasons=(job.result or {}).get("failure_reasons")
        if job.state == JobState.FAILED
        else None,
        spec=job.spec,
        licence_ids=job.licence_ids,
        job_sha256=statement_of(job).digest,
    )


def statement_of(job: Job) -> JobStatement:
    """The job as submitted, as tickets carry it and approvals sign it."""
    return job_statement(
        {
            "id": job.id,
            "kind": job.kind,
            "operator_org_id": job.operator_org_id,
            "sql": job.sql,
            "spec": job.spec,
            "purpose": job.purpose,
            "epsilon": job.epsilon,
            "delta": job.delta,
            "assets": job.asset_ids,
            "licence_ids": job.licence_ids,
            "created_at": job.created_at,
        }
    )


def covering_licences(tx: Tx, job: Job) -> dict[str, str]:
    """For each asset of ``job``, the id of the job's licence that covers it."""
    cover: dict[str, str] = {}
    for lid in job.licence_ids:
        licence = tx.get_licence(lid)
        if licence is None:
            continue
        for asset_id in terms_from_canonical(licence.terms.encode()).asset_ids:
            if asset_id in job.asset_ids:
                cover.setdefault(asset_id, lid)
    return cover


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def refused(exc: JobError) -> Decision:
    """A denial carrying the analysis' or plan's refusal reasons."""
    reasons = tuple(
        Reason(
            code=r.code,
            clause="request.sql",
            message=r.message,
            fix=r.fix,
            subject=r.construct or None,
        )
        for r in exc.reasons
    ) or (deny("evaluation_error", "The query could not be analysed.").reasons)
    return Decision(allow=False, reasons=reasons)


def summary(decision: Decision) -> dict[str, Any]:
    data: dict[str, Any] = decision.model_dump(mode="json")
    return {
        "allow": data["allow"],
        "reasons": data["reasons"],
        "policy_versions": data["policy_versions"],
        "parameters": data["parameters"],
    }


def required_approvals(decision: Decision) -> int:
    """How many approvals the job needs in all: each holder's, under its own policy."""
    params = decision.parameters
    if params is None or params.approval_mode == "auto":
        return 0
    return sum(
        1 if rule.quorum is None else rule.quorum.required
        for rule in params.approvals.values()
        if rule.mode != "auto"
    )


def approvals_needed(job: Job, holders: dict[str, str]) -> dict[str, int]:
    """Per holder organisation, how many of its principals must approve ``job``: each
    holder decides under its own policy; one holder's approval never stands for another's.

    ``holders`` maps the job's assets to their holder organisations.
    """
    rules = (job.decision.get("parameters") or {}).get("approvals") or {}
    needed: dict[str, int] = {}
    for asset_id, rule in rules.items():
        org = holders.get(asset_id)
        if org is None or rule.get("mode", "manual") == "auto":
            continue
        quorum = rule.get("quorum") or {}
        needed[org] = max(needed.get(org, 0), int(quorum.get("required", 1)))
    return needed


def for_schema(
    params: EffectiveParameters, schema_asset: str, assets: list[str]
) -> EffectiveParameters:
    """Parameters keyed by the schema's asset: the tightest clip bounds over partitions."""
    merged = dict(params.clip.get(schema_asset, {}))
    for asset in assets:
        for column, bounds in params.clip.get(asset, {}).items():
            have = merged.get(column)
            if have is None or (bounds.upper - bounds.lower) < (have.upper - have.lower):
                merged[column] = bounds
    clip = {**params.clip, schema_asset: merged}
    return params.model_copy(update={"clip": clip})


def decided(job: Job, decision: Decision, now: datetime) -> Job:
    """``job`` as its decision leaves it: denied, queued or waiting for approval."""
    state, required, expires = JobState.DENIED, 0, None
    if decision.allow and decision.parameters is not None:
        mode = decision.parameters.approval_mode
        required = required_approvals(decision)
        state = JobState.QUEUED if mode == "auto" else JobState.PENDING_APPROVAL
        hours = decision.parameters.approval_expires_after_hours
        expires = now + timedelta(hours=hours) if hours and required else None
    return dataclasses.replace(
        job,
        state=state,
        decision=summary(decision),
        approvals_required=required,
        approval_expires_at=expires,
    )
