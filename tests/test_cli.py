"""The command line: init, demo seeding, and REST-backed admin commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from contracts import private_key_from_pem
from gateway.cli.main import cli
from gateway.http import create_app
from gateway.service import build_services
from gateway.store import open_store
from tests.server import running
from tests.world import StandInAgents, World


def test_init_creates_store_and_admin_once(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["init", "--data-dir", str(tmp_path / "d")])
    assert first.exit_code == 0, first.output
    key = first.stdout.split("shown once, store it safely): ")[1].strip()
    assert key.startswith("bg_")
    assert (tmp_path / "d" / "blindgate.db").exists()
    second = runner.invoke(cli, ["init", "--data-dir", str(tmp_path / "d")])
    assert second.exit_code == 0
    assert "already initialised" in second.output
    store = open_store(f"sqlite:///{tmp_path / 'd' / 'blindgate.db'}")
    from gateway.config import Settings

    services = build_services(store, Settings(data_dir=tmp_path / "d"))
    actor = services.identities.authenticate(f"Bearer {key}")
    assert actor.role == "admin"
    store.close()


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    import socket

    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = int(probe.getsockname()[1])
        if base + count > 65535:
            continue
        try:
            held = []
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
        return base
    raise RuntimeError("no free ports")


def test_demo_seeds_and_refuses_foreign_directories(tmp_path: Path) -> None:
    runner = CliRunner()
    demo_dir = tmp_path / "demo"
    base = free_ports(5)
    ports = [
        *("--site-port", str(base)),
        *("--http-port", str(base + 3)),
        *("--grpc-port", str(base + 4)),
    ]
    result = runner.invoke(
        cli, ["demo", "--data-dir", str(demo_dir), "--rows", "500", "--no-serve", *ports]
    )
    assert result.exit_code == 0, result.output
    env = (demo_dir / "keys.env").read_text()
    assert "OPERATOR_KEY=bg_" in env
    assert oct((demo_dir / "keys.env").stat().st_mode & 0o777) == "0o600"
    rows = (demo_dir / "sites" / "riverside" / "admissions.csv").read_text().splitlines()
    assert len(rows) == 501
    # a second run resets the demo directory
    again = runner.invoke(
        cli, ["demo", "--data-dir", str(demo_dir), "--rows", "200", "--no-serve", *ports]
    )
    assert again.exit_code == 0, again.output
    assert (
        len((demo_dir / "sites" / "riverside" / "admissions.csv").read_text().splitlines()) == 201
    )
    foreign = tmp_path / "precious"
    foreign.mkdir()
    (foreign / "data.txt").write_text("keep me")
    refused = runner.invoke(cli, ["demo", "--data-dir", str(foreign), "--no-serve"])
    assert refused.exit_code != 0
    assert (foreign / "data.txt").read_text() == "keep me"


def test_admin_commands_over_rest(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    with running(create_app(world.services)) as url:
        base = ["--url", url, "--api-key", world.admin_key]
        as_json = [*base, "--json"]
        created = runner.invoke(cli, ["org", "create", "Weather Service", *as_json])
        assert created.exit_code == 0, created.output
        org_id = json.loads(created.stdout)["id"]
        principal = runner.invoke(
            cli,
            ["principal", "create", "forecaster", "--org", org_id, "--role", "holder", *as_json],
        )
        assert principal.exit_code == 0, principal.output
        p = json.loads(principal.stdout)
        holder_key = p["api_key"]
        signing_key = runner.invoke(cli, ["keys", "generate", "--out", str(tmp_path / "met.pem")])
        registered = runner.invoke(
            cli, ["org", "set-key", org_id, signing_key.stdout.strip(), *as_json]
        )
        assert registered.exit_code == 0, registered.output
        agents = world.services.sites.prover
        assert isinstance(agents, StandInAgents)
        holder_signing = private_key_from_pem((tmp_path / "met.pem").read_bytes())
        agents.add("10.0.0.5:50061", "ab" * 32, org_id, holder_signing)
        site = runner.invoke(
            cli,
            [
                "site",
                "register",
                "met-site",
                "--address",
                "10.0.0.5:50061",
                "--fingerprint",
                "AB:" * 31 + "AB",
                "--url",
                url,
                "--api-key",
                holder_key,
                "--json",
            ],
        )
        assert site.exit_code == 0, site.output
        assert json.loads(site.stdout)["tls_fingerprint"] == "ab" * 32
        rotated = runner.invoke(cli, ["key", "rotate", p["principal"]["id"], *as_json])
        assert rotated.exit_code == 0
        new_key = json.loads(rotated.stdout)["api_key"]
        denied = runner.invoke(cli, ["site", "list", "--url", url, "--api-key", holder_key])
        assert denied.exit_code == 1
        assert "unauthenticated" in denied.output
        listed = runner.invoke(cli, ["site", "list", "--url", url, "--api-key", new_key, "--json"])
        assert [s["name"] for s in json.loads(listed.stdout)] == ["met-site"]
        orgs = runner.invoke(cli, ["org", "list", *base])
        assert "Weather Service" in orgs.stdout
        frozen = runner.invoke(
            cli,
            [
                "asset",
                "freeze",
                world.asset_a,
                "--reason",
                "audit",
                "--url",
                url,
                "--api-key",
                world.auditor_key,
                "--json",
            ],
        )
        assert json.loads(frozen.stdout)["management"]["status"] == "frozen"


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).parent / "blindgate"
    out = subprocess.run(
        [str(exe), "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    for command in ("init", "serve", "demo", "org", "principal", "key", "site", "asset"):
        assert command in out.stdout
