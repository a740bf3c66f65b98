"""Metrics read from the store when Prometheus scrapes: jobs by kind and state, the
queue, the trace and its checkpoints, each asset's privacy budget, licences about to
expire and active suspensions.

One scrape costs a handful of aggregate queries (GROUP BY over jobs and charges, MIN over
the queue, the trace head and newest checkpoint) plus a pass over assets and licences
whose parsed policies and terms are cached by version; the whole snapshot is cached for
``ttl`` seconds, so the console's polling and Prometheus share it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from contracts.terms import terms_from_canonical
from gateway.domain import Asset, AssetStatus, LicenceStatus, Suspension
from gateway.service.core.context import ServiceContext
from gateway.service.governance.policies import parse_for_asset
from gateway.service.trace.log import TraceLog

log = logging.getLogger(__name__)

EXPIRY_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class AssetBudget:
    asset_id: str
    name: str
    org_id: str
    epsilon_limit: float
    delta_limit: float
    period_days: int
    epsilon_spent: float
    delta_spent: float

    @property
    def epsilon_remaining(self) -> float:
        return max(0.0, self.epsilon_limit - self.epsilon_spent)

    @property
    def delta_remaining(self) -> float:
        return max(0.0, self.delta_limit - self.delta_spent)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The store's state as the metrics and the console show it."""

    at: datetime
    jobs: list[tuple[str, str, int]]
    queue_depth: int
    oldest_queued_age: float
    trace_size: int
    checkpoint_size: int
    checkpoint_age: float | None
    budgets: list[AssetBudget]
    licences_expiring: dict[str, int]
    suspensions: list[Suspension] = field(default_factory=list)


class StoreCollector(Collector):
    """A Prometheus collector over the store; also the console's source of these facts."""

    def __init__(self, ctx: ServiceContext, trace: TraceLog, ttl: float = 5.0) -> None:
        self.ctx = ctx
        self.trace = trace
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None
        self._policies: dict[tuple[str, int], tuple[float, float, int] | None] = {}
        self._expiry: dict[str, datetime] = {}

    def snapshot(self) -> Snapshot:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < self.ttl:
                return self._cached[1]
            snap = self._read()
            self._cached = (time.monotonic(), snap)
            return snap

    def _budget_rules(
        self, asset: Asset, version: int, document: str
    ) -> tuple[float, float, int] | None:
        key = (asset.id, version)
        if key not in self._policies:
            try:
                budget = parse_for_asset(document, asset).privacy.budget
                self._policies[key] = (budget.epsilon, budget.delta, budget.period_days)
            except Exception:  # an invalid stored policy has no budget to show
                self._policies[key] = None
        return self._policies[key]

    def _read(self) -> Snapshot:
        now = self.ctx.clock.now()
        with self.ctx.store.read() as tx:
            jobs = tx.job_counts()
            oldest = tx.oldest_queued_at()
            size = tx.trace_size()
            latest = tx.latest_checkpoint()
            signed_at = tx.last_checkpoint_at()
            assets = []
            after = None
            while True:
                page = tx.list_assets(
                    org_id=None,
                    statuses=[AssetStatus.ACTIVE, AssetStatus.FROZEN],
                    after=after,
                    limit=1000,
                )
                assets.extend(page)
                if len(page) < 1000:
                    break
                after = page[-1].id
            rules = {}
            for asset in assets:
                stored = tx.get_policy(asset.id)
                if stored is not None:
                    found = self._budget_rules(asset, stored.version, stored.document)
                    if found is not None:
                        rules[asset.id] = (asset, found)
            spent: dict[int, dict[str, tuple[float, float]]] = {}
            for days in {r[1][2] for r in rules.values()}:
                totals = tx.charge_totals(now - timedelta(days=days))
                spent[days] = {asset_id: (eps, dlt) for asset_id, eps, dlt in totals}
            licences = tx.list_licences(limit=100_000)
            suspensions = tx.list_suspensions(active=True)
        budgets = []
        for asset_id, (asset, (eps, dlt, days)) in sorted(rules.items()):
            used = spent[days].get(asset_id, (0.0, 0.0))
            budgets.append(
                AssetBudget(asset_id, asset.name, asset.org_id, eps, dlt, days, used[0], used[1])
            )
        expiring: dict[str, int] = {}
        for licence in licences:
            if licence.status != LicenceStatus.ACTIVE:
                continue
            until = self._expiry.get(licence.id)
            if until is None:
                until = terms_from_canonical(licence.terms.encode()).valid_until
                self._expiry[licence.id] = until
            if now < until <= now + EXPIRY_WINDOW:
                expiring[licence.operator_org_id] = expiring.get(licence.operator_org_id, 0) + 1
        queued = sum(n for _, state, n in jobs if state == "queued")
        return Snapshot(
            at=now,
            jobs=jobs,
            queue_depth=queued,
            oldest_queued_age=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
            trace_size=size,
            checkpoint_size=latest[0] if latest else 0,
            checkpoint_age=(now - signed_at).total_seconds() if signed_at else None,
            budgets=budgets,
            licences_expiring=expiring,
            suspensions=suspensions,
        )

    def collect(self) -> Iterator[Metric]:
        try:
            snap = self.snapshot()
        except Exception as exc:  # a scrape must not fail the whole /metrics page
            log.error("store metrics unavailable: %s", type(exc).__name__)
            return
        jobs = GaugeMetricFamily(
            "blindgate_jobs", "Stored jobs by kind and state.", labels=["kind", "state"]
        )
        for kind, state, n in snap.jobs:
            jobs.add_metric([kind, state], n)
        yield jobs
        yield GaugeMetricFamily(
            "blindgate_queue_depth", "Jobs queued and waiting for a runner.", value=snap.queue_depth
        )
        yield GaugeMetricFamily(
            "blindgate_queue_oldest_age_seconds",
            "How long the oldest queued job has waited (0 when the queue is empty).",
            value=snap.oldest_queued_age,
        )
        yield GaugeMetricFamily(
            "blindgate_trace_size", "Entries in the trace.", value=snap.trace_size
        )
        yield GaugeMetricFamily(
            "blindgate_trace_unsigned_entries",
            "Entries not yet covered by a signed checkpoint.",
            value=max(0, snap.trace_size - snap.checkpoint_size),
        )
        age = GaugeMetricFamily(
            "blindgate_trace_last_checkpoint_age_seconds",
            "Seconds since the newest checkpoint was signed.",
        )
        if snap.checkpoint_age is not None:
            age.add_metric([], snap.checkpoint_age)
        yield age
        families = {
            "epsilon_limit": "Each asset's epsilon budget per period (its policy).",
            "epsilon_remaining": "Epsilon left in each asset's budget for the current period.",
            "delta_limit": "Each asset's delta budget per period (its policy).",
            "delta_remaining": "Delta left in each asset's budget for the current period.",
        }
        for name, text in families.items():
            family = GaugeMetricFamily(f"blindgate_budget_{name}", text, labels=["asset", "org"])
            for b in snap.budgets:
                family.add_metric([b.asset_id, b.org_id], float(getattr(b, name)))
            yield family
        expiring = GaugeMetricFamily(
            "blindgate_licences_expiring",
            "Active licences that expire within 7 days, by operator organisation.",
            labels=["operator_org"],
        )
        for org, n in sorted(snap.licences_expiring.items()):
            expiring.add_metric([org], n)
        yield expiring
        active = GaugeMetricFamily(
            "blindgate_suspensions_active", "Active emergency suspensions by kind.", labels=["kind"]
        )
        for kind in ("org", "principal", "licence"):
            active.add_metric([kind], sum(1 for s in snap.suspensions if str(s.kind) == kind))
        yield active
