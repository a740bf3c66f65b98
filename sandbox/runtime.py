"""The Python runtime a sandboxed worker needs, and nothing more.

Computes which host paths must be visible (read-only) inside a sandbox for the
interpreter, its standard library, the site-packages holding the engines, the
``sandbox`` package itself and the shared libraries, and the ``sys.path`` the
worker starts with (``python -I -S`` skips ``site`` and its ``.pth`` hooks, which
saves several milliseconds per fragment).

The worker never runs the virtualenv's ``python`` inside a namespace sandbox: that
would need the virtualenv's ``pyvenv.cfg``, which names host paths.  It runs the
base interpreter from its installation prefix (``base_prefix``), mounted at a
neutral path, with the site-packages directories put on ``sys.path`` explicitly.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import py_compile
import site
import sys
from dataclasses import dataclass
from pathlib import Path

import sandbox

SYSTEM_PATHS = ("/usr/lib", "/usr/lib64", "/etc/ld.so.cache", "/usr/share/zoneinfo")
LIB_LINKS = ("/lib", "/lib64")

_WORKER_MODULES = (
    "__init__.py",
    "worker.py",
    "zygote.py",
    "launcher.py",
    "landlock.py",
    "executors/__init__.py",
    "executors/base.py",
    "executors/duckdb_sql.py",
    "executors/python_test.py",
    "executors/python_job.py",
    "executors/syft_standin/syft/__init__.py",
)


@dataclass(frozen=True)
class RuntimeLayout:
    """Host paths and interpreter settings for the worker and the launcher."""

    python: str
    read_only_paths: tuple[str, ...]
    lib_links: tuple[tuple[str, str | None], ...]
    site_dirs: tuple[str, ...]
    package_dir: str
    package_parent: str
    base_prefix: str = "/usr"
    base_executable: str = "/usr/bin/python3"
    system_paths: tuple[str, ...] = ()

    @property
    def relocatable(self) -> bool:
        """Whether the base installation is mounted at a neutral path (not ``/usr``).

        A system interpreter (``/usr/bin/python3.x`` with its library under
        ``/usr/lib``) sits at standard paths that reveal nothing of the host; any
        other installation (``/usr/local``, ``/opt/...``, a home directory) is
        mounted whole at a neutral path instead.
        """
        return self.base_prefix != "/usr" and _under(self.base_executable, self.base_prefix)

    @property
    def executable_in_prefix(self) -> str:
        """The base interpreter's path relative to ``base_prefix``."""
        return os.path.relpath(self.base_executable, self.base_prefix)

    @classmethod
    def discover(cls, python: Path | None = None) -> RuntimeLayout:
        """Describe the running interpreter (or ``python``, assumed to be the same one)."""
        executable = str(python or sys.executable)
        base_executable = os.path.realpath(getattr(sys, "_base_executable", executable))
        package_dir = Path(sandbox.__file__).resolve().parent
        package_parent = str(package_dir.parent)
        prefixes = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
        site_dirs = [d for d in site.getsitepackages() if os.path.isdir(d)]
        candidates = [
            *sorted(prefixes),
            *(os.path.realpath(d) for d in site_dirs),
            str(package_dir),
            *SYSTEM_PATHS,
        ]
        read_only = _outermost([p for p in candidates if os.path.exists(p)])
        system = _outermost([p for p in SYSTEM_PATHS if os.path.exists(p)])
        links: list[tuple[str, str | None]] = []
        for link in LIB_LINKS:
            if os.path.islink(link):
                links.append((link, os.readlink(link)))
            elif os.path.isdir(link) and not any(_under(link, p) for p in read_only):
                links.append((link, None))
        return cls(
            python=executable,
            read_only_paths=tuple(read_only),
            lib_links=tuple(links),
            site_dirs=tuple(site_dirs),
            package_dir=str(package_dir),
            package_parent=package_parent,
            base_prefix=os.path.realpath(sys.base_prefix),
            base_executable=base_executable,
            system_paths=tuple(system),
        )

    def precompile(self) -> None:
        """Write bytecode for the modules the worker imports from a read-only bind."""
        package_dir = Path(self.package_dir)
        for name in _WORKER_MODULES:
            source = package_dir / name
            with contextlib.suppress(OSError, py_compile.PyCompileError):
                cached = Path(importlib.util.cache_from_source(str(source)))
                if not cached.exists() or cached.stat().st_mtime < source.stat().st_mtime:
                    py_compile.compile(str(source), cfile=str(cached), doraise=True)


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths already inside another path of the list; keep the order stable."""
    result: list[str] = []
    for path in sorted(set(paths), key=len):
        if not any(_under(path, kept) for kept in result):
            result.append(path)
    return result
