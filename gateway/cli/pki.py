"""``blindgate pki``: a development CA and certificates for gateway <-> site mutual TLS."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.output import fail


@click.group()
def pki() -> None:
    """Development certificates for mutual TLS between the gateway and site agents."""


@pki.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where to write ca.key and ca.crt.",
)
@click.option(
    "--name", default="Blindgate development CA", show_default=True, help="The CA's name."
)
@click.option(
    "--days", type=click.IntRange(1, 3650), default=365, show_default=True, help="Validity."
)
def pki_init(directory: Path, name: str, days: int) -> None:
    """Create a CA; prints its SHA-256 fingerprint."""
    from gateway import pki as pki_mod

    try:
        fingerprint = pki_mod.init_ca(directory, name=name, days=days)
    except FileExistsError as exc:
        fail(str(exc))
    click.echo(f"CA certificate {directory / pki_mod.CA_CERT}", err=True)
    click.echo(fingerprint)


@pki.command("issue")
@click.argument("name")
@click.option(
    "--ca-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="Directory made by `pki init`.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where to write NAME.key and NAME.crt.",
)
@click.option(
    "--kind",
    type=click.Choice(["server", "client"]),
    default="server",
    show_default=True,
    help="server: a site agent; client: the gateway.",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="DNS name or IP address the agent is reached at (repeatable; servers).",
)
@click.option(
    "--days", type=click.IntRange(1, 3650), default=90, show_default=True, help="Validity."
)
def pki_issue(
    name: str, ca_dir: Path, out_dir: Path, kind: str, hosts: tuple[str, ...], days: int
) -> None:
    """Issue a certificate signed by the CA; prints its SHA-256 fingerprint.

    Register a site with the fingerprint of its server certificate, and list the
    gateway's client certificate fingerprint in the agent's gateway_fingerprints.
    """
    from gateway import pki as pki_mod

    try:
        fingerprint = pki_mod.issue(
            ca_dir,
            name,
            out_dir,
            kind="server" if kind == "server" else "client",
            hosts=hosts,
            days=days,
        )
    except (ValueError, OSError) as exc:
        fail(str(exc))
    click.echo(f"certificate {out_dir / (name + '.crt')}", err=True)
    click.echo(fingerprint)


COMMANDS = (pki,)
