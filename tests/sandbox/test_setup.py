"""Fresh-machine set-up: the system-package script, the Docker image and its context."""

from __future__ import annotations

import fnmatch
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "system-packages"
TOOLS = ("bash", "ls", "grep", "ldconfig", "id", "runuser", "make", "cat")


def _fake_bin(tmp_path: Path, without: set[str]) -> Path:
    """A PATH directory holding the real tools except ``without``, and a recording apt-get."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for tool in (*TOOLS, "bwrap", "promtool", "chromium", "chromedriver"):
        found = shutil.which(tool, path=os.defpath + ":/usr/sbin:/sbin")
        if tool not in without and found:
            (directory / tool).symlink_to(found)
    log = tmp_path / "apt.log"
    apt = directory / "apt-get"
    apt.write_text(f'#!/bin/sh\necho "$@" >> {log}\n', encoding="utf-8")
    apt.chmod(0o755)
    return directory


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(SCRIPT)],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="the fake apt-get is called without sudo as root")
def test_system_packages_installs_only_what_is_missing(tmp_path: Path) -> None:
    done = _run(_fake_bin(tmp_path, without={"bwrap"}))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "system packages: bubblewrap missing (Debian package bubblewrap)" in lines
    assert all(line.startswith("system packages: ") for line in lines)
    calls = (tmp_path / "apt.log").read_text(encoding="utf-8").splitlines()
    assert calls[0] == "update -q"
    assert calls[1].split()[-1] == "bubblewrap"
    assert "postgresql" not in calls[1]


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed here")
def test_system_packages_does_nothing_when_all_is_present(tmp_path: Path) -> None:
    done = _run(_fake_bin(tmp_path, without=set()))
    assert done.returncode == 0, done.stderr
    assert all(line.endswith(" present") for line in done.stdout.splitlines())
    assert len(done.stdout.splitlines()) >= 5
    assert not (tmp_path / "apt.log").exists()


def test_make_test_runs_the_script_first_and_ci_only_calls_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^test: (.*?)##", makefile, re.MULTILINE)
    assert target is not None
    assert target.group(1).split()[0] == "system-packages"
    assert "--quiet" not in makefile
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "apt-get" not in ci
    assert ci.strip().splitlines()[-1] == "make test"


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")


def _healthcheck_code() -> str:
    line = next(x for x in _dockerfile().splitlines() if x.startswith("HEALTHCHECK"))
    argv = json.loads(line[line.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"]
    code: str = argv[2]
    return code


@pytest.fixture
def readyz() -> Iterator[int]:
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthcheck_follows_the_configured_port(readyz: int) -> None:
    code = _healthcheck_code()
    assert "8080" not in code.replace("or '8080'", "")

    def check(port: int) -> int:
        env = {"BLINDGATE_HTTP_PORT": str(port), "PATH": os.defpath}
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, timeout=20, check=False
        ).returncode

    assert check(readyz) == 0
    assert check(_closed_port()) != 0


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_image_installs_bubblewrap_for_strong_site_agents() -> None:
    runtime_stage = _dockerfile().split("\nFROM ")[-1]
    install = next(line for line in runtime_stage.splitlines() if "apt-get install" in line)
    assert "bubblewrap" in install
    assert "libseccomp2" in install


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule for the tested paths: the last matching pattern wins; a match on a
    directory excludes everything below it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        for prefix in prefixes:
            names = [prefix]
            if pattern.startswith("**/"):
                names += ["/".join(prefix.split("/")[i:]) for i in range(len(prefix.split("/")))]
            if any(fnmatch.fnmatchcase(n, c) for n in names for c in candidates):
                verdict = not negate
    return verdict


def test_dockerignore_keeps_environments_and_keys_out() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in (
        ".venv/bin/python",
        ".git/config",
        ".blindgate/trace.key",
        ".blindgate-demo/keys.env",
        ".blindgate-demo/pki/ca/ca.key",
        "site/tls/site.key",
        "sandbox/__pycache__/runner.cpython-311.pyc",
        ".pytest_cache/v/cache",
    ):
        assert _ignored(path, patterns), path
    for path in (
        "pyproject.toml",
        "README.md",
        "gateway/pki.py",
        "gateway/cli/pki.py",
        "sandbox/launcher.py",
        "proto/blindgate.proto",
        "policies/__init__.py",
        "contracts/__init__.py",
    ):
        assert not _ignored(path, patterns), path
