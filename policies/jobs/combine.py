"""Combining the sites' partial aggregates into exact per-group aggregates.

Every site returns, per group, the columns of :attr:`PartialPlan.columns`: group keys,
``__units`` and partial counts, sums, sums of squares, minima and maxima. Partials of the
same group key are merged across sites (counts, sums and sums of squares add up; minima
take the minimum, maxima the maximum) and each output is computed from the merged
partials: ``AVG = sum / count``, ``VAR_POP = ss/n - (s/n)^2``, ``VAR_SAMP =
(ss - s^2/n) / (n - 1)``, ``STDDEV = sqrt(VAR)``.

**Distinct units across sites.** Per-site ``__units`` counts are *summed*. That is
exact only if a privacy unit appears at one site only, i.e. the partitions of a
federated asset are disjoint by unit (one hospital's patients are not another's). The
same assumption makes the per-site contribution bound (``max_rows_per_unit``) a bound
on the whole job. If a unit can appear at several sites, unit counts are over-counted
and a unit's contribution can reach ``sites * max_rows_per_unit`` rows; such assets
need a shared pseudonymous unit and a global bound, which v1 does not provide.

The values here are exact and never leave the gateway: :func:`policies.jobs.noise.release`
turns them into what may be released.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from policies.jobs.rewrite import UNITS, PartialPlan, PlannedOutput

Number = int | float
SiteRows = Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class CombinedGroup:
    """One group over all sites: key values, distinct units, merged partials, exact outputs.

    ``partials`` maps fragment column names (``__p0``...) to merged values (``None``
    where no site had a value); ``values`` maps output names to exact aggregates, or to
    the group key value for key outputs.
    """

    key: tuple[Any, ...]
    units: int
    partials: Mapping[str, Number | None]
    values: Mapping[str, Any]


class CombineError(ValueError):
    """A site's rows do not have the shape of the plan's fragment."""


def _number(value: Any) -> Number | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise CombineError("a partial is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        return float(value)
    raise CombineError(f"a partial has type {type(value).__name__}")


def _merge(kind: str, left: Number | None, right: Number | None) -> Number | None:
    if left is None:
        return right
    if right is None:
        return left
    if kind == "min":
        return min(left, right)
    if kind == "max":
        return max(left, right)
    return left + right


def combine(plan: PartialPlan, partials: Sequence[SiteRows]) -> list[CombinedGroup]:
    """Merge the rows of every site by group key; groups come back in a stable order."""
    columns = set(plan.columns)
    kinds = {p.name: p.kind for p in plan.partials}
    merged: dict[tuple[Any, ...], tuple[int, dict[str, Number | None]]] = {}
    for site in partials:
        seen: set[tuple[Any, ...]] = set()
        for row in site:
            if set(row) != columns:
                raise CombineError("a site row does not have the fragment's columns")
            key = tuple(_hashable(row[k.name]) for k in plan.keys)
            if key in seen:
                raise CombineError("a site returned the same group twice")
            seen.add(key)
            units = row[UNITS]
            if isinstance(units, bool) or not isinstance(units, int) or units < 0:
                raise CombineError("__units is not a count")
            values = {name: _number(row[name]) for name in kinds}
            if key not in merged:
                merged[key] = (units, values)
                continue
            total, sums = merged[key]
            merged[key] = (
                total + units,
                {name: _merge(kinds[name], sums[name], values[name]) for name in kinds},
            )
    groups = [
        CombinedGroup(
            key=key,
            units=units,
            partials=sums,
            values={o.name: _exact(o, key, units, sums) for o in plan.outputs},
        )
        for key, (units, sums) in merged.items()
    ]
    groups.sort(key=lambda g: tuple(_order(v) for v in g.key))
    return groups


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value


def _order(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float | Decimal):
        return (2, float(value))
    if isinstance(value, str):
        return (3, value)
    return (4, repr(value))


def _exact(
    output: PlannedOutput,
    key: tuple[Any, ...],
    units: int,
    sums: Mapping[str, Number | None],
) -> Any:
    if output.kind == "group_key":
        assert output.key is not None
        return key[output.key]
    roles = dict(output.partials)
    function = output.function
    if function == "count_units":
        return units
    if function in ("count", "sum", "min", "max"):
        value = sums[roles[function]]
        return int(value) if function == "count" and value is not None else value
    count = sums[roles["count"]] or 0
    total = sums[roles["sum"]]
    if function == "avg":
        return None if count == 0 or total is None else total / count
    squares = sums[roles["sum_squares"]]
    return variance_from(function or "", count, total or 0.0, squares or 0.0)


def variance_from(function: str, n: float, total: float, squares: float) -> float | None:
    """VAR_*/STDDEV_* from a count, a sum and a sum of squares (``None`` if undefined)."""
    sample = function.endswith("_samp")
    if n < (2 if sample else 1):
        return None
    centred = max(0.0, squares - total * total / n)
    variance = centred / (n - 1) if sample else centred / n
    return math.sqrt(variance) if function.startswith("stddev") else variance
