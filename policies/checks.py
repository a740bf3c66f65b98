"""Asset, job, budget and licence rules of the evaluator; each adds reasons, none decides.

Every check is written so that only an explicitly good value passes: an unexpected
status or a missing counter produces a reason, never silence.
"""

from __future__ import annotations

from policies.budget import fits, remaining
from policies.python import KIND, check_not_private, check_python
from policies.reasons import Reasons, listing
from policies.request import AssetContext, EvaluationRequest


def check_asset(out: Reasons, ctx: AssetContext, req: EvaluationRequest) -> None:
    """Asset state, policy identity and the job-level rules of one asset's policy."""
    facts, policy = ctx.facts, ctx.policy
    aid = facts.asset_id
    if policy.asset != aid:
        out.add(
            "policy_asset_mismatch",
            "asset",
            f"The policy given for asset '{aid}' is the policy of asset '{policy.asset}'.",
            asset=aid,
        )
    for clause in policy.empty_rule_sets:
        out.add("empty_policy", clause, f"{clause} of asset '{aid}' allows nothing.", asset=aid)
    if facts.status == "frozen":
        out.add("asset_frozen", "facts.status", f"Asset '{aid}' is frozen.", asset=aid)
    elif facts.status == "disposed":
        out.add("asset_disposed", "facts.status", f"Asset '{aid}' is disposed.", asset=aid)
    elif facts.status != "active":
        out.add("invalid_request", "facts.status", f"Unknown asset status for '{aid}'.", asset=aid)
    if facts.privacy_unit is None:
        out.add(
            "missing_attribute",
            "facts.privacy_unit",
            f"Asset '{aid}' names no privacy-unit column; group sizes cannot be counted.",
            asset=aid,
        )
    elif facts.privacy_unit not in facts.column_tags:
        out.add(
            "unknown_column",
            "facts.privacy_unit",
            f"The privacy unit '{facts.privacy_unit}' is not a column of asset '{aid}'.",
            asset=aid,
            subject=facts.privacy_unit,
        )
    _check_job_rules(out, ctx, req)
    if req.job_kind == KIND:
        check_python(out, aid, policy.python, req.python)
        check_not_private(out, aid, req.epsilon, req.delta)
    else:
        _check_budget(out, ctx, req)


def _check_job_rules(out: Reasons, ctx: AssetContext, req: EvaluationRequest) -> None:
    aid, jobs = ctx.facts.asset_id, ctx.policy.jobs
    if req.job_kind not in jobs.kinds:
        out.add(
            "job_kind_not_allowed",
            "jobs.kinds",
            f"Asset '{aid}' does not allow {req.job_kind} jobs.",
            asset=aid,
            subject=req.job_kind,
            fix=f"Use a job kind asset '{aid}' allows: {listing(jobs.kinds)}.",
        )
    if req.purpose not in jobs.purposes:
        out.add(
            "purpose_not_allowed",
            "jobs.purposes",
            f"Asset '{aid}' does not allow the purpose '{req.purpose}'.",
            asset=aid,
            subject=req.purpose,
            fix=f"Declare a purpose asset '{aid}' allows: {listing(jobs.purposes)}.",
        )
    if jobs.time_windows and not any(w.contains(req.now) for w in jobs.time_windows):
        out.add(
            "outside_time_window",
            "jobs.time_windows",
            f"Asset '{aid}' accepts jobs only inside its time windows.",
            asset=aid,
            fix="Submit the job inside one of: "
            + "; ".join(
                f"{','.join(w.days)} {w.start}-{w.end} {w.timezone}" for w in jobs.time_windows
            )
            + ".",
        )
    if req.min_group_size is not None and req.min_group_size < jobs.min_group_size:
        out.add(
            "min_group_size_too_low",
            "jobs.min_group_size",
            f"The job asks for groups of {req.min_group_size}; asset '{aid}' requires at least "
            f"{jobs.min_group_size}.",
            asset=aid,
            fix=f"Request min_group_size {jobs.min_group_size} or more, or omit it.",
        )


def _check_budget(out: Reasons, ctx: AssetContext, req: EvaluationRequest) -> None:
    aid, privacy = ctx.facts.asset_id, ctx.policy.privacy
    cap = privacy.epsilon_per_job_max
    if req.epsilon > cap:
        out.add(
            "epsilon_over_job_max",
            "privacy.epsilon_per_job_max",
            f"The job asks for epsilon {req.epsilon}; asset '{aid}' allows at most {cap} per job.",
            asset=aid,
            fix=f"Lower the job's epsilon to {cap} or below.",
        )
    floor = privacy.epsilon_per_job_min
    if req.epsilon < floor:
        out.add(
            "epsilon_under_job_min",
            "privacy.epsilon_per_job_min",
            f"The job asks for epsilon {req.epsilon:g}; asset '{aid}' requires at least "
            f"{floor:g} per job.",
            asset=aid,
            fix=f"Raise the job's epsilon to {floor:g} or more.",
        )
    if req.delta > privacy.delta_per_job_max:
        out.add(
            "delta_over_job_max",
            "privacy.delta_per_job_max",
            f"The job asks for delta {req.delta:g}; asset '{aid}' allows at most "
            f"{privacy.delta_per_job_max:g} per job.",
            asset=aid,
            fix=(
                f"Lower the job's delta to {privacy.delta_per_job_max:g} or below."
                if privacy.delta_per_job_max > 0
                else "Ask for delta 0 and group only by columns with declared keys."
            ),
        )
    budget = privacy.budget
    for name, amount, limit, counters in (
        ("epsilon", req.epsilon, budget.epsilon, req.usage.epsilon_spent),
        ("delta", req.delta, budget.delta, req.usage.delta_spent),
    ):
        if name == "delta" and amount == 0:
            continue
        spent = counters.get(aid)
        if spent is None:
            out.add(
                "missing_attribute",
                f"usage.{name}_spent",
                f"The {name} spent on asset '{aid}' in its current period is not known.",
                asset=aid,
            )
        elif not fits(spent, amount, limit):
            left = remaining(limit, spent)
            renews = req.usage.budget_renews_at.get(aid)
            when = f" (the oldest charge leaves it at {renews.isoformat()})" if renews else ""
            floor = privacy.epsilon_per_job_min if name == "epsilon" else 0.0
            if left > floor:
                fix = (
                    f"Lower the job's {name} to {left:g} or less, or wait for older charges "
                    f"to leave the period{when}."
                )
            else:
                fix = f"Wait for older charges to leave the {budget.period_days}-day period{when}."
            out.add(
                "budget_exhausted",
                f"privacy.budget.{name}",
                f"Asset '{aid}' has {left:g} {name} left in its {budget.period_days}-day period, "
                f"shared by every licence and operator; the job needs {amount:g}.",
                asset=aid,
                subject=name,
                fix=fix,
            )


def check_group_keys(out: Reasons, req: EvaluationRequest) -> None:
    """Group keys released as a declared public domain, or selected privately (δ > 0).

    A key read from the data shows that someone has it, so a job may group by a column
    only if every asset declares the column's key domain (the release then holds every
    declared key, empty ones included), or if it spends δ > 0 on a differentially
    private selection of keys.  δ = 0 with an undeclared key is refused here.
    """
    for position, columns in enumerate(req.group_keys):
        undeclared = [
            ctx
            for ctx in req.assets
            if len(columns) != 1
            or (rule := ctx.policy.columns.get(columns[0])) is None
            or rule.keys is None
        ]
        if not undeclared or req.delta > 0:
            continue
        named = ", ".join(f"'{c}'" for c in columns) or "(no column)"
        if len(columns) == 1:
            what = f"column {named} has no declared key domain"
            declare = (
                f"Ask the holder to declare the key domain of {named} (columns.{columns[0]}.keys)"
            )
        else:
            what = f"the key reads {named}, not one column with a declared key domain"
            declare = "Group by one column with a declared key domain"
        allowed = min(ctx.policy.privacy.delta_per_job_max for ctx in req.assets)
        if allowed > 0:
            fix = f"{declare}, or ask for delta > 0 (at most {allowed:g}): keys then come "
            fix += "from a private mechanism."
        else:
            fix = f"{declare}; the asset allows no delta, so keys cannot come from the data."
        out.add(
            "undeclared_group_keys",
            f"request.group_keys[{position}]",
            f"Group key {position + 1}: {what}, and a key read from the data would show that "
            "someone has it.",
            asset=undeclared[0].facts.asset_id,
            subject=columns[0] if len(columns) == 1 else None,
            fix=fix,
        )


def check_licences(out: Reasons, req: EvaluationRequest) -> None:
    """Licence coverage, state, validity, scope, caps and the per-licence rate limit."""
    job_assets = {ctx.facts.asset_id: ctx for ctx in req.assets}
    for aid in job_assets:
        if not any(aid in lic.asset_ids for lic in req.licences):
            out.add(
                "licence_asset_not_covered",
                "licences",
                f"No licence given for this job covers asset '{aid}'.",
                asset=aid,
            )
    for lic in req.licences:
        covered = [job_assets[a] for a in lic.asset_ids if a in job_assets]
        if not covered:
            continue
        lid = lic.licence_id
        where = f"licences[{lid}]"
        if lic.status == "revoked":
            out.add("licence_revoked", f"{where}.status", f"Licence '{lid}' is revoked.")
        elif lic.status == "key_rotated":
            out.add(
                "licence_key_rotated",
                f"{where}.status",
                f"Licence '{lid}' was signed under a key its holder or operator has replaced.",
            )
        elif lic.status in ("pending", "suspended"):
            out.add("licence_not_active", f"{where}.status", f"Licence '{lid}' is {lic.status}.")
        elif lic.status != "active":
            out.add("invalid_request", f"{where}.status", f"Licence '{lid}' has no known status.")
        if req.now < lic.valid_from:
            out.add(
                "licence_not_yet_valid",
                f"{where}.valid_from",
                f"Licence '{lid}' is valid from {lic.valid_from.isoformat()}.",
            )
        if not req.now < lic.valid_until:
            out.add(
                "licence_expired",
                f"{where}.valid_until",
                f"Licence '{lid}' expired at {lic.valid_until.isoformat()}.",
            )
        if req.purpose not in lic.purposes:
            out.add(
                "licence_purpose_not_covered",
                f"{where}.purposes",
                f"Licence '{lid}' does not cover the purpose '{req.purpose}'.",
                subject=req.purpose,
            )
        if req.job_kind not in lic.job_kinds:
            out.add(
                "licence_job_kind_not_covered",
                f"{where}.job_kinds",
                f"Licence '{lid}' does not cover {req.job_kind} jobs.",
                subject=req.job_kind,
            )
        if lic.job_cap is not None and not lic.jobs_used < lic.job_cap:
            out.add(
                "licence_job_cap",
                f"{where}.job_cap",
                f"Licence '{lid}' has used {lic.jobs_used} of its {lic.job_cap} jobs.",
            )
        if lic.epsilon_cap is not None and not fits(lic.epsilon_used, req.epsilon, lic.epsilon_cap):
            left = remaining(lic.epsilon_cap, lic.epsilon_used)
            out.add(
                "licence_epsilon_cap",
                f"{where}.epsilon_cap",
                f"Licence '{lid}' has {left} epsilon left; the job needs {req.epsilon}.",
                fix=f"Lower the job's epsilon to {left} or less, or negotiate a higher cap.",
            )
        _check_rate(out, req, lid, covered)


def _check_rate(
    out: Reasons, req: EvaluationRequest, lid: str, covered: list[AssetContext]
) -> None:
    limited = [c for c in covered if c.policy.jobs.rate_limit_per_hour is not None]
    if not limited:
        return
    count = req.usage.jobs_last_hour.get(lid)
    if count is None:
        out.add(
            "missing_attribute",
            "usage.jobs_last_hour",
            f"The number of jobs run under licence '{lid}' in the last hour is not known.",
            subject=lid,
        )
        return
    for ctx in limited:
        limit = ctx.policy.jobs.rate_limit_per_hour
        if limit is None or count >= limit:
            out.add(
                "rate_limited",
                "jobs.rate_limit_per_hour",
                f"Licence '{lid}' ran {count} jobs in the last hour; asset "
                f"'{ctx.facts.asset_id}' allows {limit} per hour.",
                asset=ctx.facts.asset_id,
                subject=lid,
            )
