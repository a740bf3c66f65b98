"""Before the demo seeds anything: are the ports it will listen on free?"""

from __future__ import annotations

import socket
from collections.abc import Sequence

DEMO_SITES = 3  # Riverside, Eastside and Harbour, on --site-port and the two ports after it


def busy(host: str, port: int) -> bool:
    """Whether something already listens on (or holds) ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # as the servers do: a port left in TIME_WAIT by an earlier run is free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except (OSError, OverflowError):
            return True
    return False


def demo_ports(
    host: str, http_port: int, grpc_port: int, site_port: int, *, serving: bool
) -> list[tuple[str, str, int, str]]:
    """(what, host, port, option) for every port the demo will listen on."""
    wanted = [
        (f"site agent {n + 1} of {DEMO_SITES}", "127.0.0.1", site_port + n, "--site-port")
        for n in range(DEMO_SITES)
    ]
    if serving:
        wanted = [
            ("REST API", host, http_port, "--http-port"),
            ("gRPC API", host, grpc_port, "--grpc-port"),
            *wanted,
        ]
    return wanted


def first_busy(wanted: Sequence[tuple[str, str, int, str]]) -> str | None:
    """A sentence naming the first busy port and the option that moves it, or ``None``."""
    ports = [port for _, _, port, _ in wanted]
    for what, host, port, option in wanted:
        if ports.count(port) > 1:
            return f"port {port} is asked for twice; give the demo distinct ports ({option} …)"
        if busy(host, port):
            hint = f"pick another with {option}"
            if option == "--site-port":
                hint += f" (the site agents use it and the {DEMO_SITES - 1} ports after it)"
            return f"port {port} ({what}, {host}) is in use; {hint}"
    return None
