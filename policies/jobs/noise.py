"""Differentially private release of combined groups: thresholds, OpenDP noise, accounting.

Inputs: the plan, the exact combined groups and the policy's parameters: ``epsilon``
for the whole job, ``delta``, the minimum group size ``k`` (distinct units), the
contribution bound ``c`` (rows per unit) and clip bounds ``[lo, hi]`` per column.

**Noisy quantities and the epsilon split.** The release is built from a fixed list of
noisy *quantities*, each a vector over the released groups: the distinct-unit counts
(``__units``, always present: they decide which groups are released) and every partial
the outputs need (counts, sums, sums of squares; shared partials such as the SUM behind
both ``SUM(x)`` and ``AVG(x)`` are one quantity). Epsilon is split *equally* over the
quantities (``epsilon / n`` each, minus a rounding margin), so by sequential composition
the job spends at most ``epsilon``. Each quantity's noise is Laplace from OpenDP,
calibrated to its L1 sensitivity under adding or removing one person, who owns at most
``c`` rows after contribution bounding (per site; over the whole job this relies on the
sites holding disjoint persons, see :mod:`policies.jobs.combine`):

=====================  ====================  ==========================================
quantity               sensitivity (L1)      mechanism
=====================  ====================  ==========================================
``__units``            ``c`` (≤ c groups,    ``make_laplace_threshold`` (grouped, δ > 0)
                       1 each)               or discrete ``make_laplace``
COUNT(*), COUNT(expr)  ``c``                 discrete Laplace (``make_laplace``, int)
SUM(clip(v))           ``c·max(|lo|,|hi|)``  Laplace (``make_laplace``, float)
SUM(clip(v)²)          ``c·max(lo², hi²)``   Laplace (``make_laplace``, float)
=====================  ====================  ==========================================

Derived outputs are post-processing: ``AVG = noisy sum / max(noisy count, 1)`` clamped
to ``[lo, hi]``; ``VAR``/``STDDEV`` from the noisy count, sum and sum of squares,
clamped to ``[0, (hi - lo)²/4 · n/(n-1)]`` (sample) or ``[0, (hi - lo)²/4]``
(population); counts are clamped at 0. A cell reports the scales of the quantities it
is computed from and the sum of their epsilons; the job's ``epsilon_spent`` counts each
quantity once.

**Which groups are released.** Releasing a group reveals that its key occurs in the
data. A group is released iff its *noisy* distinct-unit count reaches the threshold; the
released ``COUNT(DISTINCT unit)`` is that same noisy count. With group keys and
``delta > 0`` this is OpenDP's stability-histogram style ``make_laplace_threshold``: the
threshold is the smallest integer ``>= k`` whose delta (from OpenDP's privacy map, for a
person in up to ``c`` groups) is at most the job's ``delta``, so the set of released keys
is (epsilon, delta)-DP without assuming anything about the key domain. With
``delta == 0`` no mechanism can hide the presence of a key that only the data reveals;
then the release rule is the same (noisy count ``>= k``, pure Laplace) and the guarantee
holds *only if the group keys are treated as public* (e.g. the list of districts is
known): ``key_release`` is ``"public_keys_assumed"`` so the caller can refuse or record
it. Without group keys the single group always exists and the rule is post-processing
(``"no_group_keys"``). No exact ``>= k`` floor is applied on top: it would make one
person decide a group's release with certainty and break the guarantee; a group under
``k`` units is released only with the small probability the noise allows.

``suppressed_groups`` (groups present in the data but not released) is exact and *not*
covered by the guarantee: it reveals how many keys occur in the data. It is meant for
the trace and the holder; release it to an operator only where the key domain is public.

MIN and MAX have no bounded-sensitivity Laplace release here: they are refused with
``min_max_not_private`` unless the caller passes ``unsafe_allow_min_max`` (the policy's
explicit permission), in which case the clipped exact extremes are released, logged as a
warning, with no epsilon attributed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from policies import ClipBounds, EffectiveParameters
from policies.jobs.combine import CombinedGroup, variance_from
from policies.jobs.errors import Refusal, ReleaseError
from policies.jobs.mechanisms import NoiseSource, OpenDPNoise
from policies.jobs.rewrite import UNITS, PartialPlan, PlannedOutput

log = logging.getLogger(__name__)

KeyRelease = Literal["no_group_keys", "stability_histogram", "public_keys_assumed"]
_ROUNDING_MARGIN: Final = 1e-9
_NOISY_KINDS: Final = frozenset({"count", "sum", "sum_squares"})


@dataclass(frozen=True, slots=True)
class Cell:
    """One released value.

    ``mechanism`` is ``"laplace"`` for values computed from OpenDP Laplace noise,
    ``None`` for group keys (released by the threshold on ``__units``, charged there)
    and for unsafely released MIN/MAX. ``scales`` maps each noisy quantity behind the
    value (``units``, ``count``, ``sum``, ``sum_squares``) to its Laplace scale;
    ``epsilon`` is the sum of their epsilons.
    """

    value: Any
    mechanism: str | None
    scales: Mapping[str, float] = field(default_factory=dict)
    epsilon: float = 0.0

    @property
    def scale(self) -> float | None:
        """The scale of the single quantity behind the value, if there is one."""
        return next(iter(self.scales.values())) if len(self.scales) == 1 else None


@dataclass(frozen=True, slots=True)
class Charge:
    """The privacy cost of one noisy quantity."""

    quantity: str
    kind: str
    sensitivity: float
    scale: float
    epsilon: float
    delta: float
    mechanism: str


@dataclass(frozen=True, slots=True)
class Release:
    """What may leave the gateway, and what it cost."""

    columns: tuple[str, ...]
    rows: tuple[Mapping[str, Cell], ...]
    epsilon_spent: float
    delta_spent: float
    suppressed_groups: int
    threshold: int
    key_release: KeyRelease
    charges: tuple[Charge, ...]

    def values(self) -> list[dict[str, Any]]:
        """The released rows as plain values."""
        return [{name: row[name].value for name in self.columns} for row in self.rows]


def _sensitivity(kind: str, bounds: ClipBounds | None, c: int) -> float:
    if kind == "count":
        return float(c)
    if bounds is None:
        raise ValueError(f"a {kind} partial has no clip bounds")
    if kind == "sum":
        return c * max(abs(bounds.lower), abs(bounds.upper))
    return c * max(bounds.lower**2, bounds.upper**2)


def _refuse_min_max(plan: PartialPlan) -> None:
    names = [o.name for o in plan.outputs if o.function in ("min", "max")]
    raise ReleaseError(
        [
            Refusal(
                "min_max_not_private",
                name,
                "MIN and MAX cannot be released with differential privacy here: one person "
                "can move them all the way to the clip bound.",
                "Drop MIN/MAX, or have the policy explicitly allow their release.",
            )
            for name in names
        ]
    )


def release(
    plan: PartialPlan,
    groups: Sequence[CombinedGroup],
    params: EffectiveParameters,
    *,
    noise: NoiseSource | None = None,
    unsafe_allow_min_max: bool = False,
) -> Release:
    """Threshold, noise and account for ``groups``; see the module documentation."""
    if any(o.function in ("min", "max") for o in plan.outputs):
        if not unsafe_allow_min_max:
            _refuse_min_max(plan)
        log.warning("releasing exact clipped MIN/MAX of asset %s without noise", plan.asset_id)
    source = noise if noise is not None else OpenDPNoise()
    c, k = params.max_rows_per_unit, params.min_group_size
    quantities = [p for p in plan.partials if p.kind in _NOISY_KINDS]
    share = params.epsilon / (1 + len(quantities)) * (1 - _ROUNDING_MARGIN)

    ids = [str(i) for i in range(len(groups))]
    keyed = bool(plan.keys)
    key_release: KeyRelease
    if keyed and params.delta > 0:
        thresholded = source.laplace_threshold(
            {i: g.units for i, g in zip(ids, groups, strict=True)},
            contributions=c,
            epsilon=share,
            delta=params.delta,
            min_threshold=k,
        )
        noisy_units = {int(i): v for i, v in thresholded.values.items()}
        threshold, key_release = thresholded.threshold, "stability_histogram"
        units_charge = Charge(
            UNITS,
            "units",
            float(c),
            thresholded.scale,
            thresholded.epsilon,
            thresholded.delta,
            "laplace_threshold",
        )
    else:
        noised = source.laplace(
            [g.units for g in groups], sensitivity=c, epsilon=share, integer=True
        )
        noisy_units = {i: int(v) for i, v in enumerate(noised.values) if v >= k}
        threshold = k
        key_release = "public_keys_assumed" if keyed else "no_group_keys"
        units_charge = Charge(
            UNITS, "units", float(c), noised.scale, noised.epsilon, 0.0, "laplace"
        )

    released = sorted(noisy_units)
    charges = [units_charge]
    noisy: dict[str, list[float]] = {UNITS: [float(noisy_units[i]) for i in released]}
    for partial in quantities:
        sensitivity = _sensitivity(partial.kind, partial.bounds, c)
        exact = [float(groups[i].partials[partial.name] or 0) for i in released]
        result = source.laplace(
            exact, sensitivity=sensitivity, epsilon=share, integer=partial.kind == "count"
        )
        noisy[partial.name] = list(result.values)
        charges.append(
            Charge(
                partial.name,
                partial.kind,
                sensitivity,
                result.scale,
                result.epsilon,
                0.0,
                "laplace",
            )
        )
    by_name = {charge.quantity: charge for charge in charges}
    rows = tuple(
        {o.name: _cell(o, groups[index], position, noisy, by_name) for o in plan.outputs}
        for position, index in enumerate(released)
    )
    return Release(
        columns=tuple(o.name for o in plan.outputs),
        rows=rows,
        epsilon_spent=math.fsum(charge.epsilon for charge in charges),
        delta_spent=math.fsum(charge.delta for charge in charges),
        suppressed_groups=len(groups) - len(released),
        threshold=threshold,
        key_release=key_release,
        charges=tuple(charges),
    )


def _cell(
    output: PlannedOutput,
    group: CombinedGroup,
    position: int,
    noisy: Mapping[str, list[float]],
    charges: Mapping[str, Charge],
) -> Cell:
    if output.kind == "group_key":
        assert output.key is not None
        return Cell(group.key[output.key], None)
    function = output.function
    roles: dict[str, str] = dict(output.partials)
    if function in ("min", "max"):
        return Cell(group.values[output.name], None)
    used: dict[str, Charge] = {role: charges[name] for role, name in roles.items()}
    scales: dict[str, float] = {role: charge.scale for role, charge in used.items()}
    epsilon = math.fsum(charge.epsilon for charge in used.values())

    def value(role: str) -> float:
        return noisy[roles[role]][position]

    result: Any
    if function in ("count", "count_units"):
        result = max(0, round(value("count" if function == "count" else "units")))
    elif function == "sum":
        result = value("sum")
    else:
        bounds = output.bounds
        assert bounds is not None
        lo, hi = bounds.lower, bounds.upper
        n = max(value("count"), 0.0)
        if function == "avg":
            result = min(max(value("sum") / max(n, 1.0), lo), hi)
        else:
            result = _noisy_variance(function or "", n, value("sum"), value("sum_squares"), lo, hi)
    return Cell(result, "laplace", scales, epsilon)


def _noisy_variance(
    function: str, n: float, total: float, squares: float, lo: float, hi: float
) -> float | None:
    sample = function.endswith("_samp")
    if n < (2 if sample else 1):
        return None
    variance = variance_from(function.replace("stddev", "var"), n, total, max(squares, 0.0))
    if variance is None:
        return None
    ceiling = (hi - lo) ** 2 / 4 * (n / (n - 1) if sample else 1.0)
    variance = min(max(variance, 0.0), ceiling)
    return math.sqrt(variance) if function.startswith("stddev") else variance
