"""The command line's shape: help on every command, the client for every call, and one
clear line (never a traceback) for every failure."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import click
from click.testing import CliRunner

from gateway.cli.main import cli
from gateway.http import create_app
from tests.server import running
from tests.world import World

CLI_DIR = Path(__file__).resolve().parents[1] / "gateway" / "cli"


def _walk(command: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_command_and_option_has_help() -> None:
    missing = []
    for path, command in _walk(cli, "blindgate"):
        if not (command.help or "").strip():
            missing.append(path)
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                missing.append(f"{path} {param.opts[0]}")
    assert missing == []
    assert len(list(_walk(cli, "blindgate"))) > 45


def test_the_deprecated_check_is_hidden_and_one_site_agent_entry_point() -> None:
    job = cli.commands["job"]
    assert isinstance(job, click.Group)
    assert job.commands["check"].hidden
    assert "check" not in CliRunner().invoke(cli, ["job", "--help"]).stdout
    assert "site-agent" not in cli.commands
    site = cli.commands["site"]
    assert isinstance(site, click.Group)
    assert "serve" in site.commands


def test_no_rest_path_is_written_in_the_cli() -> None:
    written = [
        f"{source.name}:{n}"
        for source in sorted(CLI_DIR.glob("*.py"))
        for n, line in enumerate(source.read_text().splitlines(), 1)
        if "/v1/" in line
    ]
    assert written == []


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_gateway_is_one_line_naming_the_url_option() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    for args in (
        ["asset", "list"],
        ["job", "list", "--json"],
        ["licence", "budget", "lic_x"],
        ["audit", "verify"],
    ):
        result = CliRunner().invoke(cli, [*args, "--url", url, "--api-key", "bg_x"])
        assert result.exit_code == 1, (args, result.output)
        assert result.stdout == ""
        assert result.stderr == (
            f"error: cannot reach the gateway at {url} — set --url or BLINDGATE_URL\n"
        )


def test_a_url_without_scheme_is_named() -> None:
    result = CliRunner().invoke(cli, ["asset", "list", "--url", "localhost:8080", "--api-key", "x"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: the gateway URL must start with http:// or https://: localhost:8080"
        " — set --url or BLINDGATE_URL\n"
    )


def test_missing_api_key_names_the_option_and_the_variable() -> None:
    runner = CliRunner(env={"BLINDGATE_API_KEY": None})
    result = runner.invoke(cli, ["job", "list", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert result.stderr == "error: no API key: pass --api-key or set BLINDGATE_API_KEY\n"


def test_api_errors_are_one_line_and_refused_fields_one_line_each(world: World) -> None:
    runner = CliRunner()
    with running(create_app(world.services)) as url:
        operator = ["--url", url, "--api-key", world.operator_key]
        missing = runner.invoke(cli, ["asset", "show", "ast_nothing", *operator])
        assert missing.exit_code == 1
        assert missing.stderr == "error: not_found: no such asset\n"
        wrong_key = runner.invoke(cli, ["asset", "list", "--url", url, "--api-key", "bg_nope"])
        assert wrong_key.exit_code == 1
        assert wrong_key.stderr.startswith("error: unauthenticated: ")
        assert wrong_key.stderr.count("\n") == 1
        refused = runner.invoke(
            cli,
            [
                "asset",
                "dispose",
                world.asset_a,
                "--method",
                "",
                "--digest",
                "not-a-digest",
                "--url",
                url,
                "--api-key",
                world.holder_a_key,
            ],
        )
        assert refused.exit_code == 1
        lines = refused.stderr.splitlines()
        assert lines[0] == "error: validation_failed: the gateway refused 2 fields:"
        assert sorted(line.split(":")[0].strip() for line in lines[1:]) == [
            "destroyed_digest",
            "method",
        ]
        assert all(line.split(":", 1)[1].strip() for line in lines[1:])
        assert "Traceback" not in refused.output


def test_a_server_that_is_not_a_gateway_is_one_line() -> None:
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    other = FastAPI()

    @other.get("/v1/assets")
    def page() -> HTMLResponse:
        return HTMLResponse("<html>hello</html>")

    with running(other) as url:
        result = CliRunner().invoke(cli, ["asset", "list", "--url", url, "--api-key", "bg_x"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: not_a_gateway: the answer is not JSON; is this the URL of a Blindgate gateway?\n"
    )


def test_demo_checks_its_ports_before_seeding(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        busy = int(held.getsockname()[1])
        free = [_closed_port() for _ in range(3)]
        demo_dir = tmp_path / "demo"
        common = ["demo", "--data-dir", str(demo_dir), "--rows", "100"]
        http_busy = CliRunner().invoke(
            cli,
            [
                *common,
                "--http-port",
                str(busy),
                "--grpc-port",
                str(free[0]),
                "--site-port",
                str(free[1]),
            ],
        )
        assert http_busy.exit_code == 1, http_busy.output
        assert http_busy.stderr == (
            f"error: port {busy} (REST API, 127.0.0.1) is in use; pick another with --http-port\n"
        )
        site_busy = CliRunner().invoke(cli, [*common, "--no-serve", "--site-port", str(busy)])
        assert site_busy.exit_code == 1
        assert f"port {busy} (site agent 1 of 3, 127.0.0.1) is in use" in site_busy.stderr
        assert "--site-port" in site_busy.stderr
        assert not demo_dir.exists()  # nothing was reset or seeded


def test_the_client_raises_typed_errors(world: World) -> None:
    import pytest

    from gateway.client import ApiError, Client, GatewayUnreachable

    url = f"http://127.0.0.1:{_closed_port()}"
    with Client(url, "bg_x") as bg, pytest.raises(GatewayUnreachable) as unreachable:
        bg.assets()
    assert unreachable.value.kind == "connect"
    assert unreachable.value.url == url
    assert isinstance(unreachable.value, ConnectionError)
    with running(create_app(world.services)) as live, Client(live, world.holder_a_key) as bg:
        with pytest.raises(ApiError) as refused:
            bg.freeze_asset(world.asset_a, "")
        assert refused.value.status == 422
        assert refused.value.code == "validation_failed"
        assert [f.field for f in refused.value.fields] == ["reason"]
        with pytest.raises(ApiError) as hidden:
            bg.asset("ast_nothing")
        assert (hidden.value.status, hidden.value.code, hidden.value.fields) == (
            404,
            "not_found",
            [],
        )
