"""The registered job kinds: one module each, behind :class:`~gateway.service.jobs.kind.
JobKind`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.service.jobs.he_workspace import HeWorkspace
from gateway.service.jobs.kind import JobKind
from gateway.service.jobs.kinds.he_aggregate import HeAggregate
from gateway.service.jobs.kinds.he_linear import HeLinear
from gateway.service.jobs.kinds.python import PythonJobs
from gateway.service.jobs.kinds.sql_aggregate import SqlAggregate
from sandbox.inputs import InputStore


def registry(
    workspace: HeWorkspace,
    archives: InputStore,
    holder_key: Callable[[str], str | None] | None = None,
) -> dict[str, JobKind[Any, Any]]:
    """Every job kind the gateway runs, by name.

    ``archives`` keeps Python job folders by SHA-256; ``holder_key`` gives a holder
    organisation's registered public key (to check its sites' signed reviews).
    """
    kinds: list[JobKind[Any, Any]] = [
        SqlAggregate(),
        HeAggregate(workspace),
        HeLinear(workspace),
        PythonJobs(archives, holder_key),
    ]
    return {kind.name: kind for kind in kinds}
