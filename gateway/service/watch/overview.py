"""What the security console shows: the access feed, denials and releases per operator
over time, each asset's budget, each site's health and isolation, the trace's last
verified checkpoint, the alerts firing and the active suspensions.  Auditors only."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from contracts.tlog.checkpoint import parse_and_verify_checkpoint
from contracts.tlog.merkle import root_at
from gateway.domain import Actor, Role
from gateway.service.brakes.service import Brakes
from gateway.service.core.access import require_role
from gateway.service.core.context import ServiceContext
from gateway.service.trace.log import TraceLog
from gateway.service.trace.service import AuditService
from gateway.service.watch.alerts import MetricHistory
from gateway.service.watch.collector import StoreCollector
from gateway.siteclient.pool import SitePool

DECIDING_ACTIONS = ("job.submit", "job.check", "job.dry_run")
"""Trace actions that carry a policy decision on an operator's job."""
ACTIVITY_LIMIT = 20_000
"""At most this many entries per action are read for the activity chart."""
ACTIVITY_TTL = 3.0
"""Seconds one reading of the activity chart serves every console."""


class Watch:
    """The console's read model, built from the store, the trace, the site pool, the
    scrape-time collector and the in-process alert history."""

    def __init__(
        self,
        ctx: ServiceContext,
        audit: AuditService,
        log: TraceLog,
        pool: SitePool,
        collector: StoreCollector,
        history: MetricHistory,
        brakes: Brakes,
    ) -> None:
        self.ctx = ctx
        self.audit = audit
        self.log = log
        self.pool = pool
        self.collector = collector
        self.history = history
        self.brakes = brakes
        self._activity: dict[tuple[int, int], tuple[float, dict[str, Any]]] = {}
        self._activity_lock = threading.Lock()

    def feed(
        self, actor: Actor, *, after: int | None, limit: int, filters: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Entries matching ``filters``: the newest ``limit`` (newest first), or with
        ``after``, those after that index in log order."""
        require_role(actor, Role.AUDITOR)
        if after is None:
            page = self.audit.entries(actor, limit=limit, cursor=None, newest=True, **filters)
        else:  # after=-1: from the start (nothing matched when the feed was opened)
            cursor = str(after) if after >= 0 else None
            page = self.audit.entries(actor, limit=limit, cursor=cursor, **filters)
        return [item.model_dump(mode="json") for item in page.items]

    def activity(
        self, actor: Actor, *, minutes: int = 60, bucket_minutes: int = 5
    ) -> dict[str, Any]:
        """Denied decisions and releases per operator organisation, per bucket (read from
        the trace; shared by every console for ``ACTIVITY_TTL`` seconds)."""
        require_role(actor, Role.AUDITOR)
        key = (minutes, bucket_minutes)
        with self._activity_lock:
            cached = self._activity.get(key)
            if cached is not None and time.monotonic() - cached[0] < ACTIVITY_TTL:
                return cached[1]
        found = self._read_activity(minutes, bucket_minutes)
        with self._activity_lock:
            self._activity[key] = (time.monotonic(), found)
        return found

    def _read_activity(self, minutes: int, bucket_minutes: int) -> dict[str, Any]:
        now = self.ctx.clock.now()
        start = now - timedelta(minutes=minutes)
        buckets = [start + timedelta(minutes=m) for m in range(0, minutes, bucket_minutes)]
        series: dict[str, dict[str, list[int]]] = {}

        def count(action: str, decision: str | None, what: str) -> None:
            with self.ctx.store.read() as tx:
                rows = tx.trace_entries(
                    after=None, limit=ACTIVITY_LIMIT, action=action, decision=decision, since=start
                )
            for row in rows:
                entry = json.loads(row.leaf)
                org = (entry.get("actor") or {}).get("org")
                if org is None:
                    continue
                at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
                index = min(
                    len(buckets) - 1, int((at - start).total_seconds() // (60 * bucket_minutes))
                )
                per = series.setdefault(
                    org, {"denied": [0] * len(buckets), "released": [0] * len(buckets)}
                )
                per[what][max(0, index)] += 1

        for action in DECIDING_ACTIONS:
            count(action, "deny", "denied")
        count("job.release", None, "released")
        names = self._org_names()
        return {
            "buckets": [b.isoformat() for b in buckets],
            "bucket_minutes": bucket_minutes,
            "operators": [
                {"org": org, "name": names.get(org, org), **values}
                for org, values in sorted(series.items())
            ],
        }

    def _org_names(self) -> dict[str, str]:
        with self.ctx.store.read() as tx:
            return {o.id: o.name for o in tx.list_orgs(after=None, limit=10_000)}

    def checkpoint(self) -> dict[str, Any]:
        """The newest checkpoint, its signature checked with the log's key and its root
        recomputed from the stored tree."""
        latest = self.log.latest_checkpoint()
        if latest is None:
            return {"size": 0, "verified": False, "problem": "no checkpoint signed yet"}
        size, note = latest
        try:
            checkpoint = parse_and_verify_checkpoint(note, self.log.verifier_key)
            with self.ctx.store.read() as tx:
                root = root_at(size, tx.trace_nodes)
                signed_at = tx.last_checkpoint_at()
        except Exception as exc:  # a checkpoint that does not verify is shown as such
            return {"size": size, "verified": False, "problem": type(exc).__name__}
        verified = checkpoint.size == size and checkpoint.root == root
        return {
            "size": size,
            "root": base64.b64encode(checkpoint.root).decode(),
            "origin": checkpoint.origin,
            "signed_at": signed_at.isoformat() if signed_at else None,
            "verified": verified,
            "problem": None if verified else "the signed root differs from the stored tree",
        }

    def sites(self) -> list[dict[str, Any]]:
        with self.ctx.store.read() as tx:
            sites = tx.list_sites(org_id=None, after=None, limit=10_000)
        names = self._org_names()
        out = []
        for site in sites:
            checked = self.pool.reports.get(site.id)
            report = checked[1] if checked else None
            out.append(
                {
                    "id": site.id,
                    "name": site.name,
                    "org": site.org_id,
                    "org_name": names.get(site.org_id, site.org_id),
                    "address": site.grpc_address,
                    "checked_at": datetime.fromtimestamp(checked[0]).astimezone().isoformat()
                    if checked
                    else None,
                    "up": None if checked is None else report is not None,
                    "isolation": report.isolation_level if report else None,
                    "layers": dict(report.layers) if report else {},
                }
            )
        return out

    def overview(self, actor: Actor) -> dict[str, Any]:
        """Everything on the console but the feed."""
        require_role(actor, Role.AUDITOR)
        snap = self.collector.snapshot()
        firing = self.history.evaluate()
        names = self._org_names()
        label: Callable[[str], str] = lambda org: names.get(org, org)  # noqa: E731
        return {
            "at": snap.at.isoformat(),
            "activity": self.activity(actor),
            "budgets": [
                {
                    "asset": b.asset_id,
                    "name": b.name,
                    "org": b.org_id,
                    "org_name": label(b.org_id),
                    "epsilon_limit": b.epsilon_limit,
                    "epsilon_spent": round(b.epsilon_spent, 6),
                    "epsilon_remaining": round(b.epsilon_remaining, 6),
                    "delta_limit": b.delta_limit,
                    "delta_remaining": b.delta_remaining,
                    "period_days": b.period_days,
                }
                for b in snap.budgets
            ],
            "sites": self.sites(),
            "checkpoint": self.checkpoint(),
            "trace_size": snap.trace_size,
            "queue": {"depth": snap.queue_depth, "oldest_age_seconds": snap.oldest_queued_age},
            "alerts": [
                {
                    "name": f.name,
                    "severity": f.severity,
                    "labels": {
                        **f.labels,
                        **(
                            {"operator": label(f.labels["operator_org"])}
                            if "operator_org" in f.labels
                            else {}
                        ),
                    },
                    "value": f.value,
                    "summary": f.summary,
                }
                for f in firing
            ],
            "suspensions": [
                s.model_dump(mode="json") for s in self.brakes.list(actor, active=True)
            ],
            "organisations": [{"id": k, "name": v} for k, v in sorted(names.items())],
        }
