"""Budget arithmetic: rolling periods, exact sums, and how many jobs still fit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import (
    Budget,
    Charge,
    fits,
    jobs_that_fit,
    remaining,
    remaining_budget,
    remaining_epsilon,
    spent_in_period,
)

NOW = datetime(2025, 3, 4, 12, tzinfo=UTC)


def test_rolling_period_boundaries() -> None:
    charges = [
        Charge(NOW - timedelta(days=30), 5.0),  # exactly one period old: left the window
        Charge(NOW - timedelta(days=30) + timedelta(microseconds=1), 1.0),
        Charge(NOW - timedelta(days=1), 0.5, 1e-7),
        Charge(NOW + timedelta(minutes=5), 0.25),  # clock skew: still counted
    ]
    assert spent_in_period(charges, now=NOW, period_days=30) == (1.75, 1e-7)
    assert spent_in_period([], now=NOW, period_days=30) == (0.0, 0.0)
    with pytest.raises(ValueError, match="period_days"):
        spent_in_period(charges, now=NOW, period_days=0)


def test_remaining_budget() -> None:
    budget = Budget(epsilon=3.0, delta=1e-6, period_days=7)
    charges = [Charge(NOW - timedelta(days=d), 0.1, 1e-7) for d in range(10)]
    assert remaining_budget(budget, charges, now=NOW) == (2.3, 3e-7)
    assert remaining_epsilon(budget, charges, now=NOW) == 2.3
    assert remaining_epsilon(budget, [Charge(NOW, 5.0)], now=NOW) == 0.0


def test_decimal_exactness() -> None:
    assert fits(0.1 + 0.0, 0.2, 0.3)
    assert fits(0.2, 0.1, 0.3)
    assert not fits(0.2, 0.1000001, 0.3)
    assert remaining(0.3, 0.1) == 0.2
    assert jobs_that_fit(0.3, 0.1) == 3
    assert jobs_that_fit(1.0, 0.1) == 10
    assert jobs_that_fit(0.0, 0.1) == 0
    assert jobs_that_fit(-1.0, 0.1) == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), True, "1"])
def test_bad_numbers_are_refused(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        fits(0.0, bad, 1.0)  # type: ignore[arg-type]


def test_non_positive_job_size() -> None:
    with pytest.raises(ValueError, match="positive"):
        jobs_that_fit(1.0, 0.0)


amounts = st.decimals(min_value=Decimal("0.001"), max_value=Decimal(100), places=3).map(float)


@settings(max_examples=200, deadline=None)
@given(amounts, amounts)
def test_jobs_that_fit_is_tight(left: float, per_job: float) -> None:
    n = jobs_that_fit(left, per_job)
    assert Decimal(repr(per_job)) * n <= Decimal(repr(left))
    assert Decimal(repr(per_job)) * (n + 1) > Decimal(repr(left))


@settings(max_examples=200, deadline=None)
@given(amounts, amounts, amounts)
def test_fits_agrees_with_jobs_that_fit(limit: float, spent: float, per_job: float) -> None:
    assert fits(spent, per_job, limit) == (
        Decimal(repr(spent)) <= Decimal(repr(limit))
        and jobs_that_fit(remaining(limit, spent), per_job) >= 1
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60 * 24 * 40), amounts), max_size=30), st.randoms())
def test_spending_is_order_independent(raw: list[tuple[int, float]], rnd: object) -> None:
    charges = [Charge(NOW - timedelta(minutes=m), e) for m, e in raw]
    shuffled = list(charges)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert spent_in_period(charges, now=NOW, period_days=30) == spent_in_period(
        shuffled, now=NOW, period_days=30
    )
