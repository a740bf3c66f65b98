"""``blindgate syft-bridge serve --config bridge.yaml``: syft-rds jobs into a Blindgate site.

Needs ``pip install 'blindgate[pysyft]'``; the rest of Blindgate never imports syft.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from gateway.cli.output import fail


@click.group("syft-bridge")
def syft_bridge() -> None:
    """Bridge a holder's syft-rds datasite to Blindgate (blindgate[pysyft])."""


@syft_bridge.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The bridge's bridge.yaml.",
)
@click.option("--once", is_flag=True, help="Run one round and stop.")
def serve(config_path: Path, once: bool) -> None:
    """Submit syft-rds jobs to Blindgate and deposit what the holders release."""
    try:
        from gateway.syftbridge.bridge import BridgeSettings, SyftBridge, login
        from gateway.syftbridge.config import load
    except ImportError:
        fail("the bridge needs PySyft: pip install 'blindgate[pysyft]'", 2)
    from pydantic import ValidationError

    from gateway.client import Client

    try:
        config = load(config_path)
        operators = {
            email: Client(config.gateway, entry.key()) for email, entry in config.operators.items()
        }
    except (ValidationError, ValueError) as exc:
        fail(f"invalid configuration {config_path}: {exc}", 2)
    bridge = SyftBridge(
        login(config.syftbox.email, config.syftbox.token_path),
        BridgeSettings(
            assets=config.assets,
            purpose=config.purpose,
            operators=operators,
            dataset=config.dataset,
            state_file=config.state_file,
        ),
        report=click.echo,
    )
    while True:
        bridge.step()
        if once:
            return
        time.sleep(config.poll_seconds)


COMMANDS = (syft_bridge,)
