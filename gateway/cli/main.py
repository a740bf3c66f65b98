"""``blindgate``: initialise, serve, run the demo, and administer a gateway."""

from __future__ import annotations

import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import click

from gateway.cli import admin, audit, governance, jobs, pki, python, security, syft_bridge
from gateway.cli.output import fail
from gateway.config import Settings
from gateway.errors import BlindgateError, Conflict


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _step(message: str) -> None:
    click.echo(click.style("==> ", fg="cyan") + message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="blindgate")
def cli() -> None:
    """Blindgate: a privacy-preserving data-exchange gateway (data usable, never visible)."""


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="State directory.")
@click.option(
    "--admin-org",
    default="Blindgate Platform",
    show_default=True,
    help="Name of the platform's organisation.",
)
@click.option(
    "--admin-name", default="platform-admin", show_default=True, help="Name of the first admin."
)
def init(data_dir: Path | None, admin_org: str, admin_name: str) -> None:
    """Create the data directory and database, and the first admin (its key is shown once)."""
    from gateway.service import build_services
    from gateway.store import open_store

    settings = _settings(data_dir=data_dir)
    _step(f"data directory {settings.data_dir}")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _step(f"migrating the {settings.database_kind()} store")
    store = open_store(settings.resolved_database_url())
    try:
        _step("creating the first admin")
        created = build_services(store, settings).identities.bootstrap_admin(admin_org, admin_name)
    except Conflict:
        click.echo("already initialised; nothing to do", err=True)
        return
    finally:
        store.close()
    click.echo(f"admin principal: {created.principal.id}")
    click.echo(f"admin API key (shown once, store it safely): {created.api_key}")


@cli.command()
@click.option("--data-dir", type=click.Path(path_type=Path), help="State directory.")
@click.option("--host", help="Address to listen on.")
@click.option("--http-port", type=int, help="REST port (default 8080).")
@click.option("--grpc-port", type=int, help="gRPC port (default 50051).")
def serve(
    data_dir: Path | None, host: str | None, http_port: int | None, grpc_port: int | None
) -> None:
    """Serve the gateway's REST API (and gRPC) until interrupted."""
    from gateway.app import Gateway
    from gateway.service import build_services
    from gateway.store import open_store

    settings = _settings(data_dir=data_dir, host=host, http_port=http_port, grpc_port=grpc_port)
    _setup_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_database_url())
    try:
        Gateway(build_services(store, settings)).serve_forever()
    finally:
        store.close()


for module in (admin, pki, audit, governance, jobs, python, security, syft_bridge):
    for group in module.COMMANDS:
        cli.add_command(group)


def _plug_ins() -> None:
    """Commands other installed packages add (entry points ``blindgate.commands``), such
    as ``blindgate demo``."""
    for entry in metadata.entry_points(group="blindgate.commands"):
        if entry.name in cli.commands:
            continue
        try:
            cli.add_command(entry.load(), entry.name)
        except ImportError as exc:  # a broken plug-in must not take the CLI down with it
            logging.getLogger("blindgate").warning(
                "command %r not available: %s", entry.name, type(exc).__name__
            )


_plug_ins()


def main() -> None:
    """Console-script entry point: clean messages instead of tracebacks for known errors."""
    try:
        cli(standalone_mode=True)
    except BlindgateError as exc:
        body = exc.public_body()["error"]
        fail(f"{body['code']}: {body.get('detail') or body['message']}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
