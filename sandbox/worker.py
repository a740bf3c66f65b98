"""The fragment worker: the program that runs *inside* the sandbox.

Started with ``python -I -S`` (see :func:`boot_code`), it imports and prepares
its executor first (so a pre-started worker has the engine ready), then reads the
fragment (one JSON object with the program text) from stdin, tightens its CPU
limit so the start-up does not count against the fragment, runs the program
once, writes exactly one JSON document to stdout and exits.  Before anything
else it moves the result channel to a private descriptor and points descriptor
1 at stderr, so that nothing an engine or library prints can corrupt the
document.

Failures are reported as ``{"ok": false, "reason": CODE, "kind": CLASS}``; the
kind is an exception class name for the debug log, never a message, a path or a
value.  Standard library only apart from the executor's engine.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
from typing import Any

from sandbox import executors
from sandbox.executors.base import (
    Executor,
    FragmentError,
    WorkerContext,
    read_request,
    run_document,
)


def boot_code(package_dir: str, paths: list[str]) -> str:
    """Source for ``python -I -S -c`` that starts the worker.

    The ``sandbox`` package is loaded from ``package_dir`` directly, so its parent
    directory need not be listable inside the sandbox; ``paths`` (site-packages)
    are put on ``sys.path`` for the engines.
    """
    init = package_dir + "/__init__.py"
    return (
        "import sys, importlib.util as u; "
        f"s = u.spec_from_file_location('sandbox', {init!r}, "
        f"submodule_search_locations=[{package_dir!r}]); "
        "m = u.module_from_spec(s); sys.modules['sandbox'] = m; s.loader.exec_module(m); "
        f"sys.path[:0] = {paths!r}; from sandbox.worker import main; main()"
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _tighten_cpu_limit(cpu_seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + cpu_seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard - 1)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))


def _load(args: dict[str, Any]) -> Executor:
    module_name = executors.module_for(args["executor"], allow_test=bool(args["allow_test"]))
    if module_name is None:
        raise FragmentError("bad_input", "UnknownExecutor")
    context = WorkerContext(**args["context"])
    module = importlib.import_module(module_name)
    executor: Executor = module.Executor(context)
    return executor


def serve(args: dict[str, Any], stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Prepare, wait for the fragment, run it and write the result document."""

    def run() -> str:
        executor = _load(args)
        request = read_request(stdin_fd)
        _tighten_cpu_limit(int(args["cpu_seconds"]))
        return executor.run(request["program"])

    document = run_document(run)
    _write_all(stdout_fd, document.encode("utf-8"))
    return 0


def _serve_forks(args: dict[str, Any]) -> int:
    from sandbox.zygote import serve_forks

    try:
        executor = _load(args)
    except Exception:
        return 1
    return serve_forks(executor, args)


def main() -> None:
    """Entry point inside the sandbox: ``argv[1]`` is the worker's JSON arguments.

    With ``"forks": true`` the worker becomes a fork server (:mod:`sandbox.zygote`) on its
    control socket (descriptor 0) instead of serving one fragment.
    """
    args = json.loads(sys.argv[1])
    if args.get("forks"):
        os._exit(_serve_forks(args))
    result_fd = os.dup(1)
    os.dup2(2, 1)
    code = serve(args, stdout_fd=result_fd)
    sys.stdout.flush()
    os._exit(code)
