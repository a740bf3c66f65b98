"""A site agent stopped with SIGTERM leaves no fragment cgroup behind.

The agent runs as a real process with pre-started sandboxes and a fragment in
flight; while it runs its fragment cgroups exist, and after SIGTERM none of them
(named after the agent's pid) is left in any hierarchy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from gateway.siteclient.client import SiteClient
from sandbox.cgroups import CgroupManager
from tests.agent.conftest import Pki, agent_document
from tests.agent.test_fragments import python
from tests.agent.test_pki import ROOT, _free_port


def _fragment_cgroups(manager: CgroupManager, pid: int) -> list[Path]:
    parents = {manager.memory_parent, manager.pids_parent, manager.cpuacct_parent}
    found: list[Path] = []
    for parent in parents:
        if parent is not None and parent.is_dir():
            found += [
                child for child in parent.iterdir() if child.name.startswith(f"blindgate-{pid}-")
            ]
    return found


def test_sigterm_leaves_no_fragment_cgroups(
    tmp_path: Path, certs: Pki, assets: dict[str, Path]
) -> None:
    manager = CgroupManager.detect()
    doc = agent_document(certs, assets, tmp_path / "cache")
    port = _free_port()
    doc.update(listen=f"127.0.0.1:{port}", pool_size=2)
    doc["limits"] = {"cpu_seconds": 5, "wall_seconds": 30.0}
    doc["tls"]["ca"] = str(certs.root / "ca" / "ca.crt")
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "site", "serve", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = SiteClient(
        f"127.0.0.1:{port}",
        certs.ca,
        certs.gateway.cert,
        certs.gateway.key,
        certs.site.fingerprint,
        attempts=1,
    )

    def run_long_fragment() -> None:
        with contextlib.suppress(Exception):  # the agent goes away under it
            client.run_fragment(python("import time\ntime.sleep(20)\n"))

    in_flight = threading.Thread(target=run_long_fragment, daemon=True)
    try:
        deadline = time.monotonic() + 30
        while not client.healthy(timeout=1):
            assert process.poll() is None, "the agent exited"
            assert time.monotonic() < deadline, "the agent did not come up"
            time.sleep(0.1)
        in_flight.start()
        while len(_fragment_cgroups(manager, process.pid)) < 2:
            assert time.monotonic() < deadline, "no fragment cgroups appeared"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        client.close()
    assert code == 0
    assert _fragment_cgroups(manager, process.pid) == []
