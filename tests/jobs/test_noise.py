"""Release: thresholds on noisy unit counts, OpenDP Laplace noise at the right scale, accounting."""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from policies.jobs import (
    CombinedGroup,
    Noised,
    OpenDPNoise,
    PartialPlan,
    ReleaseError,
    Thresholded,
    analyse,
    combine,
    partial_plan,
    release,
)
from tests.jobs.world import SCHEMA, params

GROUPED = (
    "SELECT district, COUNT(*) AS n, SUM(los) AS days, AVG(los) AS mean FROM admissions GROUP BY 1"
)


def plan_for(sql: str, **overrides: Any) -> PartialPlan:
    return partial_plan(analyse(sql, SCHEMA), params(**overrides))


def synthetic(plan: PartialPlan, groups: Sequence[Mapping[str, Any]]) -> list[CombinedGroup]:
    """Combined groups from one site's rows given by partial kind (``count``, ``sum``...)."""
    rows = []
    for i, g in enumerate(groups):
        row: dict[str, Any] = {k.name: f"g{i}" for k in plan.keys}
        row["__units"] = g["units"]
        for partial in plan.partials:
            row[partial.name] = g.get(partial.kind, 0)
        rows.append(row)
    return combine(plan, [rows])


class ShiftNoise:
    """A deterministic stand-in: shifts values by a fixed amount per sensitivity."""

    def __init__(self, shifts: Mapping[float, float] | None = None, units: float = 0.0) -> None:
        self.shifts = shifts or {}
        self.shift = units

    def laplace(
        self, values: Sequence[float], *, sensitivity: float, epsilon: float, integer: bool
    ) -> Noised:
        shift = self.shifts.get(sensitivity, 0.0)
        return Noised(tuple(v + shift for v in values), sensitivity / epsilon, epsilon)

    def laplace_threshold(
        self,
        counts: Mapping[str, int],
        *,
        contributions: int,
        epsilon: float,
        delta: float,
        min_threshold: int,
    ) -> Thresholded:
        kept = {k: v for k, v in counts.items() if v + self.shift >= min_threshold}
        return Thresholded(kept, contributions / epsilon, epsilon, delta / 2, min_threshold)


def test_opendp_laplace_scale_matches_sensitivity_over_epsilon() -> None:
    noise = OpenDPNoise()
    draws = noise.laplace([0.0] * 20_000, sensitivity=2.0, epsilon=0.5, integer=False)
    assert draws.scale == pytest.approx(4.0)
    assert draws.epsilon <= 0.5
    mad = statistics.fmean(abs(v) for v in draws.values)
    assert mad == pytest.approx(4.0, rel=0.05)
    counts = noise.laplace([100] * 20_000, sensitivity=3, epsilon=1.0, integer=True)
    assert all(isinstance(v, int) for v in counts.values)
    assert statistics.fmean(abs(v - 100) for v in counts.values) == pytest.approx(3.0, rel=0.06)


def declared(count: int) -> dict[str, tuple[str, ...]]:
    return {"district": tuple(f"g{i}" for i in range(count))}


def test_released_counts_and_sums_have_the_calibrated_scale() -> None:
    keys = declared(3000)
    plan = plan_for(GROUPED, epsilon=1.5, delta=0.0, c=2, k=5, keys=keys)
    groups = synthetic(plan, [{"units": 1000, "count": 1000, "sum": 30_000.0}] * 3000)
    result = release(plan, groups, params(epsilon=1.5, delta=0.0, c=2, k=5, keys=keys))
    assert len(result.rows) == 3000
    assert result.key_release == "declared_keys"
    share = (
        1.5 * 0.5 / 3
    )  # half of epsilon counts people; COUNT(*), SUM and AVG's count share the rest
    count_scale, sum_scale = 2 / share, 2 * 60 / share
    row = result.rows[0]
    assert row["n"].scale == pytest.approx(count_scale, rel=1e-6)
    assert row["days"].scale == pytest.approx(sum_scale, rel=1e-6)
    assert row["n"].mechanism == row["days"].mechanism == "laplace"
    counts = [r["n"].value - 1000 for r in result.rows]
    sums = [r["days"].value - 30_000.0 for r in result.rows]
    # |Laplace(b)| is exponential, with mean and standard deviation b (the integer Laplace's
    # nearly so): over n draws the mean absolute noise is b within 6.5 standard errors
    # (b / sqrt(n), 12% here), which a wrong split of epsilon (b off by a fifth or more)
    # exceeds; the mean noise is 0 within 6 standard errors (sqrt(2)·b / sqrt(n)).
    n = len(result.rows)
    rel = 6.5 / math.sqrt(n)
    assert statistics.fmean(abs(v) for v in counts) == pytest.approx(count_scale, rel=rel)
    assert statistics.fmean(abs(v) for v in sums) == pytest.approx(sum_scale, rel=rel)
    assert abs(statistics.fmean(sums)) < 6 * math.sqrt(2) * sum_scale / math.sqrt(n)


def test_epsilon_accounting_adds_up() -> None:
    sql = (
        "SELECT district, COUNT(*) AS n, COUNT(DISTINCT patient_id) AS people, SUM(los) AS s, "
        "AVG(los) AS m, VAR_POP(los) AS v, AVG(cost) AS c FROM admissions GROUP BY 1"
    )
    plan = plan_for(sql)
    groups = synthetic(plan, [{"units": 500, "count": 500, "sum": 100.0, "sum_squares": 900.0}])
    result = release(plan, groups, params(epsilon=0.8))
    kinds = sorted(c.kind for c in result.charges)
    assert kinds == ["count", "count", "count", "sum", "sum", "sum_squares", "units"]
    assert result.epsilon_spent == pytest.approx(sum(c.epsilon for c in result.charges))
    assert 0.8 * (1 - 1e-6) <= result.epsilon_spent <= 0.8
    people, share = 0.8 * 0.5, 0.8 * 0.5 / 6  # a fixed half counts people
    row = result.rows[0]
    assert row["people"].epsilon == pytest.approx(people)
    assert row["s"].epsilon == pytest.approx(share)
    assert row["m"].epsilon == pytest.approx(2 * share)
    assert row["v"].epsilon == pytest.approx(3 * share)
    assert row["district"].mechanism is None and row["district"].epsilon == 0
    assert 0 < result.delta_spent <= 1e-6
    assert result.key_release == "stability_histogram"


def test_groups_under_the_minimum_size_are_suppressed_and_counted() -> None:
    plan = plan_for(GROUPED)
    sizes = [1, 2, 3, 4, 400, 500, 2, 600]
    groups = synthetic(plan, [{"units": s, "count": s, "sum": 10.0 * s} for s in sizes])
    result = release(plan, groups, params(epsilon=5.0, k=20, delta=1e-6))
    assert result.threshold >= 20
    assert result.suppressed_groups == 5
    assert sorted(row["n"].value for row in result.rows) == pytest.approx([400, 500, 600], abs=40)
    assert {row["district"].value for row in result.rows} == {"g4", "g5", "g7"}


def test_threshold_rises_until_delta_fits() -> None:
    plan = plan_for(GROUPED)
    groups = synthetic(plan, [{"units": 50, "count": 50}])
    loose = release(plan, groups, params(epsilon=0.5, k=5, delta=1e-2))
    tight = release(plan, groups, params(epsilon=0.5, k=5, delta=1e-12))
    assert loose.threshold < tight.threshold
    assert tight.delta_spent <= 1e-12
    assert loose.delta_spent <= 1e-2


def test_keys_are_declared_or_privately_selected_never_read_from_the_data() -> None:
    plan = plan_for(GROUPED)
    groups = synthetic(plan, [{"units": 500, "count": 500}, {"units": 400, "count": 400}])
    with pytest.raises(ReleaseError) as info:
        release(plan, groups, params(delta=0.0))
    assert info.value.codes == ("undeclared_group_keys",)
    # Declared keys: every one is released, the empty g2 and g3 too, and the undeclared
    # g1 (present in the data) never.
    keys = {"district": ("g0", "g2", "g3")}
    result = release(plan, groups, params(delta=0.0, keys=keys))
    assert result.key_release == "declared_keys"
    assert [row["district"].value for row in result.rows] == ["g0", "g2", "g3"]
    assert result.rows[0]["n"].mechanism == "laplace"
    assert {result.rows[1]["n"].mechanism, result.rows[2]["n"].mechanism} == {"suppressed"}
    assert result.delta_spent == 0
    total = plan_for("SELECT COUNT(*) AS n FROM admissions")
    (group,) = synthetic(total, [{"units": 500, "count": 500}])
    result = release(total, [group], params(delta=1e-6))
    assert result.key_release == "no_group_keys"
    assert result.delta_spent == 0
    assert result.threshold > 5  # k plus the targeting margin


def test_min_and_max_need_explicit_permission(caplog: pytest.LogCaptureFixture) -> None:
    plan = plan_for("SELECT MIN(los) AS lo, MAX(los) AS hi, COUNT(*) AS n FROM admissions")
    groups = synthetic(plan, [{"units": 500, "count": 500, "min": 1.0, "max": 60.0}])
    with pytest.raises(ReleaseError) as info:
        release(plan, groups, params())
    assert info.value.codes == ("min_max_not_private",)
    with caplog.at_level(logging.WARNING, logger="policies.jobs.noise"):
        result = release(plan, groups, params(), unsafe_allow_min_max=True)
    assert "MIN/MAX" in caplog.text
    row = result.rows[0]
    assert (row["lo"].value, row["hi"].value) == (1.0, 60.0)
    assert row["lo"].mechanism is None and row["lo"].epsilon == 0
    assert len(result.charges) == 2


def test_derived_values_are_clamped_into_their_bounds() -> None:
    sql = (
        "SELECT district, AVG(los) AS m, VAR_SAMP(los) AS v, STDDEV_POP(los) AS sd, "
        "COUNT(*) AS n FROM admissions GROUP BY district"
    )
    plan = plan_for(sql)
    groups = synthetic(plan, [{"units": 50, "count": 50, "sum": 1500.0, "sum_squares": 1e5}])
    high_sum = release(plan, groups, params(), noise=ShiftNoise({60.0: 1e7})).rows[0]
    assert high_sum["m"].value == 60.0
    assert high_sum["v"].value == 0.0
    low_sum = release(plan, groups, params(), noise=ShiftNoise({60.0: -1e7})).rows[0]
    assert low_sum["m"].value == 0.0
    spread = release(plan, groups, params(), noise=ShiftNoise({3600.0: 1e7})).rows[0]
    assert spread["v"].value == pytest.approx(60**2 / 4 * 50 / 49)
    assert spread["sd"].value == pytest.approx(30.0)
    no_count = release(plan, groups, params(), noise=ShiftNoise({1.0: -60}, units=0)).rows[0]
    assert no_count["n"].value == 0
    assert no_count["v"].value is None
    assert no_count["m"].value == 60.0
    assert release(plan, groups, params(), noise=ShiftNoise(units=-1000)).rows == ()
    exact = release(plan, groups, params(), noise=ShiftNoise()).rows[0]
    assert exact["m"].value == pytest.approx(30.0)
    assert exact["n"].value == 50
    assert set(exact["v"].scales) == {"sum", "sum_squares", "count"}


def test_an_empty_result_is_still_charged() -> None:
    plan = plan_for(GROUPED)
    result = release(plan, [], params(epsilon=0.3))
    assert result.rows == ()
    assert result.suppressed_groups == 0
    assert result.epsilon_spent == pytest.approx(0.3, rel=1e-6)
    assert result.values() == []
