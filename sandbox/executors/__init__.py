"""Executors: the engines a fragment can run, loaded inside the sandbox.

Each executor module defines ``Executor``, constructed with the worker's
:class:`sandbox.executors.base.WorkerContext` when the sandbox starts (so that the
engine is imported and ready before the fragment arrives) and called once with
the fragment's program text.  Standard library only here: this package is
imported by the worker.
"""

from __future__ import annotations

PRODUCTION_EXECUTORS: dict[str, str] = {
    "duckdb_sql": "sandbox.executors.duckdb_sql",
    "tenseal_he": "sandbox.executors.tenseal_he",
    "python": "sandbox.executors.python_job",
}
TEST_EXECUTORS: dict[str, str] = {"python_test": "sandbox.executors.python_test"}
FORK_EXECUTORS: frozenset[str] = frozenset({"duckdb_sql", "python_test"})
"""Executors whose engine is safe to prepare once and fork (no threads before the fork)."""


def module_for(name: str, *, allow_test: bool) -> str | None:
    """The module implementing executor ``name``, or ``None`` if it is not enabled."""
    if name in PRODUCTION_EXECUTORS:
        return PRODUCTION_EXECUTORS[name]
    if allow_test and name in TEST_EXECUTORS:
        return TEST_EXECUTORS[name]
    return None
