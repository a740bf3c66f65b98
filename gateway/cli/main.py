"""``blindgate``: initialise, serve, run the demo, and administer a gateway."""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

import click

from gateway.cli import admin, audit, governance, jobs, pki
from gateway.cli.output import fail
from gateway.cli.ports import demo_ports, first_busy
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


def _show_federated(services: Any, data_dir: Path, keys: Any) -> None:
    """Run the demo's federated query; print it beside the locally computed exact answer."""
    from gateway import demo_federation as fed
    from gateway.audit.receipt import verify_receipt
    from gateway.domain import Actor, Role
    from gateway.service.job_runner import make_runner

    operator = Actor(keys.operator_principal, keys.operator_org, Role.OPERATOR)
    runner = make_runner(services, owner="demo")
    job_id, result = fed.run_query(services, operator, [keys.federated_asset], runner.run_once)
    click.echo(f"\n  {fed.QUERY}\n")
    if result is None:
        click.echo(
            f"  job {job_id} did not succeed: {services.jobs.get(operator, job_id).error_code}"
        )
        return
    exact = fed.plaintext_answer(
        [data_dir / "sites" / slug / "admissions.csv" for slug in keys.site_slugs]
    )
    click.echo(
        f"  {'district':<10}{'admissions':>12}{'mean_stay':>11}   exact (computed locally "
        "from the demo's own files)"
    )
    for row in result["rows"]:
        district, n, mean = (cell["value"] for cell in row)
        true_n, true_mean = exact.get(district, (0, 0.0))
        click.echo(f"  {district:<10}{n:>12}{mean:>11.2f}   {true_n:>6} {true_mean:>8.2f}")
    scales = result["rows"][0][1]["scales"] if result["rows"] else {}
    click.echo(
        f"\n  epsilon spent {result['epsilon_spent']:.3f} of 1.0; Laplace noise "
        f"(count scale {scales.get('count', 0):.2f}); groups under "
        f"{result['threshold']} people are not released"
    )
    checkpoint = verify_receipt(result["receipt"], services.audit.log.verifier_key)
    click.echo(
        f"  receipt verified: trace entry {result['receipt']['leaf_index']} "
        f"is in {checkpoint.origin} at size {checkpoint.size}\n"
    )


def _show_he(services: Any, data_dir: Path, keys: Any) -> None:
    """Run the demo's HE aggregate; print the decrypted totals beside the exact answer."""
    from gateway import demo_federation as fed
    from gateway.domain import Actor, Role
    from gateway.service.job_runner import make_runner

    operator = Actor(keys.operator_principal, keys.operator_org, Role.OPERATOR)
    runner = make_runner(services, owner="demo-he")
    job_id, totals, _ = fed.run_he_aggregate(
        services, operator, [keys.federated_asset], runner.run_once
    )
    click.echo(
        "\n  he_aggregate: COUNT and SUM(los_days) per district, age >= 65, encrypted under "
        "the operator's key\n"
    )
    if totals is None:
        error = services.jobs.get(operator, job_id).error_code
        click.echo(f"  job {job_id} did not succeed: {error}")
        return
    exact = fed.plaintext_answer(
        [data_dir / "sites" / slug / "admissions.csv" for slug in keys.site_slugs]
    )
    click.echo(
        f"  {'district':<10}{'count':>8}{'mean_stay':>11}   exact (computed locally from the "
        "demo's own files)"
    )
    for group in totals["groups"]:
        district = group["key"][0]
        mean = group["columns"]["los_days"]["mean"] or 0.0
        true_n, true_mean = exact.get(district, (0, 0.0))
        count = group["count"]
        click.echo(f"  {district:<10}{count:>8}{mean:>11.2f}   {true_n:>6} {true_mean:>8.2f}")
    click.echo(
        f"\n  decrypted by the operator only; the gateway added OpenDP noise to the "
        f"ciphertexts; epsilon spent {totals['epsilon_spent']:.3f} of 1.0\n"
    )


def _serve_both(services: Any) -> None:
    """Serve gRPC in the background and REST in the foreground until interrupted."""
    from gateway.audit.log import CheckpointTicker
    from gateway.domain import Site
    from gateway.grpc.server import start_grpc
    from gateway.grpc.site_pool import SiteMonitor
    from gateway.http.server import serve_http
    from gateway.service.job_runner import make_runner

    settings = services.ctx.settings
    ticker = CheckpointTicker(services.audit.log, settings.checkpoint_interval_seconds)
    ticker.start()

    def sites() -> list[Site]:
        with services.ctx.store.read() as tx:
            found: list[Site] = tx.list_sites(org_id=None, after=None, limit=10_000)
        return found

    monitor = SiteMonitor(services.site_pool, sites, settings.site_check_interval_seconds)
    if services.site_pool.tls is not None:
        monitor.start()
    runner = make_runner(services, owner=f"{socket.gethostname()}:{os.getpid()}")
    runner.start()
    grpc_server, _port = start_grpc(services)
    try:
        serve_http(services)
    finally:
        grpc_server.stop(grace=2)
        runner.stop()
        ticker.stop()
        if services.site_pool.tls is not None:
            monitor.stop()
        services.site_pool.close()
        services.audit.log.checkpoint()


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
    from gateway.service import build_services
    from gateway.store import open_store

    settings = _settings(data_dir=data_dir, host=host, http_port=http_port, grpc_port=grpc_port)
    _setup_logging(settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings.resolved_database_url())
    try:
        _serve_both(build_services(store, settings))
    finally:
        store.close()


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".blindgate-demo"),
    show_default=True,
    help="Demo directory (reset on every run).",
)
@click.option("--http-port", type=int, default=8080, show_default=True, help="REST port.")
@click.option("--grpc-port", type=int, default=50051, show_default=True, help="gRPC port.")
@click.option(
    "--site-port",
    type=int,
    default=50061,
    show_default=True,
    help="First of the three site agents' ports.",
)
@click.option(
    "--rows",
    type=click.IntRange(100, 5_000_000),
    default=20_000,
    show_default=True,
    help="Generated admissions per hospital.",
)
@click.option("--no-serve", is_flag=True, help="Seed and exit instead of serving.")
def demo(
    data_dir: Path, http_port: int, grpc_port: int, site_port: int, rows: int, no_serve: bool
) -> None:
    """Reset a demo directory, seed sample organisations and data, and serve."""
    from gateway import demo as demo_mod
    from gateway.domain import Actor, Role
    from gateway.service import build_services
    from gateway.store import open_store

    settings = _settings(data_dir=data_dir, http_port=http_port, grpc_port=grpc_port, dev_mode=True)
    _setup_logging(settings.log_level)
    taken = first_busy(
        demo_ports(settings.host, http_port, grpc_port, site_port, serving=not no_serve)
    )
    if taken:
        fail(taken)
    _step(f"resetting {data_dir}")
    demo_mod.reset_demo_dir(data_dir)
    store = open_store(settings.resolved_database_url())
    services = build_services(store, settings)
    _step(f"seeding three hospitals, each with a site and a partition of {rows:,} admissions")
    with click.progressbar(length=3 * rows, label="generating admissions", file=sys.stderr) as bar:
        keys = demo_mod.seed(services, data_dir, rows, bar.update, site_port=site_port)
    agents = []
    try:
        for n, slug in enumerate(keys.site_slugs):
            agent, level = demo_mod.start_site_agent(data_dir, site_port + n, slug)
            agents.append(agent)
            if level != "strong":
                click.echo(
                    click.style(
                        f"warning: this host allows only {level} isolation for jobs", fg="yellow"
                    ),
                    err=True,
                )
        services = build_services(store, settings)  # picks up the gateway's client certificate
        auditor = Actor("demo", "demo", Role.AUDITOR)
        with store.read() as tx:
            sites = tx.list_sites(org_id=None, after=None, limit=10)
        for site in sites:
            health = services.sites.health(auditor, site.id)
            layers = ", ".join(k for k, v in health.layers.items() if v) or "none"
            _step(
                f"site agent {site.name} on {site.grpc_address} over mutual TLS: "
                f"reachable={health.reachable}, isolation {health.isolation_level} ({layers})"
            )
        _step("running a federated query across the three hospitals")
        _show_federated(services, data_dir, keys)
        _step("running a homomorphically encrypted aggregate across the three hospitals")
        _show_he(services, data_dir, keys)
    except BaseException:
        for agent in agents:
            agent.stop()
        raise
    demo_mod.write_examples(data_dir / "examples", keys.asset_id)
    url = f"http://{settings.host}:{settings.http_port}"
    env_file = data_dir / "keys.env"
    demo_mod.write_env(env_file, keys, url)
    click.echo(
        f"""
Blindgate demo is ready.

  admin key     {keys.admin}
  holder key    {keys.holder}     (Riverside Hospital Group)
  operator key  {keys.operator}     (Civic Analytics Ltd)
  auditor key   {keys.auditor}     (Provincial Data Bureau)
  sample asset  {keys.asset_id}  (Riverside's admissions, {rows:,} generated rows)
  federated     {keys.federated_asset}  (the three hospitals' admissions; $FEDERATED_ASSET)

The same values are in {env_file}. In another terminal, try:

  source {env_file}
  .venv/bin/blindgate asset list --api-key $OPERATOR_KEY
  .venv/bin/blindgate asset show $ASSET_ID --api-key $HOLDER_KEY
  .venv/bin/blindgate job list --api-key $OPERATOR_KEY
  .venv/bin/blindgate org list --api-key $ADMIN_KEY
  open {url}/docs   (OpenAPI)
"""
    )
    if no_serve:
        for agent in agents:
            agent.stop()
        store.close()
        return
    click.echo(f"Serving on {url} (gRPC on port {settings.grpc_port}) until Ctrl-C.")
    try:
        _serve_both(services)
    finally:
        for agent in agents:
            agent.stop()
        store.close()


for module in (admin, pki, audit, governance, jobs):
    for group in module.COMMANDS:
        cli.add_command(group)


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
