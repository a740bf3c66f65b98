"""Noise added at each site: the summed threshold, the gateway's sum of noisy partials, and
what a site's release may look like on the wire."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from policies.jobs import CombinedGroup, analyse, combine, partial_plan
from policies.jobs.mechanisms import TARGETING_FAILURE, sum_threshold, targeting_threshold
from policies.jobs.release import SiteRelease, finish, site_release
from tests.jobs.world import SCHEMA, params

GROUPED = "SELECT district, COUNT(*) AS n, SUM(los) AS days FROM admissions GROUP BY district"
KEYS = {"district": ("north", "south", "east", "west")}


def _discrete_laplace(scale: float, width: int) -> np.ndarray:
    """The pmf of OpenDP's integer Laplace, ``P(k) ∝ exp(-|k|/scale)``, on ``-width..width``."""
    k = np.arange(-width, width + 1)
    pmf = np.exp(-np.abs(k) / scale)
    return pmf / pmf.sum()


@pytest.mark.parametrize("scales", [(2.0, 2.0), (1.0, 2.0, 4.0), (0.5,) * 10])
def test_the_summed_threshold_keeps_its_failure_probability(scales: tuple[float, ...]) -> None:
    """The exact tail of the sum of the sites' noises (by convolution) at the margin is at
    most the targeting failure; and the margin is not wasteful (a quarter of it fails)."""
    margin = sum_threshold(0, scales)
    width = 40 * int(max(scales) + 1) + margin
    total = np.array([1.0])
    for scale in scales:
        total = np.convolve(total, _discrete_laplace(scale, width))
    centre = len(total) // 2

    def tail(t: int) -> float:
        return float(total[centre + t :].sum())

    assert tail(margin) <= TARGETING_FAILURE
    assert tail(margin // 4) > TARGETING_FAILURE


def test_one_site_is_the_single_threshold_and_more_sites_need_more_margin() -> None:
    assert sum_threshold(10, [3.0]) == targeting_threshold(10, 3.0)
    margins = [sum_threshold(10, [2.0] * n) for n in (1, 2, 4, 8)]
    assert margins == sorted(margins) and len(set(margins)) == 4
    # far below the union bound's n times one site's margin
    assert sum_threshold(0, [2.0] * 8) < 8 * sum_threshold(0, [2.0]) / 2
    with pytest.raises(ValueError, match="at least one site"):
        sum_threshold(5, [])
    with pytest.raises(ValueError, match="positive and finite"):
        sum_threshold(5, [1.0, math.inf])


def _site(plan: Any, counts: dict[str, tuple[int, float]]) -> list[CombinedGroup]:
    rows = []
    for district, (people, days) in counts.items():
        row: dict[str, Any] = {plan.keys[0].name: district, "__units": people}
        for partial in plan.partials:
            row[partial.name] = people if partial.kind == "count" else days
        rows.append(row)
    return combine(plan, [rows])


SITES = [
    {"north": (400, 2000.0), "south": (300, 1500.0), "east": (2, 9.0)},
    {"north": (350, 1750.0), "south": (250, 1200.0)},
    {"north": (500, 2600.0), "east": (1, 3.0), "west": (3, 20.0)},
]


TAIL = math.log(1e9)
"""A Laplace draw lies beyond ``TAIL`` scales with probability 1e-9, and a sum of the sites'
draws beyond ``TAIL`` times its combined scale less often.  (Six standard deviations would
not do: Laplace tails are heavy, one draw passes them with probability 2e-4.)"""


def _within(value: float, truth: float, charge_scale: float) -> bool:
    """Within ``TAIL`` charged scales of the truth."""
    return abs(value - truth) <= TAIL * charge_scale


def test_the_gateway_adds_the_sites_noisy_partials_per_declared_key() -> None:
    # a large budget keeps the noise small enough that a missing or doubled site shows
    p = params(epsilon=20.0, k=20, keys=KEYS)
    plan = partial_plan(analyse(GROUPED, SCHEMA), p)
    releases = [site_release(plan, _site(plan, counts), p) for counts in SITES]
    for one in releases:
        assert one.key_release == "declared_keys"
        assert set(one.groups) == {(d,) for d in KEYS["district"]}
        assert one.epsilon == pytest.approx(20.0)
    released = finish(plan, releases, p)
    rows = {row["district"].value: {k: c.value for k, c in row.items()} for row in released.rows}
    assert set(rows) == set(KEYS["district"])
    scales = {c.kind: c.scale for c in released.charges}
    assert _within(rows["north"]["n"], 1250, scales["count"])
    assert _within(rows["south"]["days"], 2700, scales["sum"])
    assert TAIL * scales["sum"] < 1200  # south at one site is 1,200 days
    # east has 3 people and west 3 in all: both withheld, still listed
    assert rows["east"]["n"] is None and rows["west"]["n"] is None
    assert released.epsilon_spent == pytest.approx(20.0)
    units = next(c for c in released.charges if c.quantity == "__units")
    single = releases[0].scale("__units")
    assert units.scale == pytest.approx(single * math.sqrt(3))
    assert released.threshold == sum_threshold(20, [single] * 3)


def test_a_site_release_survives_the_wire_and_nothing_malformed_does() -> None:
    p = params(epsilon=1.0, k=5, keys=KEYS)
    plan = partial_plan(analyse(GROUPED, SCHEMA), p)
    release = site_release(plan, _site(plan, SITES[0]), p)
    columns, rows, meta = release.to_wire(plan)
    assert SiteRelease.from_wire(plan, columns, rows, meta) == release
    bad: list[tuple[Any, Any, Any]] = [
        (columns[::-1], rows, meta),
        (columns, [*rows, rows[0]], meta),
        (columns, [[*rows[0][:1], 1.5, *rows[0][2:]]], meta),
        (columns, [[*rows[0][:-1], math.nan]], meta),
        (columns, [rows[0][:-1]], meta),
        (columns, rows, {**meta, "charges": []}),
        (columns, rows, {**meta, "key_release": "exact"}),
        (columns, rows, "not a mapping"),
    ]
    for wire_columns, wire_rows, wire_meta in bad:
        with pytest.raises((ValueError, KeyError, TypeError)):
            SiteRelease.from_wire(plan, wire_columns, wire_rows, wire_meta)


def test_sites_that_released_keys_differently_are_not_combined() -> None:
    declared = params(epsilon=1.0, k=5, keys=KEYS)
    selected = params(epsilon=1.0, k=5, delta=1e-6)
    plan = partial_plan(analyse(GROUPED, SCHEMA), declared)
    one = site_release(plan, _site(plan, SITES[0]), declared)
    other = site_release(plan, _site(plan, SITES[1]), selected)
    assert other.key_release == "stability_histogram"
    with pytest.raises(ValueError, match="different ways"):
        finish(plan, [one, other], declared)
