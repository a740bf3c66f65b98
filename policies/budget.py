"""Privacy-budget arithmetic: pure helpers shared by the evaluator and the gateway.

Budgets are rolling: a charge counts while it is younger than the policy's period.
Sums are exact over the decimal values written (``0.1 + 0.2`` fits a budget of
``0.3``), so the answer does not depend on float rounding or on charge order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from policies.model import Budget


@dataclass(frozen=True, slots=True)
class Charge:
    """Privacy loss charged to an asset by one released (or failed) job."""

    at: datetime
    epsilon: float
    delta: float = 0.0


def exact(value: float) -> Decimal:
    """The decimal a finite float was written as (its shortest repr)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def fits(spent: float, amount: float, limit: float) -> bool:
    """Whether charging ``amount`` on top of ``spent`` stays within ``limit``."""
    return exact(spent) + exact(amount) <= exact(limit)


def remaining(limit: float, spent: float) -> float:
    """What is left of ``limit`` after ``spent`` (never negative)."""
    return float(max(exact(limit) - exact(spent), Decimal(0)))


def spent_in_period(
    charges: Iterable[Charge], *, now: datetime, period_days: int
) -> tuple[float, float]:
    """Total (epsilon, delta) of charges inside the rolling period ending at ``now``.

    A charge counts while ``at > now - period_days``; charges dated after ``now``
    (clock skew) count as well, so skew never frees budget.
    """
    if period_days < 1:
        raise ValueError("period_days must be at least 1")
    start = now - timedelta(days=period_days)
    epsilon, delta = Decimal(0), Decimal(0)
    for charge in charges:
        if charge.at > start:
            epsilon += exact(charge.epsilon)
            delta += exact(charge.delta)
    return float(epsilon), float(delta)


def remaining_budget(
    budget: Budget, charges: Iterable[Charge], *, now: datetime
) -> tuple[float, float]:
    """Remaining (epsilon, delta) of ``budget`` at ``now`` given past ``charges``."""
    epsilon, delta = spent_in_period(charges, now=now, period_days=budget.period_days)
    return remaining(budget.epsilon, epsilon), remaining(budget.delta, delta)


def remaining_epsilon(budget: Budget, charges: Iterable[Charge], *, now: datetime) -> float:
    """Remaining epsilon of ``budget`` at ``now`` given past ``charges``."""
    return remaining_budget(budget, charges, now=now)[0]


def jobs_that_fit(remaining_epsilon: float, epsilon_per_job: float) -> int:
    """How many more jobs of ``epsilon_per_job`` fit into ``remaining_epsilon``."""
    per_job = exact(epsilon_per_job)
    if per_job <= 0:
        raise ValueError("epsilon_per_job must be positive")
    left = exact(remaining_epsilon)
    if left <= 0:
        return 0
    with localcontext() as ctx:
        # Any two finite floats: a quotient of at most ~10^632 (1e308 / 5e-324), exact.
        ctx.prec = 700
        return int(left // per_job)
