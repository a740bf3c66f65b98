"""``python_test``: arbitrary Python inside the sandbox, for the hostile-job tests.

Never enabled unless the runner is configured with
``unsafe_enable_test_executor=True``.  The snippet may set ``rows`` (a list of
lists of scalars) and ``columns``; otherwise ``result`` becomes a one-cell table.
"""

from __future__ import annotations

from sandbox.executors.base import WorkerContext, table_document


class Executor:
    """Runs one Python snippet with ``exec``."""

    def __init__(self, context: WorkerContext) -> None:
        self._context = context

    def run(self, program: str) -> str:
        """Execute the snippet and serialise what it left in ``rows``/``result``."""
        namespace: dict[str, object] = {"__name__": "__fragment__", "context": self._context}
        exec(compile(program, "<fragment>", "exec"), namespace)  # noqa: S102
        rows = namespace.get("rows")
        if not isinstance(rows, list):
            rows = [[namespace.get("result")]]
        width = len(rows[0]) if rows and isinstance(rows[0], list) else 1
        columns = namespace.get("columns")
        if not isinstance(columns, list):
            columns = [f"c{index}" for index in range(width)]
        return table_document(
            [str(name) for name in columns],
            ["ANY"] * len(columns),
            rows,
            self._context.output_bytes,
        )
