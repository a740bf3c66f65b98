"""Fragments kept by what they are a pure function of.

A fragment (:func:`policies.jobs.partial_plan`) depends only on the query text, the
asset's schema and the decision's parameters, so the gateway and each site derive it once
per such fingerprint and reuse it; the decision that leads to it is always made afresh, so
nothing kept here can allow what a fresh decision would refuse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from policies import EffectiveParameters
from policies.jobs.rewrite import PartialPlan, partial_plan
from policies.jobs.schema import AssetSchema


class PlanCache:
    """Fragments by (query, schema, parameters), least recently used dropped first;
    thread-safe."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._plans: OrderedDict[tuple[str, AssetSchema, str], PartialPlan] = OrderedDict()

    def plan(
        self, sql: str, schema: AssetSchema, analysis: Any, params: EffectiveParameters
    ) -> PartialPlan:
        """The fragment of ``sql`` (analysed as ``analysis``) under ``params``; raises
        :class:`policies.jobs.JobError` as :func:`partial_plan` does (never kept)."""
        key = (sql, schema, params.model_dump_json())
        with self._lock:
            found = self._plans.get(key)
            if found is not None:
                self._plans.move_to_end(key)
                return found
        plan = partial_plan(analysis, params)
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)
        return plan
