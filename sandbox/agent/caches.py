"""What a site derives from a ticket that depends only on signed, checked inputs: the
parsed policy of a document and the fragment of a query under given parameters.

Both are pure functions of their arguments, so each is derived once and kept; every
ticket is still verified, decided against the site's own ledger and charged afresh
(:mod:`sandbox.agent.tickets`), so nothing kept here can admit what a fresh check would
refuse.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Any

from policies import AssetShape, EffectiveParameters, Policy, load_policy_for
from policies.jobs import AssetSchema, PartialPlan, partial_plan


@functools.lru_cache(maxsize=256)
def parsed_policy(
    document: str,
    asset_id: str,
    asset_name: str,
    columns: tuple[tuple[str, str, str], ...],
    privacy_unit: str,
) -> Policy:
    """A signed policy document parsed against the asset it was signed for.

    Parsing is a pure function of these arguments (the signature and the document's
    digest are checked before, on every ticket), so a policy version is parsed once."""
    shape = AssetShape(
        names=(asset_id, asset_name),
        columns={name: (kind, tag) for name, kind, tag in columns},
        privacy_unit=privacy_unit,
    )
    return load_policy_for(document, shape)


class PlanCache:
    """Fragments by (query, schema, parameters): derived once, reused for the same job
    shape under the same decision parameters; the decision itself is made per ticket."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._plans: OrderedDict[tuple[str, AssetSchema, str], PartialPlan] = OrderedDict()

    def plan(
        self, sql: str, schema: AssetSchema, analysis: Any, params: EffectiveParameters
    ) -> PartialPlan:
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


PLANS = PlanCache()
"""The agent's fragments by (query, schema, parameters)."""
