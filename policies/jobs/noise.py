"""Differentially private release of combined groups: keys, thresholds, OpenDP noise.

Inputs: the plan, the exact combined groups and the policy's parameters: ``epsilon``
for the whole job, ``delta``, the minimum group size ``k`` (distinct units), the
contribution bound ``c`` (rows per unit), clip bounds ``[lo, hi]`` per column, the
declared key domains and the share of ε spent on counting people.

**Which keys are released.** Releasing a group key shows that someone has it, so keys
are never read from the data and released as they are:

* *declared keys* (``declared_keys``): when every group key is a column whose key domain
  every asset's policy declares, the release holds every combination of declared keys,
  empty ones included, and no other key (data outside the domain is left out);
* *private selection* (``stability_histogram``): otherwise the job must spend δ > 0 and
  keys are selected by OpenDP's ``make_laplace_threshold`` (a person changes at most
  ``c`` keys' counts): a key is released only if its noisy count of people reaches a
  threshold high enough for the job's δ;
* *no keys* (``no_group_keys``): the one group always exists.

**Thresholds that cannot be diluted.** The noisy count of distinct people that decides
whether a group's values are released gets a fixed share of ε (``threshold_share``,
whatever else the job asks for), and the threshold is ``k + scale·ln(10⁹)`` (at least),
so a group of fewer than ``k`` people is released with probability at most 10⁻⁹ however
many quantities the job asks for and however small its ε.  A declared key whose group
does not reach it is released with its values withheld (``suppressed``).

**Noisy quantities and the epsilon split.** The rest of ε is split *equally* over the
job's other noisy quantities (counts, sums, sums of squares; shared partials such as the
SUM behind both ``SUM(x)`` and ``AVG(x)`` are one quantity), at most
``max_noisy_quantities`` of them, so by sequential composition the job spends at most
``epsilon``. Each quantity's noise is Laplace from OpenDP, calibrated to its L1
sensitivity under adding or removing one person, who owns at most ``c`` rows after
contribution bounding (per partition):

=====================  ====================  ==========================================
quantity               sensitivity (L1)      mechanism
=====================  ====================  ==========================================
``__units``            ``c`` (≤ c groups,    discrete ``make_laplace``, or
                       1 each)               ``make_laplace_threshold`` (selected keys)
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

``suppressed_groups`` (groups not released) counts declared keys whose values were
withheld, or, for selected keys, groups present in the data but not released; the latter
is exact and *not* covered by the guarantee: it is meant for the holder, never for the
operator.

MIN and MAX have no bounded-sensitivity Laplace release here: they are refused with
``min_max_not_private`` unless the caller passes ``unsafe_allow_min_max`` (the policy's
explicit permission), in which case the clipped exact extremes are released, logged as a
warning, with no epsilon attributed.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from policies import ClipBounds, EffectiveParameters
from policies.jobs.combine import CombinedGroup, variance_from
from policies.jobs.errors import Refusal, ReleaseError
from policies.jobs.rewrite import PartialPlan, PlannedOutput

log = logging.getLogger(__name__)

KeyRelease = Literal["no_group_keys", "declared_keys", "stability_histogram"]
_ROUNDING_MARGIN: Final = 1e-9
_NOISY_KINDS: Final = frozenset({"count", "sum", "sum_squares"})
_DATE_KEY: Final = re.compile(r"^\d{4}-\d{2}-\d{2}( 00:00:00)?$")


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


def shares(plan: PartialPlan, params: EffectiveParameters) -> tuple[float, float]:
    """(ε of the count of people, ε of each other noisy quantity) for ``plan``.

    The count of people always gets ``threshold_share`` of ε; the rest is split equally
    over the other quantities.  Refuses a plan with more quantities than allowed.
    """
    quantities = [p for p in plan.partials if p.kind in _NOISY_KINDS]
    if len(quantities) > params.max_noisy_quantities:
        raise ReleaseError(
            [
                Refusal(
                    "too_many_quantities",
                    f"{len(quantities)} noisy quantities",
                    f"The job asks for {len(quantities)} noisy quantities; the policy allows "
                    f"{params.max_noisy_quantities}.",
                    "Ask for fewer aggregates in one job.",
                )
            ]
        )
    units = params.epsilon * params.threshold_share * (1 - _ROUNDING_MARGIN)
    rest = params.epsilon * (1 - params.threshold_share) * (1 - _ROUNDING_MARGIN)
    return units, (rest / len(quantities) if quantities else 0.0)


def declared_groups(plan: PartialPlan, params: EffectiveParameters) -> list[tuple[Any, ...]] | None:
    """Every declared key combination, in order, when the job's keys are declared."""
    if not plan.keys:
        return [()]
    if not params.keys_declared or not params.key_domains:
        return None
    columns = [key.column for key in plan.keys]
    if any(c is None or c not in params.key_domains for c in columns):
        return None
    return [
        tuple(combo) for combo in itertools.product(*(params.key_domains[str(c)] for c in columns))
    ]


def normal_key(value: Any) -> Any:
    """A key value as released: integral numbers as ``int``; dates (and midnight
    timestamps) as ``YYYY-MM-DD``; other text as is."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _DATE_KEY.match(value):
        return value[:10]
    return value


def _empty(plan: PartialPlan, key: tuple[Any, ...]) -> CombinedGroup:
    """A declared group no site has rows for."""
    return CombinedGroup(
        key=key, units=0, partials={p.name: None for p in plan.partials}, values={}
    )


def _withheld(output: PlannedOutput, group: CombinedGroup) -> Cell:
    """A cell of a declared group whose count of people did not reach the threshold."""
    if output.kind == "group_key":
        assert output.key is not None
        return Cell(normal_key(group.key[output.key]), None)
    return Cell(None, "suppressed")


def _cell(
    output: PlannedOutput,
    group: CombinedGroup,
    position: int,
    noisy: Mapping[str, list[float]],
    charges: Mapping[str, Charge],
) -> Cell:
    if output.kind == "group_key":
        assert output.key is not None
        return Cell(normal_key(group.key[output.key]), None)
    function = output.function
    roles: dict[str, str] = dict(output.partials)
    if function in ("min", "max"):
        return Cell(group.values.get(output.name), None)
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
