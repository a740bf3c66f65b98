"""``he_linear``: an encrypted linear model evaluated on the sites' rows.

The operator sends ``Enc(w)`` and ``Enc(vec(w wᵀ))``; each site forms the sufficient
statistics ``n, Σx, Σxy, ΣxxT, Σy²`` of its clipped, bounded rows in its sandbox, adds its
own OpenDP noise to them (each block with its own L1 sensitivity) and returns only
``Enc(Σ w·x)``, ``Enc(Σ (y - w·x)²)`` and ``Enc(n)`` computed from the noised statistics.
The gateway adds them across sites.  So the released numbers are a function of noised
statistics whatever weights were sent: the guarantee does not rest on the unseen model.
"""

from __future__ import annotations

from typing import Any

from gateway.domain import Job
from gateway.service.jobs.kind import SiteResult
from gateway.service.jobs.kinds.he_common import HeKind, deny, slots
from policies import Decision
from policies.jobs.he import HePlan

NAME = "he_linear"


class HeLinear(HeKind):
    """The ``he_linear`` job kind."""

    name = NAME

    def check_schemes(self, spec: dict[str, Any], schemes: dict[str, Any]) -> Decision | None:
        d = len(spec.get("features", []))
        ckks = schemes.get("ckks")
        if ckks is None or not ckks.get("galois_keys"):
            return deny(
                "he_context_unusable",
                "he_linear needs a CKKS context with Galois keys.",
                "Create the keys with galois_keys=True.",
            )
        if d * d > slots(schemes, "ckks"):
            return deny("he_context_unusable", "Too many features.", "Use fewer features.")
        return None

    def attachments(self, job: Job) -> dict[str, str]:
        return self.weights(job)

    def combine(self, job: Job, plan: HePlan, results: list[SiteResult]) -> dict[str, Any]:
        assert plan.label is not None
        parts = self.parts(results, 1)
        total = sum(sum(site) for site in parts.units)
        threshold = self.threshold(plan, parts)
        base = {
            "columns": [],
            "rows": [],
            "delta_spent": 0.0,
            "threshold": threshold,
            "key_release": "no_group_keys",
        }
        if total < threshold:
            people = next(c for c in parts.combined_charges() if c["quantity"] == "people")
            return {
                **base,
                "epsilon_spent": float(people["epsilon"]),
                "he": {"kind": plan.kind, "suppressed": True, "charges": [people]},
            }
        weights = results[0].step.attachments
        d = len(plan.features)
        combined = self.run_combine(
            plan,
            {
                "op": "combine_linear",
                "features": d,
                "parts": parts.ciphertexts,
                "noise": {
                    "n": 0.0,
                    "x": [0.0] * d,
                    "xy": [0.0] * d,
                    "gram": [0.0] * d * d,
                    "yy": 0.0,
                },
                "weights": weights["weights"],
                "weights_outer": weights["weights_outer"],
            },
        )
        return {
            **base,
            "epsilon_spent": parts.epsilon,
            "he": {
                "kind": plan.kind,
                "context_sha256": plan.context,
                "suppressed": False,
                "people": int(total),
                "features": [f.name for f in plan.features],
                "label": plan.label.name,
                "ciphertexts": combined,
                "layout": {
                    "score_sum": "ckks slot 0: Σ w·x over rows",
                    "squared_residual_sum": "ckks slot 0: Σ (y - w·x)² over rows",
                    "rows": "ckks slot 0: number of rows",
                },
                "charges": parts.combined_charges(),
                "noised_at": "sites",
            },
        }
