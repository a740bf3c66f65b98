"""``he_aggregate``: secure aggregation of counts, sums and sums of squares per group.

Each site adds its own OpenDP noise to its row counts (discrete Laplace, sensitivity
``c``), sums and sums of squares (Laplace, ``c·max|bound|`` and ``c·max bound²``) and
counts of people, per group (the product of the declared key lists the operator names),
then encrypts the counts with BFV and the sums with CKKS under the operator's context.
The gateway adds the sites' ciphertexts and zeroes the groups whose summed noisy count of
people is under the release threshold.
"""

from __future__ import annotations

from typing import Any

from gateway.domain import Job
from gateway.service.jobs.kind import SiteResult
from gateway.service.jobs.kinds.he_common import HeKind, deny, slots
from policies import Decision
from policies.jobs.he import HePlan, group_keys

NAME = "he_aggregate"


class HeAggregate(HeKind):
    """The ``he_aggregate`` job kind."""

    name = NAME

    def check_schemes(self, spec: dict[str, Any], schemes: dict[str, Any]) -> Decision | None:
        groups = 1
        for group in spec.get("groups", []):
            groups *= len(group["values"])
        cells = 2 * len(spec.get("columns", [])) * groups
        if "bfv" not in schemes or (cells and "ckks" not in schemes):
            return deny(
                "he_context_unusable",
                "he_aggregate needs a BFV context (counts) and a CKKS context (sums).",
                "Create the bundle with HeKeys.create().",
            )
        if cells > slots(schemes, "ckks") or groups > slots(schemes, "bfv") // 2:
            return deny(
                "he_context_unusable",
                f"{groups} groups x {len(spec.get('columns', []))} columns do not fit one "
                "ciphertext.",
                "Name fewer group keys or columns, or use n=16384 parameters.",
            )
        return None

    def combine(self, job: Job, plan: HePlan, results: list[SiteResult]) -> dict[str, Any]:
        count = plan.group_count
        parts = self.parts(results, count)
        totals = [sum(site[g] for site in parts.units) for g in range(count)]
        threshold = self.threshold(plan, parts)
        mask = [1 if v >= threshold else 0 for v in totals]
        cells = 2 * len(plan.columns) * count
        combined = self.run_combine(
            plan,
            {
                "op": "combine_aggregate",
                "groups": count,
                "cells": cells,
                "parts": parts.ciphertexts,
                "mask": mask,
                "noise_counts": [0] * count,
                "noise_cells": [0.0] * cells,
            },
        )
        released = [i for i in range(count) if mask[i]]
        return {
            "columns": [],
            "rows": [],
            "epsilon_spent": parts.epsilon,
            "delta_spent": 0.0,
            "threshold": threshold,
            "key_release": "declared_keys" if plan.groups else "no_group_keys",
            "he": {
                "kind": plan.kind,
                "context_sha256": plan.context,
                "groups": [g["column"] for g in plan.groups],
                "keys": group_keys(plan.groups),
                "released": released,
                "people": {str(i): int(totals[i]) for i in released},
                "columns": [col.name for col in plan.columns],
                "ciphertexts": combined,
                "layout": {
                    "counts": "bfv: one slot per group, in the order of keys",
                    "sums": "ckks: sums then sums of squares, column-major: "
                    "[column * groups + group]",
                },
                "charges": parts.combined_charges(),
                "noised_at": "sites",
            },
        }
