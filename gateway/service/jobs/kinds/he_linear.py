"""``he_linear``: an encrypted linear model evaluated on the sites' rows.

The operator sends ``Enc(w)`` and ``Enc(vec(w wᵀ))``; each site forms the sufficient
statistics ``n, Σx, Σxy, ΣxxT, Σy²`` of its clipped, bounded rows in its sandbox and
returns only ``Enc(Σ w·x)``, ``Enc(Σ (y - w·x)²)`` and ``Enc(n)``.  The gateway adds them
across sites and adds the encrypted equivalent of Laplace noise on the statistics
(``w·N_x``, ``vec(wwᵀ)·vec(N_G) - 2w·N_xy + N_yy``, ``N_n``; each block with its own L1
sensitivity), so the released numbers are a function of noised statistics whatever
weights were sent: the guarantee does not rest on the unseen model.
"""

from __future__ import annotations

import json
import math
from typing import Any

from gateway.domain import Job
from gateway.service.jobs.kind import SiteResult
from gateway.service.jobs.kinds.he_common import (
    MARGIN,
    HeKind,
    HePlan,
    charge,
    deny,
    release_threshold,
    slots,
)
from policies import Decision

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

    def program(self, job: Job, plan: HePlan) -> dict[str, Any]:
        program = plan.site_program()
        program["weights"], program["weights_outer"] = self.weights(job)
        return program

    def combine(self, job: Job, plan: HePlan, results: list[SiteResult]) -> dict[str, Any]:
        assert plan.label is not None
        parts = self.parts(results, 1)
        c, k = plan.max_rows_per_unit, plan.min_group_size
        # The count of people that gates the release has its own fixed share of ε; the five
        # blocks of statistics split the rest.
        people_share = plan.epsilon * plan.threshold_share * (1 - MARGIN)
        share = plan.epsilon * (1 - plan.threshold_share) / 5 * (1 - MARGIN)
        total = sum(sum(site) for site in parts.units)
        people = self.noise.laplace([total], sensitivity=1, epsilon=people_share, integer=True)
        charges = [charge("people", "laplace", 1, people.scale, people.epsilon)]
        threshold = release_threshold(k, people.scale)
        base = {
            "columns": [],
            "rows": [],
            "delta_spent": 0.0,
            "threshold": threshold,
            "key_release": "no_group_keys",
        }
        if people.values[0] < threshold:
            return {
                **base,
                "epsilon_spent": people.epsilon,
                "he": {"kind": plan.kind, "suppressed": True, "charges": charges},
            }
        mags = [f.magnitude for f in plan.features]
        d, by = len(mags), plan.label.magnitude
        blocks = {
            "n": (1, float(c)),
            "x": (d, c * math.fsum(mags)),
            "xy": (d, c * by * math.fsum(mags)),
            "gram": (d * d, c * math.fsum(mags) ** 2),
            "yy": (1, c * by * by),
        }
        noise: dict[str, Any] = {}
        for name, (size, sensitivity) in blocks.items():
            if sensitivity == 0:
                noise[name] = [0.0] * size
                continue
            drawn = self.noise.laplace(
                [0.0] * size, sensitivity=sensitivity, epsilon=share, integer=False
            )
            noise[name] = list(drawn.values)
            charges.append(charge(name, "laplace", sensitivity, drawn.scale, drawn.epsilon))
        noise["n"], noise["yy"] = noise["n"][0], noise["yy"][0]
        sent = json.loads(results[0].step.request.program)  # the weights, read once per run
        combined = self.run_combine(
            plan,
            {
                "op": "combine_linear",
                "features": d,
                "parts": parts.ciphertexts,
                "noise": noise,
                "weights": sent["weights"],
                "weights_outer": sent["weights_outer"],
            },
        )
        return {
            **base,
            "epsilon_spent": math.fsum(ch["epsilon"] for ch in charges),
            "he": {
                "kind": plan.kind,
                "context_sha256": plan.context,
                "suppressed": False,
                "people": int(people.values[0]),
                "features": [f.name for f in plan.features],
                "label": plan.label.name,
                "ciphertexts": combined,
                "layout": {
                    "score_sum": "ckks slot 0: Σ w·x over rows",
                    "squared_residual_sum": "ckks slot 0: Σ (y - w·x)² over rows",
                    "rows": "ckks slot 0: number of rows",
                },
                "charges": charges,
            },
        }
