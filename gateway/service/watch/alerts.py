"""The alert rules' conditions, evaluated in the gateway for its security console.

Prometheus evaluates ``deploy/prometheus/blindgate.rules.yml`` and pages; the console
shows the same alerts without depending on a Prometheus being deployed.  Each rule below
carries the alert's name, severity, metric, window and threshold as in the rules file (a
test compares them).  The gateway samples its own registry every ``interval`` seconds and
keeps an hour of samples; an ``increase`` over a window is the counter's value now minus
its value at the window's start (counters start at zero with the process, so a series
first seen inside the window counts from zero).  Conditions are shown as they hold now:
the ``for`` delays of the rules file (site down 2 minutes, isolation 5 minutes) are not
applied here.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)
Labels = tuple[tuple[str, str], ...]
Sample = dict[str, dict[Labels, float]]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "==": operator.eq,
}


@dataclass(frozen=True, slots=True)
class Rule:
    """One alert: ``value(series) op threshold`` for each group of ``by`` labels.

    ``kind`` is ``increase`` (of a counter over ``window`` seconds), ``gauge`` (the
    gauge's current value), ``ratio`` (``metric / divisor``), ``until`` (``metric - now``)
    or ``both`` (``metric > 0`` and ``divisor op threshold``).
    """

    name: str
    severity: str
    kind: str
    metric: str
    op: str
    threshold: float
    summary: str
    window: int = 0
    by: tuple[str, ...] = ()
    match: dict[str, str] = field(default_factory=dict)
    exclude: dict[str, str] = field(default_factory=dict)
    divisor: str = ""
    for_seconds: int = 0


RULES: tuple[Rule, ...] = (
    Rule(
        "BlindgateBudgetNearlySpent",
        "warning",
        "ratio",
        "blindgate_budget_epsilon_remaining",
        "<",
        0.1,
        "less than 10% of the asset's epsilon budget left",
        by=("asset", "org"),
        divisor="blindgate_budget_epsilon_limit",
    ),
    Rule(
        "BlindgateProbingDenials",
        "critical",
        "increase",
        "blindgate_operator_decisions_total",
        ">=",
        20,
        "denied jobs or dry runs in 10 minutes (probing?)",
        window=600,
        by=("operator_org",),
        match={"outcome": "deny"},
    ),
    Rule(
        "BlindgateProbingNearThreshold",
        "critical",
        "increase",
        "blindgate_operator_releases_total",
        ">=",
        10,
        "releases held back by the group-size threshold in 10 minutes",
        window=600,
        by=("operator_org",),
        match={"near_threshold": "true"},
    ),
    Rule(
        "BlindgateAuthFailureBurst",
        "warning",
        "increase",
        "blindgate_auth_failures_total",
        ">=",
        20,
        "failed authentications in 5 minutes",
        window=300,
    ),
    Rule(
        "BlindgateSandboxViolation",
        "critical",
        "increase",
        "blindgate_sandbox_violations_total",
        ">",
        0,
        "fragments stopped by a sandbox",
        window=600,
        by=("site", "reason"),
    ),
    Rule(
        "BlindgateSiteDown",
        "critical",
        "gauge",
        "blindgate_site_up",
        "==",
        0,
        "the site does not answer its health check",
        by=("site",),
        for_seconds=120,
    ),
    Rule(
        "BlindgateSiteIsolationDegraded",
        "warning",
        "gauge",
        "blindgate_site_isolation_level",
        "==",
        1,
        "the site runs fragments below strong isolation",
        by=("site",),
        exclude={"level": "strong"},
        for_seconds=300,
    ),
    Rule(
        "BlindgateCheckpointStale",
        "warning",
        "both",
        "blindgate_trace_unsigned_entries",
        ">",
        600,
        "entries have waited more than 10 minutes for a signed checkpoint",
        divisor="blindgate_trace_last_checkpoint_age_seconds",
    ),
    Rule(
        "BlindgateCheckpointSigningFailed",
        "critical",
        "increase",
        "blindgate_trace_checkpoint_failures_total",
        ">",
        0,
        "a checkpoint could not be signed or stored",
        window=900,
    ),
    Rule(
        "BlindgateJobFailureSpike",
        "warning",
        "increase",
        "blindgate_job_failures_total",
        ">=",
        5,
        "jobs failed in 10 minutes",
        window=600,
        by=("kind",),
    ),
    Rule(
        "BlindgateLicenceExpiring",
        "info",
        "gauge",
        "blindgate_licences_expiring",
        ">",
        0,
        "licences expire within 7 days",
        by=("operator_org",),
    ),
    Rule(
        "BlindgateSiteCertificateExpiring",
        "warning",
        "until",
        "blindgate_site_certificate_expiry_timestamp_seconds",
        "<",
        14 * 86400,
        "the site's certificate expires within 14 days",
        by=("site",),
    ),
)


@dataclass(frozen=True, slots=True)
class Firing:
    name: str
    severity: str
    labels: dict[str, str]
    value: float
    summary: str


def _matches(labels: Labels, rule: Rule) -> bool:
    found = dict(labels)
    if any(found.get(k) != v for k, v in rule.match.items()):
        return False
    return not any(found.get(k) == v for k, v in rule.exclude.items())


def _group(labels: Labels, by: tuple[str, ...]) -> Labels:
    found = dict(labels)
    return tuple((k, found.get(k, "")) for k in by)


class MetricHistory:
    """Samples of a registry, one every ``interval`` seconds, for ``keep`` seconds."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        interval: float = 15.0,
        keep: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.interval = interval
        self.clock = clock
        self.names = {r.metric for r in RULES} | {r.divisor for r in RULES if r.divisor}
        self._samples: deque[tuple[float, Sample]] = deque(maxlen=int(keep / interval) + 2)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> Sample:
        """The rules' series as they are now."""
        sample: Sample = {}
        for family in self.registry.collect():
            for s in family.samples:
                if s.name in self.names:
                    key = tuple(sorted(s.labels.items()))
                    sample.setdefault(s.name, {})[key] = float(s.value)
        return sample

    def record(self, at: float | None = None, sample: Sample | None = None) -> None:
        """Keep one sample (of the registry now, unless given)."""
        entry = (self.clock() if at is None else at, self.read() if sample is None else sample)
        with self._lock:
            self._samples.append(entry)

    def at_or_before(self, t: float) -> Sample:
        """The newest sample taken at or before ``t`` (empty if none)."""
        with self._lock:
            found: Sample = {}
            for at, sample in self._samples:
                if at > t:
                    break
                found = sample
            return found

    # background sampling -------------------------------------------------------------------
    def start(self) -> None:
        self.record()
        self._thread = threading.Thread(target=self._run, name="metric-history", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.record()
            except Exception as exc:  # a failed sample is skipped; the next one is taken
                log.warning("metric sample failed: %s", type(exc).__name__)

    # evaluation ----------------------------------------------------------------------------
    def evaluate(self, now: float | None = None, current: Sample | None = None) -> list[Firing]:
        """Every rule's alerts firing at ``now`` (default: the registry read now)."""
        now = self.clock() if now is None else now
        current = self.read() if current is None else current
        firing: list[Firing] = []
        for rule in RULES:
            for labels, value in sorted(self._values(rule, now, current).items()):
                if _OPS[rule.op](value, rule.threshold):
                    firing.append(
                        Firing(rule.name, rule.severity, dict(labels), value, rule.summary)
                    )
        return firing

    def _values(self, rule: Rule, now: float, current: Sample) -> dict[Labels, float]:
        series = {k: v for k, v in current.get(rule.metric, {}).items() if _matches(k, rule)}
        out: dict[Labels, float] = {}
        if rule.kind == "increase":
            before = self.at_or_before(now - rule.window).get(rule.metric, {})
            for labels, value in series.items():
                group = _group(labels, rule.by)
                out[group] = out.get(group, 0.0) + max(0.0, value - before.get(labels, 0.0))
            return out
        if rule.kind == "ratio":
            limits = current.get(rule.divisor, {})
            return {_group(k, rule.by): v / limits[k] for k, v in series.items() if limits.get(k)}
        if rule.kind == "until":
            return {_group(k, rule.by): v - now for k, v in series.items()}
        if rule.kind == "both":
            ages = current.get(rule.divisor, {})
            return {_group(k, rule.by): ages[k] for k, v in series.items() if v > 0 and k in ages}
        for labels, value in series.items():
            group = _group(labels, rule.by)
            out[group] = max(out.get(group, value), value)
        return out
