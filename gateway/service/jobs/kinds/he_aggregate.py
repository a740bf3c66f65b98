"""``he_aggregate``: secure aggregation of counts, sums and sums of squares per group.

Each site encrypts, per group (the product of the public key lists the operator names),
its row count with BFV and its sums and sums of squares with CKKS under the operator's
context.  The gateway adds the sites' ciphertexts and adds OpenDP noise to them (discrete
Laplace on counts, sensitivity ``c``; Laplace on sums and sums of squares, ``c·max|bound|``
and ``c·max bound²``; ε split equally over people, counts, sums and sums of squares), and
zeroes the groups whose noisy count of people is under the release threshold.
"""

from __future__ import annotations

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

NAME = "he_aggregate"


def group_keys(groups: list[dict[str, Any]]) -> list[list[Any]]:
    """Every combination of group keys, in slot order (the last column varies fastest)."""
    combos: list[list[Any]] = [[]]
    for group in groups:
        combos = [[*combo, value] for combo in combos for value in group["values"]]
    return combos


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
        c, k, count = plan.max_rows_per_unit, plan.min_group_size, plan.group_count
        parts = self.parts(results, count)
        columns = plan.columns
        # The count of people that gates the release has its own fixed share of ε; the
        # counts, sums and sums of squares split the rest.
        people_share = plan.epsilon * plan.threshold_share * (1 - MARGIN)
        share = plan.epsilon * (1 - plan.threshold_share) / (1 + 2 * len(columns)) * (1 - MARGIN)
        totals = [sum(site[g] for site in parts.units) for g in range(count)]
        people = self.noise.laplace(totals, sensitivity=c, epsilon=people_share, integer=True)
        threshold = release_threshold(k, people.scale)
        mask = [1 if v >= threshold else 0 for v in people.values]
        counts = self.noise.laplace([0] * count, sensitivity=c, epsilon=share, integer=True)
        charges = [
            charge("people", "laplace", c, people.scale, people.epsilon),
            charge("count", "laplace", c, counts.scale, counts.epsilon),
        ]
        sums: list[float] = []
        squares: list[float] = []
        for column in columns:
            m = column.magnitude
            for kind, sensitivity, out in (
                ("sum", c * m, sums),
                ("sum_of_squares", c * m * m, squares),
            ):
                if sensitivity == 0:
                    out.extend([0.0] * count)
                    charges.append(charge(f"{kind}:{column.name}", "none", 0, 0, 0))
                    continue
                drawn = self.noise.laplace(
                    [0.0] * count, sensitivity=sensitivity, epsilon=share, integer=False
                )
                out.extend(drawn.values)
                charges.append(
                    charge(
                        f"{kind}:{column.name}", "laplace", sensitivity, drawn.scale, drawn.epsilon
                    )
                )
        cells = sums + squares
        combined = self.run_combine(
            plan,
            {
                "op": "combine_aggregate",
                "groups": count,
                "cells": len(cells),
                "parts": parts.ciphertexts,
                "mask": mask,
                "noise_counts": [int(v) for v in counts.values],
                "noise_cells": cells,
            },
        )
        released = [i for i in range(count) if mask[i]]
        return {
            "columns": [],
            "rows": [],
            "epsilon_spent": math.fsum(ch["epsilon"] for ch in charges),
            "delta_spent": 0.0,
            "threshold": threshold,
            "key_release": "declared_keys" if plan.groups else "no_group_keys",
            "he": {
                "kind": plan.kind,
                "context_sha256": plan.context,
                "groups": [g["column"] for g in plan.groups],
                "keys": group_keys(plan.groups),
                "released": released,
                "people": {str(i): int(people.values[i]) for i in released},
                "columns": [col.name for col in columns],
                "ciphertexts": combined,
                "layout": {
                    "counts": "bfv: one slot per group, in the order of keys",
                    "sums": "ckks: sums then sums of squares, column-major: "
                    "[column * groups + group]",
                },
                "charges": charges,
            },
        }
