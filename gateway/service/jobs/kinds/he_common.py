"""What the two HE kinds share at the gateway: submission, decision, site steps and the
threshold on the sites' noisy counts of people.

An HE job runs on ciphertexts under the **operator's own key**: the operator's public
context bundle is uploaded once (``/v1/he/contexts``) and named by its SHA-256.  Each
site, inside its sandbox, bounds rows per person, clips to its policy's bounds, adds its
own OpenDP noise (:mod:`policies.jobs.he`) and only then encrypts; the gateway adds the
sites' ciphertexts in its own sandbox (:class:`~gateway.service.jobs.he_workspace.
HeWorkspace`), never in its process, and adds no noise of its own.

What each party learns
    *Sites* see the operator's public context and, for ``he_linear``, the encrypted
    weights; they learn nothing of the model or of other sites.  *The gateway* sees
    ciphertexts it cannot decrypt and each site's *noisy* count of people per group (it
    needs them to decide which groups pass the release threshold): nothing exact about
    any partition.  *The operator* decrypts only totals over all sites, each site's share
    noised at the site, and only for groups whose summed noisy count of people passed
    the threshold.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
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
)
from gateway.service.jobs.schemas import HeJobIn
from policies import Decision, EffectiveParameters, Reason
from policies.jobs import AssetSchema
from policies.jobs.errors import Refusal
from policies.jobs.he import HeAnalysis, HePlan, analyse_spec, plan_spec
from policies.jobs.mechanisms import sum_threshold, targeting_threshold
from sandbox.he_format import PARAMETER_SETS
from sandbox.wire import HeldOutcome


def release_threshold(min_group_size: int, scale: float) -> int:
    """The noisy count of people a group must reach (one site; see
    :func:`~policies.jobs.mechanisms.targeting_threshold`)."""
    return targeting_threshold(min_group_size, scale)


def deny(code: str, message: str, fix: str, subject: str | None = None) -> Decision:
    """A denial of an HE job for a reason about its specification."""
    reason = Reason(code=code, clause="request.he", message=message, fix=fix, subject=subject)
    return Decision(allow=False, reasons=(reason,))


def _denial(refusal: Refusal) -> Decision:
    return deny(refusal.code, refusal.message, refusal.fix, refusal.construct or None)


@dataclass(frozen=True, slots=True)
class SiteParts:
    """The sites' answers: ciphertexts by name, noisy counts of people, how each noised."""

    ciphertexts: list[dict[str, str]]
    units: list[list[int]]
    charges: list[list[dict[str, Any]]]

    def people_scales(self) -> list[float]:
        return [
            float(next(c["scale"] for c in site if c["quantity"] == "people"))
            for site in self.charges
        ]

    def combined_charges(self) -> list[dict[str, Any]]:
        """Per quantity, the scale of one Laplace noise with the summed noises' variance,
        and the ε each site spent on it (each on its own partition)."""
        out = []
        for first in self.charges[0]:
            same = [c for site in self.charges for c in site if c["quantity"] == first["quantity"]]
            out.append(
                {
                    **first,
                    "scale": math.sqrt(math.fsum(float(c["scale"]) ** 2 for c in same)),
                    "epsilon": max(float(c["epsilon"]) for c in same),
                    "sites": len(same),
                }
            )
        return out

    @property
    def epsilon(self) -> float:
        return max(math.fsum(float(c["epsilon"]) for c in site) for site in self.charges)


class HeKind:
    """The steps both HE kinds share; subclasses combine the sites' ciphertexts."""

    name = ""

    def __init__(self, workspace: HeWorkspace) -> None:
        self.workspace = workspace

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

    def weights(self, job: Job) -> dict[str, str]:
        """The encrypted weights an ``he_linear`` job was submitted with (base64, by name)."""
        spec = job.spec or {}
        texts = {}
        for key in ("weights", "weights_outer"):
            digest = spec.get(f"{key}_sha256")
            directory = self.workspace.blobs.directory(str(digest)) if digest else None
            if directory is None:
                raise NotFound("the job's encrypted weights are no longer stored")
            texts[key] = base64.b64encode((directory / "data").read_bytes()).decode()
        return texts

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

    def analyse(self, job: Job, schema: AssetSchema) -> Analysed[HeAnalysis] | Decision:
        found = analyse_spec(job.spec or {}, schema)
        if isinstance(found, Refusal):
            return _denial(found)
        return Analysed(found.uses, found, found.keys)

    def plan(
        self, job: Job, analysis: HeAnalysis, schema: AssetSchema, params: EffectiveParameters
    ) -> HePlan | Decision:
        planned = plan_spec(job.kind, job.spec or {}, analysis, schema, params)
        return _denial(planned) if isinstance(planned, Refusal) else planned

    # running ------------------------------------------------------------------------------
    def attachments(self, job: Job) -> dict[str, str]:
        """Inputs the job carries to each site besides its specification."""
        return {}

    def site_steps(self, job: Job, plan: HePlan, assets: list[Asset]) -> list[SiteStep]:
        bundle = self.workspace.path(plan.context)
        attachments = self.attachments(job)
        return [
            SiteStep(asset, attachments, upload=bundle, input_sha256=plan.context)
            for asset in assets
        ]

    def reviewed(self, job: Job, answers: list[tuple[Asset, HeldOutcome]]) -> dict[str, Any] | None:
        raise JobFailed(FailureCode.INTERNAL)  # HE results are never held for review

    def parts(self, results: list[SiteResult], width: int) -> SiteParts:
        """The sites' ciphertexts, their noisy counts of people (``width`` per site) and
        how each site noised its step."""
        ciphertexts = [{str(r[0]): str(r[1]) for r in result.table.rows} for result in results]
        units = [_units(part.pop("units", ""), width) for part in ciphertexts]
        charges = [_charges(result.release) for result in results]
        return SiteParts(ciphertexts, units, charges)

    def threshold(self, plan: HePlan, parts: SiteParts) -> int:
        """The summed noisy count of people a group must reach: ``k`` plus a margin that
        covers the sum of the sites' noises."""
        return sum_threshold(plan.min_group_size, parts.people_scales())

    def run_combine(self, plan: HePlan, program: dict[str, Any]) -> dict[str, str]:
        """One combining step in the gateway's HE sandbox."""
        try:
            return self.workspace.run(plan.context, program)
        except HeStepFailed as exc:
            raise JobFailed(FailureCode.of_combine(exc.reason)) from None


def _units(text: str, width: int) -> list[int]:
    """A site's noisy counts of people: ``width`` integers, or the job fails."""
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if (
        not isinstance(values, list)
        or len(values) != width
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ):
        raise JobFailed(FailureCode.FRAGMENT_INTERNAL)
    return values


def _charges(release: str) -> list[dict[str, Any]]:
    """How a site noised its step (from its release), or the job fails."""
    try:
        charges = json.loads(release)["he"]["charges"]
    except (ValueError, KeyError, TypeError):
        raise JobFailed(FailureCode.FRAGMENT_INTERNAL) from None
    if not isinstance(charges, list) or not any(
        isinstance(c, dict) and c.get("quantity") == "people" for c in charges
    ):
        raise JobFailed(FailureCode.FRAGMENT_INTERNAL)
    return charges


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
