"""Noise sources: OpenDP's Laplace mechanisms behind a small interface tests can replace.

Every noisy number Blindgate releases comes from an OpenDP measurement, never from
hand-written sampling. :class:`OpenDPNoise` builds the measurement, calibrates its scale
to the sensitivity and the epsilon share, checks with OpenDP's own privacy map that the
loss is within the share, and reports the loss the map gives (the ledger charges that,
not the nominal share).

OpenDP gates its Laplace mechanisms and its thresholded Laplace mechanism behind the
``contrib`` feature (they are implemented and proven, but their proofs have not yet been
vetted by OpenDP's review process), so :class:`OpenDPNoise` enables ``contrib`` when it
is created. It does not enable ``floating-point`` or ``honest-but-curious``: the
mechanisms used here sample exactly and need neither.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

_MAX_CALIBRATION_STEPS: Final = 200
_MAX_THRESHOLD_STEP: Final = 1 << 40
TARGETING_FAILURE: Final = 1e-9
"""Largest probability that a group of fewer than ``min_group_size`` people is released."""


def targeting_threshold(min_group_size: int, scale: float) -> int:
    """The noisy count of people a group must reach to be released.

    The noisy count is ``true + Laplace(scale)`` (or its discrete counterpart, whose
    tail is no heavier); adding ``scale·ln(1/p)`` to the minimum makes releasing a group
    of fewer than ``min_group_size`` people happen with probability below ``p``
    (:data:`TARGETING_FAILURE`), however the job's ε is split or however small it is.
    Comparing a noisy count with a threshold is post-processing: it costs no privacy
    beyond the count's own ε.
    """
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError("the scale of the count of people must be positive and finite")
    return min_group_size + math.ceil(scale * math.log(1 / TARGETING_FAILURE))


def sum_threshold(min_group_size: int, scales: Sequence[float]) -> int:
    """The threshold for a count of people summed over sites, each with its own noise.

    Each site adds discrete Laplace noise of its own ``scale`` (OpenDP's ``make_laplace``
    over integers: ``P(k) ∝ exp(-|k|/scale)``). The sum's tail is bounded with Chernoff's
    method, ``P(Σ X ≥ t) ≤ min_λ exp(-λt)·Π E[exp(λX_i)]``, and the threshold is
    ``min_group_size`` plus the smallest ``t`` whose bound is at most
    :data:`TARGETING_FAILURE`.  For one site it is :func:`targeting_threshold`.
    """
    if not scales:
        raise ValueError("a threshold needs at least one site's scale")
    if len(scales) == 1:
        return targeting_threshold(min_group_size, scales[0])
    if not all(b > 0 and math.isfinite(b) for b in scales):
        raise ValueError("scales must be positive and finite")
    target = math.log(TARGETING_FAILURE)

    def log_mgf(lam: float) -> float:
        total = 0.0
        for b in scales:
            q = math.exp(-1 / b)
            # E[e^{λX}] = (1-q)² / ((1 - q·e^λ)(1 - q·e^{-λ})) for λ < 1/b
            total += (
                2 * math.log1p(-q)
                - math.log1p(-q * math.exp(lam))
                - math.log1p(-q * math.exp(-lam))
            )
        return total

    limit = min(1 / b for b in scales)

    def needed(lam: float) -> float:
        return (log_mgf(lam) - target) / lam

    low, high = limit * 1e-6, limit * (1 - 1e-9)
    for _ in range(200):  # the bound is convex in λ: golden-section search for its minimum
        a = high - (high - low) * 0.618033988749895
        b = low + (high - low) * 0.618033988749895
        if needed(a) <= needed(b):
            high = b
        else:
            low = a
    return min_group_size + math.ceil(needed((low + high) / 2))


@dataclass(frozen=True, slots=True)
class Noised:
    """A noisy vector, the Laplace scale used and the epsilon OpenDP's map charges."""

    values: tuple[float, ...]
    scale: float
    epsilon: float


@dataclass(frozen=True, slots=True)
class Thresholded:
    """Noisy counts of the keys whose noisy count reached ``threshold``.

    ``epsilon`` and ``delta`` are the privacy loss OpenDP's map gives for the release,
    including the keys' presence.
    """

    values: Mapping[str, int]
    scale: float
    epsilon: float
    delta: float
    threshold: int


class NoiseSource(Protocol):
    """Where released noise comes from."""

    def laplace(
        self, values: Sequence[float], *, sensitivity: float, epsilon: float, integer: bool
    ) -> Noised:
        """Laplace noise on a vector whose L1 sensitivity is ``sensitivity``.

        ``integer`` asks for OpenDP's discrete Laplace over integers (for counts).
        """
        ...

    def laplace_threshold(
        self,
        counts: Mapping[str, int],
        *,
        contributions: int,
        epsilon: float,
        delta: float,
        min_threshold: int,
    ) -> Thresholded:
        """Noisy counts of the keys whose noisy count reaches the threshold.

        Each person changes at most ``contributions`` keys' counts, each by at most one.
        The threshold is the smallest integer at or above both ``min_threshold`` plus the
        targeting margin (:func:`targeting_threshold` at the calibrated scale) and the
        threshold at which the release's delta is at most ``delta``.
        """
        ...


def _calibrate(
    make: Callable[[float], Any], loss: Callable[[Any], float], nominal: float, epsilon: float
) -> tuple[float, Any]:
    """The smallest scale near ``nominal`` whose measurement loses at most ``epsilon``."""
    scale = nominal
    for _ in range(_MAX_CALIBRATION_STEPS):
        measurement = make(scale)
        if loss(measurement) <= epsilon:
            return scale, measurement
        scale = math.nextafter(scale, math.inf) * (1 + 1e-12)
    raise ArithmeticError("could not calibrate the Laplace scale")


class OpenDPNoise:
    """Noise from OpenDP: ``make_laplace`` and ``make_laplace_threshold``."""

    def __init__(self) -> None:
        import opendp.prelude as dp

        dp.enable_features("contrib")
        self._dp = dp

    def laplace(
        self, values: Sequence[float], *, sensitivity: float, epsilon: float, integer: bool
    ) -> Noised:
        dp = self._dp
        if not (sensitivity > 0 and epsilon > 0 and math.isfinite(sensitivity)):
            raise ValueError("sensitivity and epsilon must be positive and finite")
        if integer:
            if not float(sensitivity).is_integer():
                raise ValueError("an integer mechanism needs an integer sensitivity")
            d_in: float | int = int(sensitivity)
            domain = dp.vector_domain(dp.atom_domain(T=int))
            metric = dp.l1_distance(T=int)
            data: list[Any] = [int(v) for v in values]
        else:
            d_in = float(sensitivity)
            domain = dp.vector_domain(dp.atom_domain(T=float, nan=False))
            metric = dp.l1_distance(T=float)
            data = [float(v) for v in values]
            if not all(math.isfinite(v) for v in data):
                raise ValueError("cannot add noise to a non-finite value")

        def make(scale: float) -> Any:
            return dp.m.make_laplace(domain, metric, scale=scale)

        scale, measurement = _calibrate(
            make, lambda m: float(m.map(d_in)), float(d_in) / epsilon, epsilon
        )
        noisy = measurement(data) if data else []
        return Noised(tuple(noisy), scale, float(measurement.map(d_in)))

    def laplace_threshold(
        self,
        counts: Mapping[str, int],
        *,
        contributions: int,
        epsilon: float,
        delta: float,
        min_threshold: int,
    ) -> Thresholded:
        dp = self._dp
        if not (contributions >= 1 and epsilon > 0 and 0 < delta < 1):
            raise ValueError("contributions, epsilon and delta must be positive")
        domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
        metric = dp.l01inf_distance(dp.absolute_distance(T=int))
        d_in = (contributions, contributions, 1)

        def make_at(threshold: int) -> Callable[[float], Any]:
            def make(scale: float) -> Any:
                return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)

            return make

        scale, _ = _calibrate(
            make_at(min_threshold),
            lambda m: float(m.map(d_in)[0]),
            contributions / epsilon,
            epsilon,
        )

        def delta_at(threshold: int) -> float:
            return float(make_at(threshold)(scale).map(d_in)[1])

        low = targeting_threshold(min_threshold, scale)
        threshold = _smallest_threshold(delta_at, low, delta)
        measurement = make_at(threshold)(scale)
        spent_epsilon, spent_delta = measurement.map(d_in)
        released = measurement({key: int(value) for key, value in counts.items()})
        return Thresholded(
            values={str(k): int(v) for k, v in released.items()},
            scale=scale,
            epsilon=float(spent_epsilon),
            delta=float(spent_delta),
            threshold=threshold,
        )


def _smallest_threshold(delta_at: Callable[[int], float], low: int, delta: float) -> int:
    """The smallest threshold at or above ``low`` whose delta is at most ``delta``."""
    if delta_at(low) <= delta:
        return low
    step = 1
    while delta_at(low + step) > delta:
        step *= 2
        if step > _MAX_THRESHOLD_STEP:
            raise ArithmeticError("no threshold reaches the requested delta")
    failing, passing = low + step // 2, low + step
    while passing - failing > 1:
        middle = (failing + passing) // 2
        if delta_at(middle) <= delta:
            passing = middle
        else:
            failing = middle
    return passing
