"""The options every gateway command shares (``--url``, ``--api-key``, ``--json``) and the
session a command runs in: one client, one output mode, one way to fail."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from gateway.cli.output import fail, failures, print_json
from gateway.client import Client

DEFAULT_URL = "http://127.0.0.1:8080"
MISSING_KEY = "no API key: pass --api-key or set BLINDGATE_API_KEY"

R = TypeVar("R")


@dataclass(frozen=True)
class Session:
    """What a gateway command works with: the client, and whether to print JSON."""

    client: Client
    as_json: bool

    def show(self, data: Any, human: Callable[[Any], None]) -> None:
        """Print ``data`` as JSON with ``--json``, else as ``human`` renders it."""
        if self.as_json:
            print_json(data)
        else:
            human(data)


url_option = click.option(
    "--url",
    envvar="BLINDGATE_URL",
    default=DEFAULT_URL,
    show_default=True,
    help="The gateway's URL (env BLINDGATE_URL).",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the gateway's answer as JSON, for scripts."
)


def key_option(*, required: bool = True) -> Callable[[Callable[..., R]], Callable[..., R]]:
    text = "Your API key (env BLINDGATE_API_KEY)."
    if not required:
        text = "Your API key (env BLINDGATE_API_KEY), when the gateway is asked."
    return click.option("--api-key", envvar="BLINDGATE_API_KEY", default=None, help=text)


def open_client(url: str, api_key: str | None) -> Client:
    if not api_key:
        fail(MISSING_KEY, 2)
    return Client(url, api_key)


def gateway_command(fn: Callable[..., R]) -> Callable[..., R]:
    """Give a command ``--url``, ``--api-key`` and ``--json``; call it with a
    :class:`Session` first. A missing key, an error answer or an unreachable gateway
    ends the command with one line on stderr."""

    @functools.wraps(fn)
    def run(*args: Any, url: str, api_key: str | None, as_json: bool, **kwargs: Any) -> R:
        with open_client(url, api_key) as client, failures():
            return fn(Session(client, as_json), *args, **kwargs)

    return url_option(key_option()(json_option(run)))
