"""The structure the code must keep: no import loops, and one job pipeline for every kind."""

from __future__ import annotations

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "sandbox", "policies", "contracts", "blindgate_proto", "blindgate_demo")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)


def test_tarjan_finds_a_planted_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def test_no_two_packages_import_each_other() -> None:
    """Sibling packages (e.g. ``gateway.audit`` and ``gateway.store``) form no loop."""
    graph = _graph()
    parents: dict[str, dict[str, set[str]]] = {}
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            a, b = module.split("."), imported.split(".")
            depth = 0
            while depth < min(len(a), len(b)) - 1 and a[depth] == b[depth]:
                depth += 1
            parent = ".".join(a[:depth])
            parents.setdefault(parent, {}).setdefault(a[depth], set()).add(b[depth])
    loops = {parent: found for parent, edges in parents.items() if (found := _cycles(edges))}
    assert loops == {}


def _names_of_kinds(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    kinds = {"sql_aggregate", "he_aggregate", "he_linear", "python"}
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in kinds
    ]


def test_the_shared_pipeline_never_names_a_job_kind() -> None:
    """The runner and the decider treat every kind alike; kinds live in their own modules."""
    jobs = ROOT / "gateway" / "service" / "jobs"
    for module in ("runner.py", "decide.py", "kind.py"):
        assert _names_of_kinds(jobs / module) == [], module


def test_importing_blindgate_never_loads_syft() -> None:
    """Only the PySyft bridge imports syft, and only when it runs: the CLI, the gateway,
    the site agent and the client load without it, even where it is installed."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import gateway.cli.main, gateway.app, gateway.http, gateway.service, gateway.client\n"
        "import sandbox.agent.server, sandbox.executors.python_job, policies, contracts\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('syft', 'syft_rds'))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "", done.stdout
