"""A private PostgreSQL cluster for the test suite: initdb + pg_ctl on a free port.

As root, the cluster runs as the ``postgres`` system user (PostgreSQL refuses to run as
root). Under CI the cluster must start: a missing server fails the run instead of skipping.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, if any."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for path in reversed(candidates):
        if (Path(path) / "initdb").exists():
            return Path(path)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A running throwaway cluster; ``url(db)`` gives a SQLAlchemy URL."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.port = port
        self.user = user
        self._counter = 0

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        data = self.root / "data"
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "blindgate",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.root / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            )

    def create_database(self) -> str:
        """Create a fresh database and return its SQLAlchemy URL."""
        import psycopg

        self._counter += 1
        name = f"t{os.getpid()}_{self._counter}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=blindgate dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://blindgate@127.0.0.1:{self.port}/{name}"


@contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb) found")
    user = None
    if os.geteuid() == 0:
        user = "postgres"
        pwd.getpwnam(user)
    root = Path(tempfile.mkdtemp(prefix="blindgate-pg-"))
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    cluster = PgCluster(bin_dir, root, free_port(), user)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
