"""The decision function: a job description in, an allow/deny decision with reasons out.

Evaluation is total and fails closed: malformed input, a missing fact, an empty rule
set or any exception yields a denial with a reason, never an allow and never an
exception to the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from pydantic import ValidationError

from policies.checks import check_asset, check_group_keys, check_licences
from policies.columns import UNBOUNDED_OK, check_column_use
from policies.combine import combine
from policies.decision import Decision, EffectiveParameters, Reason
from policies.errors import render_path
from policies.model import APPROVAL_RANK, ClipBounds, KeyValue
from policies.python import KIND, PythonGrant, approval_for, grant
from policies.reasons import REASONS, Reasons
from policies.request import EvaluationRequest

_MAX_INPUT_REASONS: Final = 20


def _deny(reasons: tuple[Reason, ...], versions: Mapping[str, int]) -> Decision:
    try:
        return Decision(allow=False, reasons=reasons, policy_versions=dict(versions))
    except Exception:
        return Decision(allow=False, reasons=(_failure("The decision could not be recorded."),))


def _failure(message: str) -> Reason:
    return Reason(
        code="evaluation_error",
        clause="request",
        message=message,
        fix=REASONS["evaluation_error"].fix,
    )


def _input_reasons(exc: ValidationError) -> tuple[Reason, ...]:
    """One reason per validation error: missing fields versus malformed ones."""
    out = Reasons()
    for error in exc.errors(include_url=False, include_input=False)[:_MAX_INPUT_REASONS]:
        where = render_path(tuple(p for p in error["loc"] if isinstance(p, str | int)))
        clause = f"request.{where}" if where and not where.startswith("[") else f"request{where}"
        if error["type"] == "missing":
            out.add("missing_attribute", clause, f"{clause} is missing.")
        else:
            out.add("invalid_request", clause, f"{clause}: {error['msg']}.")
    return out.items() or (_failure("The job description is not valid."),)


def _collect(req: EvaluationRequest) -> Reasons:
    out = Reasons()
    if not req.assets:
        out.add("empty_policy", "request.assets", "The job reads no asset, so no policy allows it.")
        return out
    contexts = {ctx.facts.asset_id: ctx for ctx in req.assets}
    if len(contexts) != len(req.assets):
        out.add("invalid_request", "request.assets", "An asset is listed more than once.")
    for ctx in req.assets:
        check_asset(out, ctx, req)
    check_licences(out, req)
    for index, use in enumerate(req.column_uses):
        check_column_use(out, index, use, req, contexts)
    check_group_keys(out, req)
    _check_declared_groups(out, req)
    return out


def _declared_domains(req: EvaluationRequest) -> dict[str, tuple[KeyValue, ...]]:
    """Each group-key column's declared keys, kept only if every asset declares them."""
    domains: dict[str, tuple[KeyValue, ...]] = {}
    for columns in req.group_keys:
        if len(columns) != 1:
            return {}
        column = columns[0]
        keys: tuple[KeyValue, ...] | None = None
        for ctx in req.assets:
            rule = ctx.policy.columns.get(column)
            if rule is None or rule.keys is None:
                return {}
            declared = rule.keys.keys()
            keys = declared if keys is None else tuple(k for k in keys if k in set(declared))
        domains[column] = keys or ()
    return domains


def _check_declared_groups(out: Reasons, req: EvaluationRequest) -> None:
    domains = _declared_domains(req)
    if not domains:
        return
    groups = math.prod(len(domains[c[0]]) for c in req.group_keys)
    limit = combine([ctx.policy for ctx in req.assets]).max_groups
    if limit is not None and groups > limit:
        out.add(
            "too_many_groups",
            "jobs.max_groups",
            f"The declared keys of the job's group columns make {groups} groups; the policy "
            f"allows {limit}.",
            fix="Group by fewer columns, or ask the holder for a coarser key domain.",
        )


def _parameters(req: EvaluationRequest) -> EffectiveParameters:
    rules = combine([ctx.policy for ctx in req.assets])
    contexts = {ctx.facts.asset_id: ctx for ctx in req.assets}
    clip: dict[str, dict[str, ClipBounds]] = {}
    for use in req.column_uses:
        if use.usage == "aggregate" and use.function not in UNBOUNDED_OK:
            bounds = contexts[use.asset].policy.columns[use.column].clip
            if bounds is None:
                raise ValueError(f"no clip bounds for {use.asset}.{use.column}")
            clip.setdefault(use.asset, {})[use.column] = bounds
    units: dict[str, str] = {}
    for aid, ctx in contexts.items():
        if ctx.facts.privacy_unit is None:
            raise ValueError(f"no privacy unit for {aid}")
        units[aid] = ctx.facts.privacy_unit
    domains = _declared_domains(req)
    approvals = {aid: ctx.policy.jobs.approval for aid, ctx in contexts.items()}
    python: dict[str, PythonGrant] = {}
    mode = rules.approval_mode
    if req.job_kind == KIND:
        facts = req.python
        if facts is None:
            raise ValueError("a Python job without its code")
        for aid, ctx in contexts.items():
            if ctx.policy.python is None:
                raise ValueError(f"no python rules for {aid}")
            python[aid] = grant(ctx.policy.python, facts)
            approvals[aid] = approval_for(approvals[aid], python[aid])
        mode = max((a.mode for a in approvals.values()), key=APPROVAL_RANK.__getitem__)
    return EffectiveParameters(
        key_domains=domains,
        keys_declared=bool(domains) or not req.group_keys,
        threshold_share=max(ctx.policy.privacy.threshold_share for ctx in req.assets),
        max_noisy_quantities=min(ctx.policy.privacy.max_noisy_quantities for ctx in req.assets),
        job_kind=req.job_kind,
        epsilon=req.epsilon,
        delta=req.delta,
        min_group_size=max(rules.min_group_size, req.min_group_size or 0),
        max_rows_per_unit=rules.max_rows_per_unit,
        max_groups=rules.max_groups,
        clip=clip,
        privacy_units=units,
        approval_mode=mode,
        approvals=approvals,
        python=python,
        approval_expires_after_hours=rules.approval_expires_after_hours,
    )


def evaluate(request: EvaluationRequest | Mapping[str, Any]) -> Decision:
    """Decide on a job; every reason is collected, not only the first.

    ``request`` is an :class:`EvaluationRequest` or a mapping of the same shape. The
    decision allows only when no rule of any asset's policy, licence or fact objects;
    its parameters then carry the most restrictive bounds over all assets.
    """
    versions: dict[str, int] = {}
    try:
        req = EvaluationRequest.model_validate(request)
    except ValidationError as exc:
        return _deny(_input_reasons(exc), versions)
    except Exception:
        return _deny((_failure("The job description could not be read."),), versions)
    try:
        versions = {ctx.facts.asset_id: ctx.policy_revision for ctx in req.assets}
        reasons = _collect(req)
        if reasons:
            return _deny(reasons.items(), versions)
        return Decision(allow=True, policy_versions=versions, parameters=_parameters(req))
    except Exception:
        return _deny((_failure("The job could not be evaluated."),), versions)
