"""``blindgate demo``: reset a demo directory, seed three hospitals, run two jobs, serve."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from blindgate_demo.federation import Federation


def _step(message: str) -> None:
    click.echo(click.style("==> ", fg="cyan") + message, err=True)


@click.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".blindgate-demo"),
    show_default=True,
    help="The demo's directory (deleted and made anew on every run).",
)
@click.option("--http-port", type=int, default=8080, show_default=True, help="REST port.")
@click.option("--grpc-port", type=int, default=50051, show_default=True, help="gRPC port.")
@click.option(
    "--site-port",
    type=int,
    default=50061,
    show_default=True,
    help="First site agent's port (the three agents use it and the next two).",
)
@click.option(
    "--rows",
    type=click.IntRange(100, 5_000_000),
    default=20_000,
    show_default=True,
    help="Generated admissions per hospital.",
)
@click.option("--no-serve", is_flag=True, help="Seed, run the two jobs and exit.")
def demo(
    data_dir: Path, http_port: int, grpc_port: int, site_port: int, rows: int, no_serve: bool
) -> None:
    """Reset a demo directory, seed three hospitals with site agents, run a federated query
    and an HE aggregate, and serve the gateway until Ctrl-C."""
    from blindgate_demo import seed as seeding
    from blindgate_demo import walkthrough
    from blindgate_demo.federation import init_pki
    from blindgate_demo.ports import demo_ports, first_busy
    from gateway.app import Gateway
    from gateway.config import Settings
    from gateway.service import build_services
    from gateway.store import open_store

    settings = Settings(data_dir=data_dir, http_port=http_port, grpc_port=grpc_port, dev_mode=True)
    # The demo's own jobs run through the live REST API, so every port is needed even
    # with --no-serve; nothing is reset or seeded unless all are free.
    taken = first_busy(demo_ports(settings.host, http_port, grpc_port, site_port, serving=True))
    if taken:
        click.echo(f"error: {taken}", err=True)
        sys.exit(1)
    _step(f"resetting {data_dir}")
    seeding.reset_demo_dir(data_dir)
    init_pki(data_dir)  # before the services, so their site pool has the gateway's certificate
    store = open_store(settings.resolved_database_url())
    services = build_services(store, settings)
    _step(f"seeding three hospitals, each with a site agent and {rows:,} admissions")
    with click.progressbar(length=3 * rows, label="generating admissions", file=sys.stderr) as bar:
        fed = seeding.seed(services, data_dir, rows, bar.update, site_port=site_port)
    if fed.isolation != "strong":
        click.echo(
            click.style(
                f"warning: this host allows only {fed.isolation} isolation for jobs", fg="yellow"
            ),
            err=True,
        )
    gateway = Gateway(services, owner="demo")
    try:
        gateway.start()
        for holder in fed.holders:
            health = services.sites.health(fed.auditor, holder.site_id)
            layers = ", ".join(k for k, v in health.layers.items() if v) or "none"
            _step(
                f"site agent {holder.party.slug}-site on 127.0.0.1:{holder.port} over mutual "
                f"TLS: reachable={health.reachable}, isolation {health.isolation_level} "
                f"({layers})"
            )
        _step("running a federated query across the three hospitals")
        walkthrough.federated_query(fed, gateway.url, click.echo)
        _step("running a homomorphically encrypted aggregate across the three hospitals")
        walkthrough.he_aggregate(fed, gateway.url, click.echo)
        seeding.write_examples(data_dir / "examples", fed.holders[0].assets["admissions"])
        url = f"http://{settings.host}:{gateway.http_port}"
        env_file = data_dir / "keys.env"
        seeding.write_env(env_file, fed, url)
        _banner(fed, url, env_file, rows)
        if not no_serve:
            click.echo(f"Serving on {url} (gRPC on port {gateway.grpc_port}) until Ctrl-C.")
            _wait_for_interrupt()
    finally:
        gateway.stop()
        fed.close()
        store.close()


def _wait_for_interrupt() -> None:
    import signal
    import threading

    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def _banner(fed: Federation, url: str, env_file: Path, rows: int) -> None:
    first = fed.holders[0]
    click.echo(
        f"""
Blindgate demo is ready.

  admin key     {fed.admin_key}
  holder key    {first.api_key}     ({first.party.name})
  operator key  {fed.operator_key}     (Civic Analytics Ltd)
  auditor key   {fed.auditor_key}     (Provincial Data Bureau)
  sample asset  {first.assets["admissions"]}  ({first.party.name}'s admissions, {rows:,} rows)
  federated     {fed.federated["admissions"]}  (the three hospitals' admissions; $FEDERATED_ASSET)

The same values are in {env_file}. In another terminal, try:

  source {env_file}
  .venv/bin/blindgate asset list --api-key $OPERATOR_KEY
  .venv/bin/blindgate asset show $ASSET_ID --api-key $HOLDER_KEY
  .venv/bin/blindgate job list --api-key $OPERATOR_KEY
  .venv/bin/blindgate org list --api-key $ADMIN_KEY
  .venv/bin/blindgate site audit --config $SITE_CONFIG --api-key $HOLDER_KEY
  .venv/bin/blindgate audit tail --follow --api-key $AUDITOR_KEY
  open {url}/docs   (OpenAPI)
  open {url}/console   (security console: sign in with the auditor key)
"""
    )
