"""``python``: a syft-rds job folder's code, run unchanged inside the sandbox.

The site binds the job folder read-only at the input directory (``/input``: ``code/``,
with an empty ``code/outputs/`` on a capped tmpfs of its own) and the asset's copy
projected to the policy's columns as the asset (``/data/asset.csv``).  This executor lays
out, on the sandbox's private ``/tmp``, the SyftBox tree syft-rds jobs read their dataset
from (``$SYFTBOX_FOLDER/<datasite>/private/syft_datasets/v1/<name>/<name>.csv``, a link to
the projection), and runs the entrypoint in a child interpreter with ``code/`` as its
working directory and the environment syft's runner gives a job (``SYFTBOX_FOLDER``,
``SYFTBOX_EMAIL``, ``SYFT_IS_IN_JOB=true``).  ``import syft`` finds a small stand-in for
the helpers jobs call (:mod:`sandbox.executors.syft_standin.syft`), never PySyft.

The job's standard output and error go to files on the same ``/tmp`` (the file-size
limit ends a job that floods them), then the files the job left in ``outputs/`` are read
without following links, within the caps the program gives (files, bytes per file, bytes
in all: past any of them the fragment fails as ``output_too_large``), and returned as
rows ``(kind, path, size, sha256, content)`` with the content in base64, beside rows for
the logs' first bytes and the exit status.  What may be released is decided by the agent
and the holder, never here.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from typing import Any

from sandbox.executors.base import FragmentError, WorkerContext, table_document

_BOOT = (
    "import json, runpy, sys; a = json.loads(sys.argv[1]); sys.path[:0] = a['paths']; "
    "sys.argv = [a['entrypoint']]; runpy.run_path(a['entrypoint'], run_name='__main__')"
)
COLUMNS = ["kind", "path", "size", "sha256", "content"]


def _standin() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "syft_standin")


def _read_nofollow(path: str, limit: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        chunks = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > limit:
                raise FragmentError("output_too_large", "OutputFileTooLarge")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _outputs(root: str, caps: dict[str, int]) -> list[tuple[str, bytes]]:
    """Regular files under ``root`` (links and special files refused), within the caps."""
    found: list[tuple[str, bytes]] = []
    total = 0
    stack = [""]
    while stack:
        relative = stack.pop()
        directory = os.path.join(root, relative) if relative else root
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = f"{relative}/{entry.name}" if relative else entry.name
            mode = os.lstat(entry.path).st_mode
            if stat.S_ISDIR(mode):
                if path.count("/") >= 8:
                    raise FragmentError("output_too_large", "OutputsTooDeep")
                stack.append(path)
                continue
            if not stat.S_ISREG(mode):
                raise FragmentError("bad_input", "OutputNotAFile")
            if len(found) >= caps["max_files"]:
                raise FragmentError("output_too_large", "TooManyOutputFiles")
            data = _read_nofollow(entry.path, caps["max_file_bytes"])
            total += len(data)
            if total > caps["max_total_bytes"]:
                raise FragmentError("output_too_large", "OutputsTooLarge")
            found.append((path, data))
    return found


def _head(path: str, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return b""


def _row(kind: str, path: str, data: bytes) -> list[object]:
    content = base64.b64encode(data).decode("ascii")
    return [kind, path, len(data), hashlib.sha256(data).hexdigest(), content]


class Executor:
    """Runs one job folder's entrypoint once."""

    def __init__(self, context: WorkerContext) -> None:
        self._context = context

    def _layout(self, spec: dict[str, Any]) -> str:
        """The SyftBox tree on /tmp, with the projection linked where jobs look for it."""
        tmp = self._context.tmp_dir
        dataset = str(spec["dataset"])
        if not dataset or "/" in dataset or dataset.startswith("."):
            raise FragmentError("bad_input", "BadDatasetName")
        root = os.path.join(tmp, "syftbox")
        home = os.path.join(root, str(spec["datasite"]), "private", "syft_datasets", "v1")
        os.makedirs(os.path.join(home, dataset))
        os.symlink(self._context.asset_path, os.path.join(home, dataset, f"{dataset}.csv"))
        return root

    def run(self, program: str) -> str:
        """Run the job, then collect its outputs and logs."""
        try:
            spec = json.loads(program)
            caps = {key: int(spec["outputs"][key]) for key in ("max_files", "max_file_bytes")}
            caps["max_total_bytes"] = int(spec["outputs"]["max_total_bytes"])
            entrypoint = str(spec["entrypoint"])
            log_bytes = int(spec.get("log_bytes", 65536))
        except (ValueError, KeyError, TypeError):
            raise FragmentError("bad_input", "BadProgram") from None
        if self._context.input_dir is None:
            raise FragmentError("bad_input", "NoJobFolder")
        code = os.path.join(self._context.input_dir, "code")
        outputs = os.path.join(code, "outputs")
        if not os.path.isfile(os.path.join(code, entrypoint)):
            raise FragmentError("bad_input", "NoEntrypoint")
        tmp = self._context.tmp_dir
        environment = {
            "HOME": tmp,
            "TMPDIR": tmp,
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "SYFTBOX_FOLDER": self._layout(spec),
            "SYFTBOX_EMAIL": str(spec["datasite"]),
            "SYFT_IS_IN_JOB": "true",
        }
        if "LD_LIBRARY_PATH" in os.environ:
            environment["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        paths = [_standin(), code, *[p for p in sys.path if p]]
        arguments = json.dumps({"paths": paths, "entrypoint": entrypoint})
        stdout, stderr = os.path.join(tmp, "stdout.txt"), os.path.join(tmp, "stderr.txt")
        with open(stdout, "wb") as out, open(stderr, "wb") as err:
            child = subprocess.run(  # noqa: PLW1510 - the exit status is reported, not raised
                [sys.executable, "-I", "-S", "-c", _BOOT, arguments],
                cwd=code,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        if child.returncode == -9:  # only the kernel's OOM killer sends SIGKILL in here
            raise FragmentError("memory", "JobKilled")
        if child.returncode == -25:  # SIGXFSZ: a log outgrew the file-size limit
            raise FragmentError("output_too_large", "LogTooLarge")
        rows = [_row("output", path, data) for path, data in _outputs(outputs, caps)]
        rows.append(_row("stdout", "stdout.txt", _head(stdout, log_bytes)))
        rows.append(_row("stderr", "stderr.txt", _head(stderr, log_bytes)))
        rows.append(["exit", "", child.returncode, "", ""])
        return table_document(COLUMNS, ["TEXT"] * len(COLUMNS), rows, self._context.output_bytes)
