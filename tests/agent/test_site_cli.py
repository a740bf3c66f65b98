"""``blindgate site init`` and ``site endorse``: the agent's key and its holder's endorsement,
and ``site serve`` refusing an agent its holder did not endorse."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml
from click.testing import CliRunner

from contracts import encode_public_key, generate_keypair, private_key_to_pem
from contracts.endorsement import parse_endorsement, verify_endorsement
from gateway.cli.main import cli
from sandbox.agent.config import parse_config
from sandbox.agent.identity import load_identity
from tests.agent.conftest import Pki, agent_document


def test_init_writes_a_private_key_and_prints_its_public_key(tmp_path: Path) -> None:
    runner = CliRunner()
    made = runner.invoke(cli, ["site", "init", "--dir", str(tmp_path / "site")])
    assert made.exit_code == 0, made.output
    key_file = tmp_path / "site" / "identity.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public_key = made.stdout.strip()
    assert len(public_key) == 44 and public_key.endswith("=")
    assert "keep it private" in made.stderr
    again = runner.invoke(cli, ["site", "init", "--dir", str(tmp_path / "site"), "--json"])
    assert again.exit_code == 1
    assert "not overwriting" in again.stderr
    other = runner.invoke(cli, ["site", "init", "--dir", str(tmp_path / "other"), "--json"])
    assert json.loads(other.stdout)["key_file"] == str(tmp_path / "other" / "identity.pem")


def test_endorse_signs_the_agent_key_for_the_organisation(
    tmp_path: Path, certs: Pki, assets: dict[str, Path]
) -> None:
    runner = CliRunner()
    holder = generate_keypair()
    (tmp_path / "holder.pem").write_bytes(private_key_to_pem(holder.private_key))
    agent_key = runner.invoke(cli, ["site", "init", "--dir", str(tmp_path)]).stdout.strip()
    endorsed = runner.invoke(
        cli,
        [
            "site",
            "endorse",
            "--key",
            str(tmp_path / "holder.pem"),
            "--org",
            "org_riverside",
            "--agent-key",
            agent_key,
            "--name",
            "riverside-site",
            "--out",
            str(tmp_path / "endorsement.json"),
        ],
    )
    assert endorsed.exit_code == 0, endorsed.output
    sections = yaml.safe_load(endorsed.stdout)
    assert sections["holder"] == {
        "organisation": "org_riverside",
        "keys": [encode_public_key(holder.public_key)],
    }
    endorsement = parse_endorsement((tmp_path / "endorsement.json").read_bytes())
    assert endorsement.terms.name == "riverside-site"
    verify_endorsement(
        endorsement, [holder.public_key], organisation="org_riverside", agent_key=agent_key
    )
    # The printed sections are what the agent needs to start with this identity.
    document = {**agent_document(certs, assets, tmp_path / "cache"), **sections}
    identity = load_identity(parse_config(document, tmp_path))
    assert identity.public_key == agent_key
    assert identity.organisation == "org_riverside"

    bad = runner.invoke(
        cli,
        [
            "site",
            "endorse",
            "--key",
            str(tmp_path / "holder.pem"),
            "--org",
            "org_riverside",
            "--agent-key",
            "not-a-key",
            "--out",
            str(tmp_path / "bad.json"),
        ],
    )
    assert bad.exit_code == 1
    assert "cannot endorse" in bad.stderr
    assert not (tmp_path / "bad.json").exists()


def test_serve_refuses_an_agent_its_holder_did_not_endorse(
    tmp_path: Path, certs: Pki, assets: dict[str, Path]
) -> None:
    runner = CliRunner()
    stranger = generate_keypair()
    (tmp_path / "stranger.pem").write_bytes(private_key_to_pem(stranger.private_key))
    agent_key = runner.invoke(cli, ["site", "init", "--dir", str(tmp_path)]).stdout.strip()
    runner.invoke(
        cli,
        [
            "site",
            "endorse",
            "--key",
            str(tmp_path / "stranger.pem"),
            "--org",
            certs.holder_org,
            "--agent-key",
            agent_key,
            "--out",
            str(tmp_path / "endorsement.json"),
        ],
    )
    document = agent_document(certs, assets, tmp_path / "cache")
    document["identity"] = {"key": "identity.pem", "endorsement": "endorsement.json"}
    document["tls"]["ca"] = str(certs.root / "ca" / "ca.crt")
    (tmp_path / "site.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    refused = runner.invoke(cli, ["site", "serve", "--config", str(tmp_path / "site.yaml")])
    assert refused.exit_code == 3
    assert "refusing to start: the endorsement" in refused.stderr
    assert "is not signed by any of holder.keys" in refused.stderr
    assert not (tmp_path / "cache" / "state" / "log.db").exists()
