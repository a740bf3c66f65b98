"""What the two HE kinds share: their specification, plan, site step and release threshold.

An HE job runs on ciphertexts under the **operator's own key**: the operator's public
context bundle is uploaded once (``/v1/he/contexts``) and named by its SHA-256; each site,
inside its sandbox, bounds rows per person, clips to the policy's bounds and returns
encrypted aggregates; the gateway adds them up and adds noise to the ciphertexts in its
own sandbox (:class:`~gateway.service.jobs.he_workspace.HeWorkspace`), never in its
process.

What each party learns
    *Sites* see the operator's public context and, for ``he_linear``, the encrypted
    weights; they learn nothing of the model or of other sites.  *The gateway* sees
    ciphertexts it cannot decrypt, plus each site's number of distinct people per group
    (in plaintext): the group-size threshold cannot be evaluated on ciphertexts under the
    operator's key without the operator's secret key, so the gateway compares a noisy
    total count of people with the policy's minimum (as for SQL jobs).  These counts are
    never released or traced.  *The operator* decrypts only totals over all sites, with
    differential-privacy noise the gateway added homomorphically, and only for groups
    whose noisy count of people reached the minimum.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from gateway.domain import Asset, Job
from gateway.errors import NotFound, ValidationFailed
from gateway.service.jobs.he_workspace import HeContextRefused, HeStepFailed, HeWorkspace
from gateway.service.jobs.kind import (
    Analysed,
    Draft,
    FailureCode,
    JobFailed,
    SiteResult,
    SiteStep,
    Use,
)
from gateway.service.jobs.schemas import HeJobIn
from policies import Decision, EffectiveParameters, Reason
from policies.jobs import AssetSchema, NoiseSource, OpenDPNoise, normal_key
from policies.jobs.mechanisms import targeting_threshold
from sandbox.he_format import PARAMETER_SETS
from sandbox.wire import FragmentRequest

MARGIN = 1e-9
"""Taken off every ε share, so that rounding never spends more than the job's ε."""


def release_threshold(min_group_size: int, scale: float) -> int:
    """The noisy count of people a group must reach (see :func:`targeting_threshold`)."""
    return targeting_threshold(min_group_size, scale)


def deny(code: str, message: str, fix: str, subject: str | None = None) -> Decision:
    """A denial of an HE job for a reason about its specification."""
    reason = Reason(code=code, clause="request.he", message=message, fix=fix, subject=subject)
    return Decision(allow=False, reasons=(reason,))


def charge(
    quantity: str, mechanism: str, sensitivity: float, scale: float, epsilon: float
) -> dict[str, Any]:
    """One noisy quantity of an HE release, as the result reports it."""
    return {
        "quantity": quantity,
        "mechanism": mechanism,
        "sensitivity": sensitivity,
        "scale": scale,
        "epsilon": epsilon,
    }


@dataclass(frozen=True, slots=True)
class Bounded:
    """A column that is aggregated, with the policy's clip bounds."""

    name: str
    lower: float
    upper: float

    @property
    def magnitude(self) -> float:
        return max(abs(self.lower), abs(self.upper))

    def program(self) -> dict[str, Any]:
        return {"name": self.name, "lower": self.lower, "upper": self.upper}


@dataclass(frozen=True, slots=True)
class HePlan:
    """What an allowed HE job computes, with the bounds its policy sets."""

    threshold_share: float
    """Part of ε spent on the count of people that gates the release."""
    kind: str
    context: str
    unit: str
    max_rows_per_unit: int
    min_group_size: int
    epsilon: float
    where: list[dict[str, Any]]
    columns: list[Bounded]
    groups: list[dict[str, Any]]
    features: list[Bounded]
    label: Bounded | None

    @property
    def group_count(self) -> int:
        count = 1
        for group in self.groups:
            count *= len(group["values"])
        return count

    def site_program(self) -> dict[str, Any]:
        """The site step's program (without the weights, which the kind adds)."""
        common = {
            "unit": self.unit,
            "max_rows_per_unit": self.max_rows_per_unit,
            "where": self.where,
        }
        if self.kind == "he_aggregate":
            return {
                "op": "aggregate",
                **common,
                "columns": [c.program() for c in self.columns],
                "groups": [{"name": g["column"], "values": g["values"]} for g in self.groups],
            }
        assert self.label is not None
        return {
            "op": "linear",
            **common,
            "features": [f.program() for f in self.features],
            "label": self.label.program(),
        }


@dataclass(frozen=True, slots=True)
class SiteParts:
    """The sites' answers: their ciphertexts by name, and their counts of people."""

    ciphertexts: list[dict[str, str]]
    units: list[list[int]]


class HeKind:
    """The steps both HE kinds share; subclasses combine the sites' ciphertexts."""

    name = ""

    def __init__(self, workspace: HeWorkspace, noise: NoiseSource | None = None) -> None:
        self.workspace = workspace
        self.noise = noise or OpenDPNoise()

    # submission ---------------------------------------------------------------------------
    def draft(self, body: HeJobIn) -> Draft:
        spec = {**body.spec(), **self._store_weights(body)}
        return Draft(
            kind=body.kind,
            sql="",
            spec=spec,
            delta=0.0,
            detail={
                "kind": body.kind,
                "context_sha256": body.context_sha256,
                "epsilon": body.epsilon,
            },
            request=_digested(body),
        )

    def _store_weights(self, body: HeJobIn) -> dict[str, str]:
        digests: dict[str, str] = {}
        for key, text in (("weights", body.weights), ("weights_outer", body.weights_outer)):
            if text is None:
                continue
            try:
                raw = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise ValidationFailed(f"{key} must be base64") from None
            digests[f"{key}_sha256"] = self.workspace.put_blob(raw)
        return digests

    def weights(self, job: Job) -> tuple[str, str]:
        """The encrypted weights an ``he_linear`` job was submitted with (base64)."""
        spec = job.spec or {}
        texts = []
        for key in ("weights_sha256", "weights_outer_sha256"):
            digest = spec.get(key)
            directory = self.workspace.blobs.directory(str(digest)) if digest else None
            if directory is None:
                raise NotFound("the job's encrypted weights are no longer stored")
            texts.append(base64.b64encode((directory / "data").read_bytes()).decode())
        return texts[0], texts[1]

    # decision -----------------------------------------------------------------------------
    def precheck(self, spec: dict[str, Any] | None) -> Decision | None:
        """A denial if the job's context bundle cannot serve it, else ``None``."""
        spec = spec or {}
        digest = str(spec.get("context_sha256"))
        try:
            schemes = self.workspace.describe(digest)
        except (NotFound, HeContextRefused) as exc:
            return deny(
                "he_context_unusable",
                str(exc.detail or exc.spec.message),
                "Upload the public context bundle to /v1/he/contexts first.",
            )
        return self.check_schemes(spec, schemes)

    def check_schemes(self, spec: dict[str, Any], schemes: dict[str, Any]) -> Decision | None:
        """A denial if the bundle's schemes cannot hold what ``spec`` computes."""
        raise NotImplementedError

    def analyse(self, job: Job, schema: AssetSchema) -> Analysed[dict[str, str]] | Decision:
        spec = job.spec or {}
        summed = [*spec.get("columns", []), *spec.get("features", [])]
        if spec.get("label"):
            summed.append(spec["label"])
        names: dict[str, str] = {}
        for column in [
            *summed,
            *(g["column"] for g in spec.get("groups", [])),
            *(w["column"] for w in spec.get("where", [])),
        ]:
            found = schema.column(column)
            if found is None:
                return deny(
                    "unknown_column",
                    f"The asset has no column '{column}'.",
                    "Name columns of the asset card.",
                    column,
                )
            names[column] = found.name
        uses: list[Use] = [(names[c], "aggregate", "sum") for c in summed]
        for group in spec.get("groups", []):
            uses.append((names[group["column"]], "group_by", None))
        for condition in spec.get("where", []):
            uses.append((names[condition["column"]], "filter", None))
        keys: list[tuple[str, ...]] = [(names[g["column"]],) for g in spec.get("groups", [])]
        return Analysed(list(dict.fromkeys(uses)), names, keys)

    def plan(
        self,
        job: Job,
        analysis: dict[str, str],
        schema: AssetSchema,
        params: EffectiveParameters,
    ) -> HePlan | Decision:
        spec, names = job.spec or {}, analysis
        clip = params.clip.get(schema.asset_id, {})

        def bounded(name: str) -> Bounded | None:
            bounds = clip.get(names[name])
            if bounds is None:
                return None
            return Bounded(names[name], float(bounds.lower), float(bounds.upper))

        summed = [*spec.get("columns", []), *spec.get("features", [])]
        if spec.get("label"):
            summed.append(spec["label"])
        missing = [c for c in summed if bounded(c) is None]
        if missing:
            return deny(
                "clip_bounds_missing",
                f"Column '{missing[0]}' has no clip bounds in the policy.",
                "Ask the holder to set clip bounds, or leave the column out.",
                missing[0],
            )
        plan = HePlan(
            threshold_share=params.threshold_share,
            kind=job.kind,
            context=str(spec.get("context_sha256")),
            unit=schema.unit.name,
            max_rows_per_unit=params.max_rows_per_unit,
            min_group_size=params.min_group_size,
            epsilon=params.epsilon,
            where=[
                {"column": names[w["column"]], "op": w["op"], "value": w["value"]}
                for w in spec.get("where", [])
            ],
            columns=[b for c in spec.get("columns", []) if (b := bounded(c))],
            groups=[
                {"column": names[g["column"]], "values": g["values"]}
                for g in spec.get("groups", [])
            ],
            features=[b for c in spec.get("features", []) if (b := bounded(c))],
            label=bounded(spec["label"]) if spec.get("label") else None,
        )
        for group in plan.groups:
            declared = {normal_key(v) for v in params.key_domains.get(group["column"], ())}
            outside = [v for v in group["values"] if normal_key(v) not in declared]
            if outside:
                return deny(
                    "key_outside_domain",
                    f"Group key {outside[0]!r} of column '{group['column']}' is not among the "
                    "keys the policy declares.",
                    "Name only declared keys (GET the asset's policy to see them).",
                    group["column"],
                )
        if params.max_groups is not None and plan.group_count > params.max_groups:
            return deny(
                "too_many_groups",
                f"The job has {plan.group_count} groups; the policy allows {params.max_groups}.",
                "Name fewer group keys.",
            )
        return plan

    # running ------------------------------------------------------------------------------
    def program(self, job: Job, plan: HePlan) -> dict[str, Any]:
        """What each site computes."""
        return plan.site_program()

    def site_steps(
        self, job: Job, plan: HePlan, assets: list[Asset], deadline_ms: int
    ) -> list[SiteStep]:
        bundle = self.workspace.path(plan.context)
        text = json.dumps(self.program(job, plan))
        return [
            SiteStep(
                asset,
                FragmentRequest(
                    fragment_id=f"{job.id}.{asset.id}.he",
                    job_id=job.id,
                    asset_id=asset.local_ref,
                    executor="tenseal_he",
                    program=text,
                    deadline_ms=deadline_ms,
                    input_sha256=plan.context,
                ),
                upload=bundle,
            )
            for asset in assets
        ]

    def parts(self, results: list[SiteResult], width: int) -> SiteParts:
        """The sites' ciphertexts and their counts of people (``width`` per site)."""
        ciphertexts = [{str(r[0]): str(r[1]) for r in result.table.rows} for result in results]
        units = [_units(part.pop("units", ""), width) for part in ciphertexts]
        return SiteParts(ciphertexts, units)

    def run_combine(self, plan: HePlan, program: dict[str, Any]) -> dict[str, str]:
        """One combining step in the gateway's HE sandbox."""
        try:
            return self.workspace.run(plan.context, program)
        except HeStepFailed as exc:
            raise JobFailed(FailureCode.of_combine(exc.reason)) from None


def _units(text: str, width: int) -> list[int]:
    """A site's counts of people: ``width`` non-negative integers, or the job fails."""
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if (
        not isinstance(values, list)
        or len(values) != width
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
    ):
        raise JobFailed(FailureCode.FRAGMENT_INTERNAL)
    return values


def _digested(body: HeJobIn) -> dict[str, Any]:
    """The request as the trace digests it: ciphertexts by their SHA-256 only."""
    described = body.model_dump(exclude={"weights", "weights_outer"})
    for key in ("weights", "weights_outer"):
        text = getattr(body, key)
        if text is not None:
            described[f"{key}_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return described


def slots(schemes: dict[str, Any], scheme: str) -> int:
    """How many values one ciphertext of ``scheme`` holds in the bundle (0 if absent)."""
    found = schemes.get(scheme)
    return PARAMETER_SETS[found["parameters"]].slots if found else 0
