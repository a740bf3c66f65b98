"""The registered job kinds: one module each, behind :class:`~gateway.service.jobs.kind.
JobKind`."""

from __future__ import annotations

from typing import Any

from gateway.service.jobs.he_workspace import HeWorkspace
from gateway.service.jobs.kind import JobKind
from gateway.service.jobs.kinds.he_aggregate import HeAggregate
from gateway.service.jobs.kinds.he_linear import HeLinear
from gateway.service.jobs.kinds.sql_aggregate import SqlAggregate


def registry(workspace: HeWorkspace) -> dict[str, JobKind[Any, Any]]:
    """Every job kind the gateway runs, by name."""
    kinds: list[JobKind[Any, Any]] = [
        SqlAggregate(),
        HeAggregate(workspace),
        HeLinear(workspace),
    ]
    return {kind.name: kind for kind in kinds}
