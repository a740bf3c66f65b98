"""The README's licensing walkthrough, through the real CLI against a real server."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from blindgate_demo.seed import write_examples
from gateway.cli.main import cli
from gateway.http import create_app
from tests.governance.conftest import policy_for
from tests.server import running
from tests.world import World


def test_keys_policy_licence_and_dry_run(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    w = world
    with running(create_app(w.services)) as url:

        def run(*args: str, key: str) -> tuple[int, str, str]:
            result = runner.invoke(cli, [*args, "--url", url, "--api-key", key])
            return result.exit_code, result.stdout, result.stderr

        holder_pem, operator_pem = tmp_path / "holder.pem", tmp_path / "operator.pem"
        holder_pub = runner.invoke(cli, ["keys", "generate", "--out", str(holder_pem)]).stdout
        operator_pub = runner.invoke(cli, ["keys", "generate", "--out", str(operator_pem)]).stdout
        assert oct(holder_pem.stat().st_mode & 0o777) == "0o600"
        again = runner.invoke(cli, ["keys", "generate", "--out", str(holder_pem)])
        assert again.exit_code != 0  # never overwrites a key
        assert (
            run("org", "set-key", w.holder_a.org_id, holder_pub.strip(), key=w.holder_a_key)[0] == 0
        )
        assert (
            run("org", "set-key", w.operator.org_id, operator_pub.strip(), key=w.operator_key)[0]
            == 0
        )

        bad = tmp_path / "bad.yaml"
        bad.write_text(policy_for(w.asset_a).replace("control: filter", "control: filtre"))
        code, _, err = run("policy", "set", w.asset_a, str(bad), key=w.holder_a_key)
        assert code == 1
        assert f"{bad}:" in err and "columns.age.control" in err
        good = tmp_path / "policy.yaml"
        good.write_text(policy_for(w.asset_a))
        assert run("policy", "set", w.asset_a, str(good), key=w.holder_a_key)[0] == 0

        code, out, err = run(
            "licence",
            "offer",
            "--key",
            str(holder_pem),
            "--operator-org",
            w.operator.org_id,
            "--asset",
            w.asset_a,
            "--purpose",
            "public-health-research",
            "--epsilon-cap",
            "5",
            "--valid-from",
            "2025-12-01",
            "--json",
            key=w.holder_a_key,
        )
        assert code == 0, err
        licence_id = json.loads(out)["id"]
        code, out, err = run(
            "licence",
            "accept",
            licence_id,
            "--key",
            str(operator_pem),
            "--json",
            key=w.operator_key,
        )
        assert code == 0, err
        assert json.loads(out)["status"] == "active"

        examples = tmp_path / "examples"
        write_examples(examples, w.asset_a)
        allowed = json.loads((examples / "job-allowed.json").read_text())
        allowed["columns"] = [c for c in allowed["columns"] if c["column"] != "district"]
        (examples / "job-allowed.json").write_text(json.dumps(allowed))
        allowed_file, denied_file = (
            str(examples / "job-allowed.json"),
            str(examples / "job-denied.json"),
        )
        code, out, _ = run("job", "dry-run", allowed_file, key=w.operator_key)
        assert code == 0, out
        assert out.startswith("ALLOW")
        code, out, _ = run("job", "dry-run", denied_file, key=w.operator_key)
        assert code == 1
        assert "purpose_not_allowed" in out and "fix:" in out
        # the former name still works for one release, and says it is deprecated
        code, out, err = run("job", "check", denied_file, key=w.operator_key)
        assert code == 1
        assert "purpose_not_allowed" in out
        assert (
            err.strip() == "note: `blindgate job check` is deprecated; use `blindgate job dry-run`"
        )
        code, out, _ = run(
            "licence",
            "budget",
            licence_id,
            "--epsilon-per-job",
            "0.5",
            "--json",
            key=w.operator_key,
        )
        assert json.loads(out)["jobs_that_fit"] == 6
        code, out, _ = run(
            "licence", "budget", licence_id, "--epsilon-per-job", "0.5", key=w.operator_key
        )
        assert code == 0, out
        assert f"licence {licence_id}: epsilon used 0 of 5, 5 left" in out
        assert "jobs of epsilon 0.5 that still fit: 6" in out
