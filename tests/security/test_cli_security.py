"""The security team's command line: suspension create|list|lift, audit tail (and
--follow, as JSON lines a SIEM ingests) and audit check-copy on that copy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli.main import cli
from tests.security.conftest import PROBE, SQL, Watched

pytestmark = pytest.mark.slow


def run(w: Watched, key: str, *args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(cli, [*args, "--url", w.url, "--api-key", key])
    return done.exit_code, done.stdout, done.stderr


def test_suspension_from_the_command_line(watched: Watched) -> None:
    w = watched
    org = w.fed.operator.org_id
    code, _, err = run(w, w.operator_key, "suspension", "create", "org", org, "--reason", "x")
    assert code == 1 and "forbidden" in err
    code, out, _ = run(w, w.auditor_key, "suspension", "create", "org", org, "--reason", "probe")
    assert code == 0 and out.startswith(f"suspended org {org}: sus_")
    suspension_id = out.split(": ")[1].split()[0]
    refused = w.submit(SQL)
    assert refused["decision"]["reasons"][0]["code"] == "operator_suspended"
    code, out, _ = run(w, w.auditor_key, "suspension", "list")
    assert code == 0 and suspension_id in out and "probe" in out
    code, _, err = run(w, w.holder_key, "suspension", "lift", suspension_id, "--reason", "no")
    assert code == 1
    code, out, _ = run(w, w.auditor_key, "suspension", "lift", suspension_id, "--reason", "ok")
    assert code == 0 and out.startswith(f"lifted {suspension_id}")
    code, out, _ = run(w, w.auditor_key, "suspension", "list", "--json")
    assert json.loads(out) == []


def test_tail_filters_and_follows_as_json_lines(watched: Watched, tmp_path: Path) -> None:
    w = watched
    w.submit(PROBE)
    principal = w.fed.operator.principal_id
    code, out, _ = run(
        w, w.auditor_key, "audit", "tail", "-n", "5", "--principal", principal, "--decision",
        "deny",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines and all(" deny " in line and principal in line for line in lines)
    code, _, _ = run(w, w.auditor_key, "audit", "tail", "--decision", "perhaps")
    assert code == 2
    # --follow --json in the background, as a SIEM shipper would run it
    copy = tmp_path / "siem.jsonl"
    env = {**os.environ, "BLINDGATE_URL": w.url, "BLINDGATE_API_KEY": w.auditor_key}
    with copy.open("wb") as sink:
        follower = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli.main", "audit", "tail", "-n", "3", "--follow",
             "--poll", "0.2", "--json"],
            stdout=sink, env=env,
        )  # fmt: skip
        try:
            time.sleep(2)
            for _ in range(3):
                w.submit(PROBE)
            deadline = time.monotonic() + 30
            while copy.read_text().count("\n") < 6 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            follower.terminate()
            follower.wait(timeout=10)
    rows = [json.loads(line) for line in copy.read_text().splitlines()]
    assert len(rows) >= 6
    indexes = [r["index"] for r in rows]
    assert indexes == sorted(set(indexes))  # in log order, no duplicates
    assert [r["entry"]["action"] for r in rows].count("job.submit") >= 3
    # the SIEM's copy checks against the live log ...
    code, out, _ = run(w, w.auditor_key, "audit", "check-copy", str(copy))
    assert code == 0, out
    assert out.startswith(f"OK: {len(rows)} entries are in the log")
    # ... and one edited entry is found
    lines = copy.read_text().splitlines()
    assert '"time":"20' in lines[1]
    lines[1] = lines[1].replace('"time":"20', '"time":"19', 1)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    code, out, _ = run(w, w.auditor_key, "audit", "check-copy", str(tampered))
    assert code == 1
    assert f"line 2 (index {rows[1]['index']})" in out
