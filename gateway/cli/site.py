"""``blindgate site serve --config site.yaml``: run a site agent next to the data."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from gateway.cli.output import fail


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The agent's site.yaml.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much the agent logs.",
)
def serve(config_path: Path, log_level: str) -> None:
    """Run this site's agent (gRPC over mutual TLS) until interrupted."""
    from pydantic import ValidationError

    from sandbox.agent.config import load_config
    from sandbox.agent.server import serve as serve_agent
    from sandbox.runner import IsolationError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(config_path)
    except ValidationError as exc:
        fail(f"invalid configuration {config_path}:\n{exc}", 2)
    try:
        serve_agent(config)
    except IsolationError as exc:
        fail(f"refusing to start: {exc}", 3)
    except OSError as exc:
        fail(f"cannot start the site agent: {exc}", 3)
