"""Hostile Python jobs in the real sandbox: each tries to reach what a job must never
reach (the network, the host's files, the asset itself and other assets, the agent's
state and keys) or to outgrow its limits (processes, memory, outputs, logs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.siteclient.client import SiteClient
from sandbox.agent.config import FileAsset, SiteConfig
from tests.agent.python_jobs import folder, review
from tests.agent.test_python_jobs import job, run, state_of

pytestmark = pytest.mark.slow

PROBE = """\
import json, os, socket
found = {}
def attempt(name, action):
    try:
        action()
        found[name] = "reached"
    except Exception as exc:
        found[name] = "blocked"
def connect(host, port):
    socket.create_connection((host, port), timeout=2).close()
attempt("internet", lambda: connect("1.1.1.1", 443))
attempt("agent", lambda: connect("127.0.0.1", AGENT_PORT))
for name, path in PATHS.items():
    attempt(name, lambda p=path: open(p, "rb").read(1))
attempt("write_code", lambda: open("main.py", "a").write("#"))
attempt("write_data", lambda: open("/data/asset.csv", "a").write("x"))
attempt("proc", lambda: os.listdir("/proc/1"))
found["root"] = sorted(os.listdir("/"))
found["env"] = sorted(os.environ)
json.dump(found, open("outputs/probe.json", "w"))
"""


def released(site: SiteClient, config: SiteConfig, fragment: str) -> dict[str, bytes]:
    assert review(config.state, fragment, release=True)
    outcome = site.fetch_outputs(fragment)
    assert outcome.state == "released"
    return {f.path: f.content for f in outcome.files}


def test_a_job_reaches_neither_the_network_nor_any_file_of_the_host_or_the_agent(
    site: SiteClient, py_config: SiteConfig, py_agent: object, assets: dict[str, Path]
) -> None:
    people = py_config.assets["people-csv"]
    assert isinstance(people, FileAsset)
    tls = py_config.tls
    paths = {
        "asset_itself": str(people.path),
        "other_asset": str(assets["csv"]),
        "agent_key": str(tls.key),
        "ledger": str(py_config.state / "ledger.db"),
        "held_outputs": str(py_config.state / "outputs.db"),
        "check_key": str(py_config.state / "output-check.key"),
        "passwd": "/etc/passwd",
        "shadow": "/etc/shadow",
    }
    code = PROBE.replace("AGENT_PORT", str(py_agent.port)).replace(  # type: ignore[attr-defined]
        "PATHS", json.dumps(paths)
    )
    ticket, outcome = run(site, folder(code))
    assert outcome.ok, outcome
    files = released(site, py_config, ticket.fragment_id)
    found = json.loads(files["probe.json"])
    reached = {name for name, result in found.items() if result == "reached"}
    assert reached == set(), found
    assert set(found["root"]) <= {
        "data",
        "dev",
        "input",
        "opt",
        "tmp",
        "usr",
        "lib",
        "lib64",
        "etc",
        "bin",
        "sbin",
    }
    assert set(found["env"]) >= {"SYFTBOX_FOLDER", "SYFTBOX_EMAIL", "SYFT_IS_IN_JOB"}
    assert not any("KEY" in name or "DSN" in name for name in found["env"])


def test_a_fork_bomb_is_contained_and_the_site_serves_the_next_job(site: SiteClient) -> None:
    _, outcome = run(
        site, job("import os\nwhile True:\n    try: os.fork()\n    except OSError: pass")
    )
    assert not outcome.ok
    assert outcome.failure in ("timeout", "memory", "internal")
    _, after = run(site, job("open('outputs/n.txt', 'w').write(str(len(rows)))"))
    assert after.ok and state_of(after) == "held"


def test_memory_beyond_the_policys_limit_fails_the_job(site: SiteClient) -> None:
    _, outcome = run(
        site, job("hog = bytearray(900 * 1024 * 1024)\nhog[::4096] = b'x' * len(hog[::4096])")
    )
    assert (outcome.ok, outcome.failure) == (False, "memory")


@pytest.mark.parametrize(
    "body",
    [
        "for i in range(20): open(f'outputs/f{i}.txt', 'w').write('x')",
        "open('outputs/big.txt', 'w').write('x' * 200_000)",
        "import os\nos.symlink('/data/asset.csv', 'outputs/copy.csv')",
    ],
    ids=["too_many_files", "file_too_large", "link_to_the_data"],
)
def test_outputs_beyond_the_caps_or_not_files_fail_the_job(site: SiteClient, body: str) -> None:
    _, outcome = run(site, job(body))
    assert not outcome.ok
    assert outcome.failure in ("output_too_large", "bad_input")


def test_a_log_flood_is_cut_at_the_file_size_limit_and_returned_in_part(
    site: SiteClient, py_config: SiteConfig
) -> None:
    ticket, outcome = run(site, job("import sys\nwhile True: sys.stdout.write('y' * 65536)"))
    assert outcome.ok, outcome
    assert state_of(outcome) == "held"
    files = released(site, py_config, ticket.fragment_id)
    assert len(files["::stdout.txt"]) == 64 * 1024
    assert b"File too large" in files["::stderr.txt"] or files["::stderr.txt"] == b""
