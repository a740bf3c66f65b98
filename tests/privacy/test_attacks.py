"""Attacks an operator would try, each kept as a test: none learns more than ε and δ allow.

One person is planted in a group of their own; the attacker compares what is released
when they are in the data with what is released when they are not.  The release runs
with real OpenDP noise, many times over (fixed seeds are not available for OpenDP's
samplers, so rates are measured over large samples and compared with bounds that hold
with overwhelming probability: the slack is stated at each assertion).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from policies import evaluate
from policies.jobs import (
    CombinedGroup,
    JobError,
    OpenDPNoise,
    PartialPlan,
    ReleaseError,
    analyse,
    combine,
    partial_plan,
    release,
)
from tests.jobs.world import SCHEMA, params, run_fragment
from tests.policies.builders import build, request_dict

TRIALS = 4000
DISTRICTS = ("north", "south", "east", "west")
NOISE = OpenDPNoise()


def plan_for(sql: str, **overrides: Any) -> PartialPlan:
    return partial_plan(analyse(sql, SCHEMA), params(**overrides))


def groups_for(
    plan: PartialPlan, groups: Mapping[tuple[Any, ...], int], per_value: float = 10.0
) -> list[CombinedGroup]:
    """Combined groups with ``units`` people each (one row each, value ``per_value``)."""
    rows = []
    for key, units in groups.items():
        row: dict[str, Any] = {k.name: v for k, v in zip(plan.keys, key, strict=True)}
        row["__units"] = units
        for partial in plan.partials:
            row[partial.name] = {
                "count": units,
                "sum": per_value * units,
                "sum_squares": per_value**2 * units,
            }.get(partial.kind, 0)
        rows.append(row)
    return combine(plan, [rows])


def released_values(result: Any, key: str, column: str) -> Any:
    for row in result.rows:
        if row["district"].value == key:
            return row[column].value
    return None


def decide(sql: str, *, delta: float = 0.0, epsilon: float = 0.5, **policy: Any) -> Any:
    """The engine's decision on ``sql`` (the analysis' uses and keys) under the builders'
    policy with ``policy`` overrides."""
    data = request_dict()
    data["epsilon"] = epsilon
    data["delta"] = delta
    data["usage"]["delta_spent"] = {"admissions": 0.0}
    for key, value in policy.items():
        data["assets"][0]["policy"]["privacy"][key] = value
    data["assets"][0]["facts"]["column_tags"]["los"] = "attribute"
    data["assets"][0]["policy"]["columns"]["los"] = {
        "control": "aggregate",
        "clip": {"lower": 0, "upper": 60},
    }
    analysis = analyse(sql, SCHEMA)
    data["column_uses"] = [u.model_dump() for u in analysis.column_uses]
    data["group_keys"] = [list(key.columns) for key in analysis.group_by]
    return evaluate(build(data))


# 1. presence through a released key ---------------------------------------------------
def test_a_declared_key_is_released_whether_or_not_anyone_has_it() -> None:
    """The key list is fixed by the policy: it cannot tell whether the planted person
    exists, and their group's values are withheld (one person is far under k)."""
    keys = {"district": DISTRICTS}
    plan = plan_for("SELECT district, COUNT(*) AS n FROM admissions GROUP BY 1", keys=keys)
    crowd = {("north",): 400, ("south",): 300, ("east",): 200}
    present = groups_for(plan, {**crowd, ("west",): 1})
    absent = groups_for(plan, crowd)
    shown_present = shown_absent = 0
    for _ in range(TRIALS // 4):
        with_them = release(plan, present, params(delta=0.0, keys=keys), noise=NOISE)
        without = release(plan, absent, params(delta=0.0, keys=keys), noise=NOISE)
        assert [r["district"].value for r in with_them.rows] == list(DISTRICTS)
        assert [r["district"].value for r in without.rows] == list(DISTRICTS)
        shown_present += released_values(with_them, "west", "n") is not None
        shown_absent += released_values(without, "west", "n") is not None
    # Releasing a group of fewer than k people has probability at most 1e-9 per run.
    assert shown_present == shown_absent == 0


def test_a_key_read_from_the_data_needs_delta_and_then_shows_up_at_most_delta_often() -> None:
    plan = plan_for("SELECT district, COUNT(*) AS n FROM admissions GROUP BY 1")
    present = groups_for(plan, {("north",): 400, ("x-rare",): 1})
    with pytest.raises(ReleaseError) as refused:
        release(plan, present, params(delta=0.0), noise=NOISE)
    assert refused.value.codes == ("undeclared_group_keys",)
    appearances = 0
    delta_spent = 0.0
    for _ in range(TRIALS):
        result = release(plan, present, params(delta=1e-6, epsilon=1.0), noise=NOISE)
        delta_spent = max(delta_spent, result.delta_spent)
        appearances += any(r["district"].value == "x-rare" for r in result.rows)
    # Absent, the key never appears; present, at most e^ε·0 + δ of the time.  With
    # δ ≤ 1e-6 over 4,000 runs, more than 3 appearances has probability below 1e-12.
    assert delta_spent <= 1e-6
    assert appearances <= 3


def test_a_constructed_key_is_refused_or_confined_to_the_declared_domain() -> None:
    targeting = (
        "SELECT CASE WHEN age = 97 AND district = 'west' THEN 'x' ELSE 'y' END AS k, "
        "COUNT(*) AS n FROM admissions GROUP BY 1"
    )
    denied = decide(targeting)
    assert "undeclared_group_keys" in denied.codes
    reason = next(r for r in denied.reasons if r.code == "undeclared_group_keys")
    assert "'age', 'district'" in reason.message
    # One column with a declared domain: the released keys are the domain, whatever
    # values the expression produces from the data.
    one_column = (
        "SELECT CASE WHEN district = 'west' THEN 'x' ELSE district END AS d, COUNT(*) AS n "
        "FROM admissions GROUP BY 1"
    )
    keys = {"district": DISTRICTS}
    plan = plan_for(one_column, keys=keys)
    groups = groups_for(plan, {("x",): 1, ("north",): 400})
    result = release(plan, groups, params(delta=0.0, keys=keys), noise=NOISE)
    assert [r["d"].value for r in result.rows] == list(DISTRICTS)
    assert all(r["d"].value != "x" for r in result.rows)


# 2. diluting the threshold ------------------------------------------------------------
def test_many_quantities_do_not_dilute_the_threshold() -> None:
    """Twenty noisy quantities (the default cap) leave the count of people its fixed ε:
    a one-person group never passes; a twenty-first quantity is refused at check time."""
    sums = ", ".join(f"SUM(CASE WHEN age > {i} THEN los END) AS s{i}" for i in range(10))
    avgs = ", ".join(f"AVG(CASE WHEN age < {i} THEN los END) AS a{i}" for i in range(5))
    sql = f"SELECT district, {sums}, {avgs} FROM admissions GROUP BY 1"
    keys = {"district": DISTRICTS}
    plan = plan_for(sql, keys=keys)
    assert sum(p.kind in ("count", "sum", "sum_squares") for p in plan.partials) == 20
    groups = groups_for(plan, {("west",): 1})
    passed = 0
    for _ in range(TRIALS // 4):
        result = release(plan, groups, params(delta=0.0, keys=keys), noise=NOISE)
        passed += released_values(result, "west", "s0") is not None
    assert passed == 0
    extra = "SUM(CASE WHEN age = 99 THEN los END) AS extra"
    more = f"SELECT district, {sums}, {avgs}, {extra} FROM admissions GROUP BY 1"
    with pytest.raises(JobError) as refused:
        plan_for(more, keys=keys)
    assert "too_many_quantities" in refused.value.codes


def test_a_tiny_epsilon_is_refused_and_the_smallest_allowed_never_shows_one_person() -> None:
    for epsilon in (5e-324, 1e-9, 0.009):
        assert (
            "epsilon_under_job_min"
            in decide("SELECT COUNT(*) AS n FROM admissions", epsilon=epsilon).codes
        )
    floor = decide("SELECT COUNT(*) AS n FROM admissions", epsilon=0.01)
    assert floor.allow, floor.reasons
    plan = plan_for("SELECT COUNT(*) AS n FROM admissions", epsilon=0.01)
    (alone,) = groups_for(plan, {(): 1})
    passed = 0
    for _ in range(TRIALS // 4):
        result = release(plan, [alone], params(epsilon=0.01, delta=0.0), noise=NOISE)
        passed += result.rows[0]["n"].value is not None
    assert passed == 0
    # The margin grows as ε shrinks: k plus scale·ln(1e9).
    result = release(plan, [alone], params(epsilon=0.01, delta=0.0), noise=NOISE)
    assert result.threshold >= 5 + math.ceil((1 / (0.01 * 0.5)) * math.log(1e9))


# 3. differencing two filters ----------------------------------------------------------
def _audit(present: Sequence[float], absent: Sequence[float], epsilon: float) -> None:
    """For every threshold t: P[X ≥ t | present] ≤ e^ε·P[X ≥ t | absent] + slack, and the
    same for the lower tails, where the slack covers sampling error: 6 standard errors of
    the estimate of ``a - e^ε·b`` (the rate scaled by e^ε has e^ε times its error), plus
    1/N. A mechanism at exactly its ε meets the bound with equality in its tails, so the
    slack must be the error of that difference, not of the rates alone, and must hold at
    each of the hundred or so points tested at once. The error is estimated with ``b`` at
    least ``a/e^ε``, its least value where the bound holds, so that a far tail the absent
    runs happened not to reach (``b = 0``) does not shrink the slack to nothing."""
    n = len(present)
    scale = math.exp(epsilon)
    points = sorted(set(present) | set(absent))

    def slack(a: float, b: float) -> float:
        b = max(b, a / scale)
        return 6 * math.sqrt((a * (1 - a) + scale**2 * b * (1 - b)) / n) + 1 / n

    for t in points[:: max(1, len(points) // 50)]:
        p = sum(v >= t for v in present) / n
        q = sum(v >= t for v in absent) / n
        assert p <= scale * q + slack(p, q), (t, p, q)
        assert 1 - q <= scale * (1 - p) + slack(1 - q, 1 - p), (t, p, q)


def test_differencing_two_filters_learns_no_more_than_both_releases_cost() -> None:
    """``age >= 40`` minus ``age > 40`` isolates the people aged exactly 40: with the one
    planted person or without, the difference of the two noisy counts is distributed
    within e^(2ε) — the cost of the two releases — of each other."""
    plan = plan_for("SELECT COUNT(*) AS n FROM admissions")
    epsilon = 0.5
    cost = 0
    present_diffs: list[float] = []
    absent_diffs: list[float] = []
    for diffs, planted in ((present_diffs, 1), (absent_diffs, 0)):
        for _ in range(TRIALS):
            wide = groups_for(plan, {(): 300 + planted})
            narrow = groups_for(plan, {(): 300})
            a = release(plan, wide, params(epsilon=epsilon, delta=0.0), noise=NOISE)
            b = release(plan, narrow, params(epsilon=epsilon, delta=0.0), noise=NOISE)
            cost = a.epsilon_spent + b.epsilon_spent
            diffs.append(a.rows[0]["n"].value - b.rows[0]["n"].value)
    assert cost <= 2 * epsilon
    _audit(present_diffs, absent_diffs, cost)


def test_the_release_of_one_count_meets_its_epsilon() -> None:
    """An empirical audit of one released count: the planted person moves its
    distribution by at most e^ε (ε the count's own share)."""
    plan = plan_for("SELECT COUNT(*) AS n FROM admissions")
    epsilon = 1.0
    runs: dict[int, list[float]] = {1: [], 0: []}
    share = 0.0
    for planted, values in runs.items():
        groups = groups_for(plan, {(): 500 + planted})
        for _ in range(TRIALS):
            result = release(plan, groups, params(epsilon=epsilon, delta=0.0), noise=NOISE)
            values.append(result.rows[0]["n"].value)
            share = result.rows[0]["n"].epsilon
    _audit(runs[1], runs[0], share)


# 4. a person in several partitions ----------------------------------------------------
def test_a_person_in_every_partition_is_bounded_per_partition(tmp_path: Path) -> None:
    """Contribution bounding runs at each site on its own partition: a person with many
    rows in each of three partitions contributes at most ``max_rows_per_unit`` rows to
    each, so at most 3·c to the combined partials — and each partition's budget is
    charged, so their loss is bounded by the sum of those budgets."""
    import duckdb

    plan = plan_for("SELECT COUNT(*) AS n, SUM(los) AS s FROM admissions", c=2)
    files = []
    for n in range(3):
        path = tmp_path / f"site{n}.parquet"
        with duckdb.connect() as con:
            con.execute(f"CREATE TABLE t ({SCHEMA_SQL})")
            con.executemany(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(7, "north", 40, 60.0, 1.0, "A10", "2024-01-01", False)] * 25,
            )
            con.execute(f"COPY t TO '{path}' (FORMAT parquet)")
        files.append(path)
    (group,) = combine(plan, [run_fragment(plan.sql, f) for f in files])
    assert group.units == 3  # counted once per partition
    count = next(p.name for p in plan.partials if p.kind == "count")
    total = next(p.name for p in plan.partials if p.kind == "sum")
    assert group.partials[count] == 3 * 2
    assert group.partials[total] == 3 * 2 * 60.0


SCHEMA_SQL = (
    "patient_id BIGINT, district VARCHAR, age INTEGER, los DOUBLE, cost DECIMAL(12,2), "
    "diagnosis VARCHAR, admitted DATE, readmitted BOOLEAN"
)
