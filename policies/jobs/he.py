"""HE jobs as a site and the gateway both judge them: column uses, the plan, the noise.

An HE job is a specification, not SQL: ``he_aggregate`` sums columns per group (public key
lists), ``he_linear`` evaluates an encrypted linear model.  Both the gateway (to decide
and to combine) and each site (to decide for itself and to compute its step) derive the
same plan from the specification and the policy's parameters, with this module.

**Noise leaves the site with the data.** Each site draws its own noise (OpenDP) for its
own aggregates, calibrated as a complete release of the job's ε on its partition, and
adds it *before* encrypting: the gateway adds the sites' ciphertexts and adds no noise of
its own, so neither the gateway nor a gateway colluding with the operator learns more
than noisy totals.  The count of people that gates the release gets its fixed
``threshold_share`` of ε; the other quantities split the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.decision import EffectiveParameters
from policies.jobs.errors import Refusal
from policies.jobs.mechanisms import NoiseSource
from policies.jobs.noise import normal_key
from policies.jobs.schema import AssetSchema
from policies.request import ColumnUsage

MARGIN = 1e-9
"""Taken off every ε share, so that rounding never spends more than the job's ε."""

Use = tuple[str, ColumnUsage, str | None]


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
class HeAnalysis:
    """The column uses and group keys an HE specification implies."""

    uses: list[Use]
    names: dict[str, str]
    """Column as written -> the schema's name for it."""
    keys: list[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class HePlan:
    """What an allowed HE job computes, with the bounds its policy sets."""

    kind: str
    context: str
    unit: str
    max_rows_per_unit: int
    min_group_size: int
    epsilon: float
    threshold_share: float
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
        """The site step's program (weights and noise are added by the site)."""
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


def analyse_spec(spec: Mapping[str, Any], schema: AssetSchema) -> HeAnalysis | Refusal:
    """The column uses of an HE specification, or a refusal naming an unknown column."""
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
            return Refusal(
                "unknown_column",
                column,
                f"The asset has no column '{column}'.",
                "Name columns of the asset card.",
            )
        names[column] = found.name
    uses: list[Use] = [(names[c], "aggregate", "sum") for c in summed]
    for group in spec.get("groups", []):
        uses.append((names[group["column"]], "group_by", None))
    for condition in spec.get("where", []):
        uses.append((names[condition["column"]], "filter", None))
    keys: list[tuple[str, ...]] = [(names[g["column"]],) for g in spec.get("groups", [])]
    return HeAnalysis(list(dict.fromkeys(uses)), names, keys)


def plan_spec(
    kind: str,
    spec: Mapping[str, Any],
    analysis: HeAnalysis,
    schema: AssetSchema,
    params: EffectiveParameters,
) -> HePlan | Refusal:
    """The plan of an allowed HE job under ``params``, or a refusal."""
    names = analysis.names
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
        return Refusal(
            "clip_bounds_missing",
            missing[0],
            f"Column '{missing[0]}' has no clip bounds in the policy.",
            "Ask the holder to set clip bounds, or leave the column out.",
        )
    plan = HePlan(
        kind=kind,
        context=str(spec.get("context_sha256")),
        unit=schema.unit.name,
        max_rows_per_unit=params.max_rows_per_unit,
        min_group_size=params.min_group_size,
        epsilon=params.epsilon,
        threshold_share=params.threshold_share,
        where=[
            {"column": names[w["column"]], "op": w["op"], "value": w["value"]}
            for w in spec.get("where", [])
        ],
        columns=[b for c in spec.get("columns", []) if (b := bounded(c))],
        groups=[
            {"column": names[g["column"]], "values": g["values"]} for g in spec.get("groups", [])
        ],
        features=[b for c in spec.get("features", []) if (b := bounded(c))],
        label=bounded(spec["label"]) if spec.get("label") else None,
    )
    for group in plan.groups:
        declared = {normal_key(v) for v in params.key_domains.get(group["column"], ())}
        outside = [v for v in group["values"] if normal_key(v) not in declared]
        if outside:
            return Refusal(
                "key_outside_domain",
                group["column"],
                f"Group key {outside[0]!r} of column '{group['column']}' is not among the keys "
                "the policy declares.",
                "Name only declared keys (the asset's policy lists them).",
            )
    if params.max_groups is not None and plan.group_count > params.max_groups:
        return Refusal(
            "too_many_groups",
            f"{plan.group_count} groups",
            f"The job has {plan.group_count} groups; the policy allows {params.max_groups}.",
            "Name fewer group keys.",
        )
    return plan


# the noise a site adds before it encrypts --------------------------------------------------
@dataclass(frozen=True, slots=True)
class SiteNoise:
    """Noise one site adds to its aggregates, and what it cost."""

    program: dict[str, Any]
    """The noise the site step adds: vectors by name (integers for counts)."""
    charges: list[dict[str, Any]] = field(default_factory=list)

    @property
    def people_scale(self) -> float:
        return float(next(c["scale"] for c in self.charges if c["quantity"] == "people"))

    @property
    def epsilon(self) -> float:
        return math.fsum(float(c["epsilon"]) for c in self.charges)


def charge(
    quantity: str, mechanism: str, sensitivity: float, scale: float, epsilon: float
) -> dict[str, Any]:
    """One noisy quantity of an HE release, as results report it."""
    return {
        "quantity": quantity,
        "mechanism": mechanism,
        "sensitivity": sensitivity,
        "scale": scale,
        "epsilon": epsilon,
    }


def _shares(plan: HePlan, others: int) -> tuple[float, float]:
    people = plan.epsilon * plan.threshold_share * (1 - MARGIN)
    rest = plan.epsilon * (1 - plan.threshold_share) * (1 - MARGIN)
    return people, rest / max(others, 1)


def aggregate_noise(plan: HePlan, source: NoiseSource) -> SiteNoise:
    """``he_aggregate``: noise on the people counts (plaintext), the row counts (BFV) and the
    sums and sums of squares (CKKS), per group."""
    c, count = plan.max_rows_per_unit, plan.group_count
    people_share, share = _shares(plan, 1 + 2 * len(plan.columns))
    people = source.laplace([0] * count, sensitivity=c, epsilon=people_share, integer=True)
    counts = source.laplace([0] * count, sensitivity=c, epsilon=share, integer=True)
    charges = [
        charge("people", "laplace", c, people.scale, people.epsilon),
        charge("count", "laplace", c, counts.scale, counts.epsilon),
    ]
    sums: list[float] = []
    squares: list[float] = []
    for column in plan.columns:
        m = column.magnitude
        for kind, sensitivity, out in (
            ("sum", c * m, sums),
            ("sum_of_squares", c * m * m, squares),
        ):
            if sensitivity == 0:
                out.extend([0.0] * count)
                charges.append(charge(f"{kind}:{column.name}", "none", 0, 0, 0))
                continue
            drawn = source.laplace(
                [0.0] * count, sensitivity=sensitivity, epsilon=share, integer=False
            )
            out.extend(drawn.values)
            charges.append(
                charge(f"{kind}:{column.name}", "laplace", sensitivity, drawn.scale, drawn.epsilon)
            )
    program = {
        "units": [int(v) for v in people.values],
        "counts": [int(v) for v in counts.values],
        "cells": sums + squares,
    }
    return SiteNoise(program, charges)


def linear_noise(plan: HePlan, source: NoiseSource) -> SiteNoise:
    """``he_linear``: noise on the count of people and on the sufficient statistics
    ``n, Σx, Σxy, ΣxxT, Σy²`` (each block with its own L1 sensitivity), added before the
    site evaluates the encrypted model on them."""
    assert plan.label is not None
    c = plan.max_rows_per_unit
    people_share, share = _shares(plan, 5)
    people = source.laplace([0], sensitivity=1, epsilon=people_share, integer=True)
    charges = [charge("people", "laplace", 1, people.scale, people.epsilon)]
    mags = [f.magnitude for f in plan.features]
    d, by = len(mags), plan.label.magnitude
    blocks = {
        "n": (1, float(c)),
        "x": (d, c * math.fsum(mags)),
        "xy": (d, c * by * math.fsum(mags)),
        "gram": (d * d, c * math.fsum(mags) ** 2),
        "yy": (1, c * by * by),
    }
    noise: dict[str, Any] = {"units": [int(people.values[0])]}
    for name, (size, sensitivity) in blocks.items():
        if sensitivity == 0:
            noise[name] = [0.0] * size
            continue
        drawn = source.laplace([0.0] * size, sensitivity=sensitivity, epsilon=share, integer=False)
        noise[name] = list(drawn.values)
        charges.append(charge(name, "laplace", sensitivity, drawn.scale, drawn.epsilon))
    noise["n"], noise["yy"] = noise["n"][0], noise["yy"][0]
    return SiteNoise(noise, charges)


def site_noise(plan: HePlan, source: NoiseSource) -> SiteNoise:
    """The noise a site adds for ``plan``'s kind."""
    if plan.kind == "he_aggregate":
        return aggregate_noise(plan, source)
    return linear_noise(plan, source)


def group_keys(groups: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Every combination of group keys, in slot order (the last column varies fastest)."""
    combos: list[list[Any]] = [[]]
    for group in groups:
        combos = [[*combo, value] for combo in combos for value in group["values"]]
    return combos
