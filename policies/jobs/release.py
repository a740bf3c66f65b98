"""Releasing a SQL job's aggregates from one site or from many: each site noises its own
partials, the gateway adds the noisy partials up and decides what to release.

:func:`site_release` is what a site agent does with the exact partials its sandbox
computed: it takes the declared keys (every one, empty ones included) or privately selects
keys (δ > 0), and noises the count of people and every other quantity with OpenDP,
calibrated as a complete release of the job's ε on its own partition.  So nothing exact
about a partition leaves its site.

:func:`finish` is what the gateway does with the sites' noisy partials: it adds them up
per key, compares the summed noisy count of people with a threshold whose margin covers
the sum of the sites' noises (:func:`~policies.jobs.mechanisms.sum_threshold`), and derives
the released outputs.  :func:`release` is both steps over one set of partials (the
partials of all sites combined, or one site's).

A person present in several partitions is bounded at each site and charged at each site:
their loss is at most the sum of the ε of the partitions holding them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies import EffectiveParameters
from policies.jobs.combine import CombinedGroup
from policies.jobs.errors import Refusal, ReleaseError
from policies.jobs.mechanisms import NoiseSource, OpenDPNoise, sum_threshold
from policies.jobs.noise import (
    _NOISY_KINDS,
    Charge,
    KeyRelease,
    Release,
    _cell,
    _empty,
    _refuse_min_max,
    _sensitivity,
    _withheld,
    declared_groups,
    log,
    normal_key,
    shares,
)
from policies.jobs.rewrite import UNITS, PartialPlan

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class SiteRelease:
    """What one site releases for its partition: noisy partials per key, and their cost.

    ``groups`` maps each key (normalised values) to its noisy count of people and noisy
    partials; ``charges`` has one entry per quantity (``__units`` and the partials), with
    its scale and the ε (and δ) the site spent on it.
    """

    key_release: KeyRelease
    groups: Mapping[Key, tuple[int, Mapping[str, float | None]]]
    charges: tuple[Charge, ...]
    threshold: int = 0
    """The site's own threshold for selecting keys (selected keys only)."""
    suppressed: int = 0
    """Groups in the partition that the site's selection left out (exact: for the holder,
    never for the operator)."""

    @property
    def epsilon(self) -> float:
        return math.fsum(c.epsilon for c in self.charges)

    @property
    def delta(self) -> float:
        return math.fsum(c.delta for c in self.charges)

    def scale(self, quantity: str) -> float:
        return next(c.scale for c in self.charges if c.quantity == quantity)

    def to_wire(self, plan: PartialPlan) -> tuple[tuple[str, ...], list[list[Any]], dict[str, Any]]:
        """(columns, rows, meta): the fragment's columns with noisy values, and the rest."""
        columns = plan.columns
        rows = [
            [*key, units, *(values.get(p.name) for p in plan.partials)]
            for key, (units, values) in self.groups.items()
        ]
        meta = {
            "key_release": self.key_release,
            "threshold": self.threshold,
            "suppressed": self.suppressed,
            "charges": [
                {
                    "quantity": c.quantity,
                    "kind": c.kind,
                    "sensitivity": c.sensitivity,
                    "scale": c.scale,
                    "epsilon": c.epsilon,
                    "delta": c.delta,
                    "mechanism": c.mechanism,
                }
                for c in self.charges
            ],
        }
        return columns, rows, meta

    @classmethod
    def from_wire(
        cls, plan: PartialPlan, columns: Sequence[str], rows: Sequence[Sequence[Any]], meta: Any
    ) -> SiteRelease:
        """A site's release as it came back; anything malformed raises ``ValueError``."""
        if tuple(columns) != plan.columns or not isinstance(meta, dict):
            raise ValueError("the site's release does not have the plan's shape")
        width = len(plan.keys)
        groups: dict[Key, tuple[int, dict[str, float | None]]] = {}
        for row in rows:
            if len(row) != len(columns):
                raise ValueError("a row of the site's release is not as long as its columns")
            key = tuple(normal_key(v) for v in row[:width])
            units = row[width]
            if isinstance(units, bool) or not isinstance(units, int):
                raise ValueError("a noisy count of people is not an integer")
            values = {}
            for partial, value in zip(plan.partials, row[width + 1 :], strict=True):
                if value is not None and (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not math.isfinite(value)
                ):
                    raise ValueError("a noisy partial is not a finite number")
                values[partial.name] = None if value is None else float(value)
            if key in groups:
                raise ValueError("a site released the same key twice")
            groups[key] = (units, values)
        charges = tuple(
            Charge(
                str(c["quantity"]),
                str(c["kind"]),
                float(c["sensitivity"]),
                float(c["scale"]),
                float(c["epsilon"]),
                float(c["delta"]),
                str(c["mechanism"]),
            )
            for c in meta.get("charges", [])
        )
        if not any(c.quantity == UNITS for c in charges):
            raise ValueError("the site's release does not say how it noised its people count")
        key_release = meta.get("key_release")
        if key_release not in ("declared_keys", "stability_histogram", "no_group_keys"):
            raise ValueError("the site's release names no way of releasing keys")
        return cls(
            key_release,
            groups,
            charges,
            int(meta.get("threshold", 0)),
            int(meta.get("suppressed", 0)),
        )


def site_release(
    plan: PartialPlan,
    groups: Sequence[CombinedGroup],
    params: EffectiveParameters,
    *,
    noise: NoiseSource | None = None,
    unsafe_allow_min_max: bool = False,
) -> SiteRelease:
    """One partition's exact partials, keyed and noised as a complete ε release."""
    if any(o.function in ("min", "max") for o in plan.outputs):
        if not unsafe_allow_min_max:
            _refuse_min_max(plan)
        log.warning("releasing exact clipped MIN/MAX of asset %s without noise", plan.asset_id)
    source = noise if noise is not None else OpenDPNoise()
    c, k = params.max_rows_per_unit, params.min_group_size
    units_epsilon, share = shares(plan, params)
    public = declared_groups(plan, params)
    threshold = suppressed = 0
    key_release: KeyRelease
    if public is not None:
        by_key = {tuple(normal_key(v) for v in g.key): g for g in groups}
        candidates = [
            by_key.get(tuple(normal_key(v) for v in key)) or _empty(plan, key) for key in public
        ]
        noised = source.laplace(
            [g.units for g in candidates], sensitivity=c, epsilon=units_epsilon, integer=True
        )
        units = [int(v) for v in noised.values]
        key_release = "declared_keys" if plan.keys else "no_group_keys"
        units_charge = Charge(
            UNITS, "units", float(c), noised.scale, noised.epsilon, 0.0, "laplace"
        )
    else:
        if not params.delta > 0:
            raise ReleaseError(
                [
                    Refusal(
                        "undeclared_group_keys",
                        ", ".join(k.sql for k in plan.keys),
                        "Keys read from the data can be released only by a private selection, "
                        "which needs delta > 0.",
                        "Group by columns with declared keys, or ask for delta > 0.",
                    )
                ]
            )
        thresholded = source.laplace_threshold(
            {str(i): g.units for i, g in enumerate(groups)},
            contributions=c,
            epsilon=units_epsilon,
            delta=params.delta,
            min_threshold=k,
        )
        chosen = sorted(int(i) for i in thresholded.values)
        candidates = [groups[i] for i in chosen]
        units = [int(thresholded.values[str(i)]) for i in chosen]
        threshold, key_release = thresholded.threshold, "stability_histogram"
        suppressed = len(groups) - len(chosen)
        units_charge = Charge(
            UNITS,
            "units",
            float(c),
            thresholded.scale,
            thresholded.epsilon,
            thresholded.delta,
            "laplace_threshold",
        )
    charges = [units_charge]
    values: list[dict[str, float | None]] = [{} for _ in candidates]
    for partial in plan.partials:
        if partial.kind not in _NOISY_KINDS:  # MIN/MAX with the policy's explicit permission
            for row, group in zip(values, candidates, strict=True):
                exact = group.partials.get(partial.name)
                row[partial.name] = None if exact is None else float(exact)
            continue
        sensitivity = _sensitivity(partial.kind, partial.bounds, c)
        exact_values = [float(g.partials.get(partial.name) or 0) for g in candidates]
        drawn = source.laplace(
            exact_values, sensitivity=sensitivity, epsilon=share, integer=partial.kind == "count"
        )
        for row, value in zip(values, drawn.values, strict=True):
            row[partial.name] = float(value)
        charges.append(
            Charge(
                partial.name, partial.kind, sensitivity, drawn.scale, drawn.epsilon, 0.0, "laplace"
            )
        )
    keyed = {
        tuple(normal_key(v) for v in group.key): (count, row)
        for group, count, row in zip(candidates, units, values, strict=True)
    }
    return SiteRelease(key_release, keyed, tuple(charges), threshold, suppressed)


def finish(plan: PartialPlan, sites: Sequence[SiteRelease], params: EffectiveParameters) -> Release:
    """Add the sites' noisy partials up per key and release what passes the threshold."""
    if not sites:
        raise ValueError("a release needs at least one site's partials")
    ways = {site.key_release for site in sites}
    if len(ways) != 1:
        raise ValueError("the sites released their keys in different ways")
    (key_release,) = ways
    k = params.min_group_size
    public = declared_groups(plan, params) if key_release != "stability_histogram" else None
    if public is not None:
        keys = [tuple(normal_key(v) for v in key) for key in public]
    else:
        keys = sorted({key for site in sites for key in site.groups}, key=_order)
    rows: list[tuple[Key, int, dict[str, float | None], list[SiteRelease]]] = []
    for key in keys:
        reporting = [site for site in sites if key in site.groups]
        units = sum(site.groups[key][0] for site in reporting)
        merged: dict[str, float | None] = {}
        for partial in plan.partials:
            present = [
                v for site in reporting if (v := site.groups[key][1].get(partial.name)) is not None
            ]
            if partial.kind == "min":
                merged[partial.name] = min(present) if present else None
            elif partial.kind == "max":
                merged[partial.name] = max(present) if present else None
            else:
                merged[partial.name] = math.fsum(present)
        rows.append((key, units, merged, reporting))
    every = [site.scale(UNITS) for site in sites]
    threshold = max(sum_threshold(k, every), *(site.threshold for site in sites))
    passed = [
        (key, units, merged)
        for key, units, merged, reporting in rows
        if reporting and units >= _threshold(k, reporting)
    ]
    selected = key_release == "stability_histogram"
    if selected and params.max_groups is not None and len(passed) > params.max_groups:
        raise ReleaseError(
            [
                Refusal(
                    "too_many_groups",
                    f"{len(passed)} groups",
                    f"{len(passed)} groups passed the threshold; the policy allows "
                    f"{params.max_groups}.",
                    "Group by fewer or coarser keys.",
                )
            ]
        )
    charges = _combined_charges(sites)
    by_name = {charge.quantity: charge for charge in charges}
    passed_keys = {key for key, _, _ in passed}
    noisy: dict[str, list[float]] = {UNITS: [float(units) for _, units, _ in passed]}
    for partial in plan.partials:
        noisy[partial.name] = [float(merged[partial.name] or 0.0) for _, _, merged in passed]
    position = {key: n for n, (key, _, _) in enumerate(passed)}
    shown = [key for key, *_ in rows] if public is not None else [key for key, _, _ in passed]
    merged_of = {key: merged for key, _, merged, _ in rows}
    released_rows = []
    for key in shown:
        extremes = {
            o.name: merged_of[key].get(dict(o.partials)[o.function])
            for o in plan.outputs
            if o.function in ("min", "max")
        }
        group = CombinedGroup(key=key, units=0, partials={}, values=extremes)
        released_rows.append(
            {
                o.name: (
                    _cell(o, group, position[key], noisy, by_name)
                    if key in passed_keys
                    else _withheld(o, group)
                )
                for o in plan.outputs
            }
        )
    epsilon = max(site.epsilon for site in sites)
    delta = max(site.delta for site in sites)
    return Release(
        columns=tuple(o.name for o in plan.outputs),
        rows=tuple(released_rows),
        epsilon_spent=epsilon,
        delta_spent=delta,
        suppressed_groups=len(rows) - len(passed) + sum(site.suppressed for site in sites),
        threshold=threshold,
        key_release=key_release,
        charges=tuple(charges),
    )


def _threshold(k: int, sites: Sequence[SiteRelease]) -> int:
    """The summed noisy count of people a key needs over the sites that reported it."""
    return max(sum_threshold(k, [s.scale(UNITS) for s in sites]), *(s.threshold for s in sites))


def _combined_charges(sites: Sequence[SiteRelease]) -> list[Charge]:
    """Per quantity: the scale of a single Laplace noise with the summed noises' variance
    (``sqrt(Σ bᵢ²)``) and the ε each site spent on it (every site spent it on its own
    partition)."""
    out = []
    for first in sites[0].charges:
        same = [c for site in sites for c in site.charges if c.quantity == first.quantity]
        out.append(
            Charge(
                first.quantity,
                first.kind,
                max(c.sensitivity for c in same),
                math.sqrt(math.fsum(c.scale**2 for c in same)),
                max(c.epsilon for c in same),
                max(c.delta for c in same),
                first.mechanism,
            )
        )
    return out


def _order(key: Key) -> tuple[Any, ...]:
    return tuple((0, v) if isinstance(v, int | float) else (1, str(v)) for v in key)


def release(
    plan: PartialPlan,
    groups: Sequence[CombinedGroup],
    params: EffectiveParameters,
    *,
    noise: NoiseSource | None = None,
    unsafe_allow_min_max: bool = False,
) -> Release:
    """Select keys, threshold, noise and account for one set of exact ``groups`` (all
    sites' partials combined, or one site's): :func:`site_release` then :func:`finish`."""
    site = site_release(
        plan, groups, params, noise=noise, unsafe_allow_min_max=unsafe_allow_min_max
    )
    return finish(plan, [site], params)
