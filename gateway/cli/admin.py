"""``blindgate org|principal|key|site|asset``: identities, sites and the catalogue."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli import render
from gateway.cli.connect import Session, gateway_command
from gateway.cli.output import fields, table, when
from gateway.cli.site import endorse as site_endorse
from gateway.cli.site import init as site_init
from gateway.cli.site import outputs as site_outputs
from gateway.cli.site import serve as site_serve
from gateway.cli.site_audit import audit as site_audit

ROLES = click.Choice(["admin", "holder", "operator", "auditor"])


@click.group()
def org() -> None:
    """Organisations (admin)."""


@org.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the organisation is.")
@gateway_command
def org_create(s: Session, name: str, description: str) -> None:
    """Create an organisation."""
    s.show(
        s.client.create_org(name, description),
        lambda o: click.echo(f"organisation created: {o['id']} ({o['name']})"),
    )


@org.command("list")
@gateway_command
def org_list(s: Session) -> None:
    """List the organisations you may see."""

    def human(found: list[Any]) -> None:
        rows = [
            [o["id"], o["name"], "yes" if o["public_key"] else "no", when(o["created_at"])]
            for o in found
        ]
        table(["ID", "NAME", "SIGNING KEY", "CREATED"], rows, empty="no organisations")

    s.show(s.client.orgs(), human)


@org.command("set-key")
@click.argument("org_id")
@click.argument("public_key")
@gateway_command
def org_set_key(s: Session, org_id: str, public_key: str) -> None:
    """Register the organisation's Ed25519 public key (base64 of 32 raw bytes)."""
    s.show(
        s.client.set_org_key(org_id, public_key),
        lambda o: click.echo(f"signing key registered for {o['id']} ({o['name']})"),
    )


@click.group()
def principal() -> None:
    """Principals (people and services) and their roles (admin)."""


@principal.command("create")
@click.argument("name")
@click.option("--org", "org_id", required=True, help="Organisation id.")
@click.option("--role", type=ROLES, required=True, help="What the principal may do.")
@gateway_command
def principal_create(s: Session, name: str, org_id: str, role: str) -> None:
    """Create a principal; its API key is printed once."""

    def human(made: dict[str, Any]) -> None:
        p = made["principal"]
        click.echo(f"principal created: {p['id']} ({p['name']}, {p['role']} in {p['org_id']})")
        click.echo(f"API key (shown once, store it safely): {made['api_key']}")

    s.show(s.client.create_principal(name, org_id, role), human)


@principal.command("list")
@click.option("--org", "org_id", default=None, help="Only this organisation's principals.")
@gateway_command
def principal_list(s: Session, org_id: str | None) -> None:
    """List principals."""

    def human(found: list[Any]) -> None:
        rows = [
            [p["id"], p["name"], p["role"], p["org_id"], "disabled" if p["disabled"] else "active"]
            for p in found
        ]
        table(["ID", "NAME", "ROLE", "ORGANISATION", "STATE"], rows, empty="no principals")

    s.show(s.client.principals(org_id), human)


def _set_disabled(s: Session, principal_id: str, disabled: bool) -> None:
    word = "disabled" if disabled else "enabled"
    s.show(
        s.client.set_principal_disabled(principal_id, disabled),
        lambda p: click.echo(f"principal {word}: {p['id']} ({p['name']})"),
    )


@principal.command("disable")
@click.argument("principal_id")
@gateway_command
def principal_disable(s: Session, principal_id: str) -> None:
    """Disable a principal: its keys stop working at once."""
    _set_disabled(s, principal_id, True)


@principal.command("enable")
@click.argument("principal_id")
@gateway_command
def principal_enable(s: Session, principal_id: str) -> None:
    """Enable a disabled principal again."""
    _set_disabled(s, principal_id, False)


@click.group()
def key() -> None:
    """API keys: rotate, list, revoke (admin, or the principal itself)."""


@key.command("rotate")
@click.argument("principal_id")
@click.option("--keep-existing", is_flag=True, help="Do not revoke the other keys.")
@gateway_command
def key_rotate(s: Session, principal_id: str, keep_existing: bool) -> None:
    """Issue a new key (printed once); revoke the others unless --keep-existing."""

    def human(issued: dict[str, Any]) -> None:
        others = "the others still work" if keep_existing else "the others are revoked"
        click.echo(f"new key {issued['key']['id']} for {principal_id}; {others}")
        click.echo(f"API key (shown once, store it safely): {issued['api_key']}")

    s.show(s.client.rotate_key(principal_id, revoke_existing=not keep_existing), human)


@key.command("list")
@click.argument("principal_id")
@gateway_command
def key_list(s: Session, principal_id: str) -> None:
    """List a principal's keys (ids and dates; never the keys themselves)."""

    def human(found: list[Any]) -> None:
        rows = [[k["id"], when(k["created_at"]), when(k["revoked_at"])] for k in found]
        table(["ID", "CREATED", "REVOKED"], rows, empty="no keys")

    s.show(s.client.api_keys(principal_id), human)


@key.command("revoke")
@click.argument("principal_id")
@click.argument("key_id")
@gateway_command
def key_revoke(s: Session, principal_id: str, key_id: str) -> None:
    """Revoke one key of a principal."""
    s.show(
        s.client.revoke_key(principal_id, key_id),
        lambda k: click.echo(f"key revoked: {k['id']} (of {k['principal_id']})"),
    )


@click.group()
def site() -> None:
    """Holders' sites (where site agents and data live): an agent's identity, registering,
    running and auditing it."""


@site.command("register")
@click.argument("name")
@click.option("--address", required=True, help="host:port of the site agent.")
@click.option("--fingerprint", required=True, help="SHA-256 of the site certificate.")
@gateway_command
def site_register(s: Session, name: str, address: str, fingerprint: str) -> None:
    """Register your organisation's site agent by address and certificate fingerprint.

    The gateway asks the agent to prove, over mutual TLS, that your organisation's
    registered key endorsed it (holders only; see `blindgate site endorse`).
    """
    s.show(
        s.client.register_site(name, address, fingerprint),
        lambda x: click.echo(
            f"site registered: {x['id']} ({x['name']} at {x['grpc_address']}, "
            f"agent {x['agent_key'][:12]}…)"
        ),
    )


@site.command("list")
@gateway_command
def site_list(s: Session) -> None:
    """List the sites you may see."""

    def human(found: list[Any]) -> None:
        rows = [[x["id"], x["name"], x["grpc_address"], x["org_id"]] for x in found]
        table(["ID", "NAME", "ADDRESS", "ORGANISATION"], rows, empty="no sites")

    s.show(s.client.sites(), human)


@site.command("health")
@click.argument("site_id")
@gateway_command
def site_health(s: Session, site_id: str) -> None:
    """Ask the gateway to check a site agent: reachability and isolation layers."""

    def human(h: dict[str, Any]) -> None:
        if not h["reachable"]:
            click.echo(f"site {h['site_id']}: unreachable ({h.get('error') or 'no answer'})")
            return
        layers = ", ".join(k for k, on in h["layers"].items() if on) or "none"
        ready = [a["asset"] for a in h["assets"] if a["ready"]]
        fields(
            [
                ("site", f"{h['site_id']}: reachable, agent {h.get('agent_version') or '?'}"),
                ("isolation", f"{h['isolation_level']} ({layers})"),
                ("executors", ", ".join(h["executors"]) or "-"),
                ("assets ready", f"{len(ready)} of {len(h['assets'])}"),
            ]
        )

    s.show(s.client.site_health(site_id), human)


site.add_command(site_init)
site.add_command(site_endorse)
site.add_command(site_serve)
site.add_command(site_outputs)
site.add_command(site_audit)


@click.group()
def asset() -> None:
    """Assets and their cards: list, show, freeze, unfreeze, dispose."""


@asset.command("list")
@click.option(
    "--status", type=click.Choice(["active", "frozen", "disposed"]), help="Only this status."
)
@gateway_command
def asset_list(s: Session, status: str | None) -> None:
    """List the asset cards you may see."""
    s.show(s.client.assets(status), render.assets)


@asset.command("show")
@click.argument("asset_id")
@gateway_command
def asset_show(s: Session, asset_id: str) -> None:
    """Show an asset's card."""
    s.show(s.client.asset(asset_id), render.asset)


@asset.command("freeze")
@click.argument("asset_id")
@click.option("--reason", required=True, help="Why (kept in the card and the trace).")
@gateway_command
def asset_freeze(s: Session, asset_id: str, reason: str) -> None:
    """Stop all new use of an asset at once."""
    s.show(
        s.client.freeze_asset(asset_id, reason),
        lambda card: click.echo(f"asset frozen: {card['id']} (reason: {reason})"),
    )


@asset.command("unfreeze")
@click.argument("asset_id")
@gateway_command
def asset_unfreeze(s: Session, asset_id: str) -> None:
    """Lift a freeze (an auditor's freeze only by an auditor)."""
    s.show(
        s.client.unfreeze_asset(asset_id),
        lambda card: click.echo(
            f"asset unfrozen: {card['id']} (status {card['management']['status']})"
        ),
    )


@asset.command("dispose")
@click.argument("asset_id")
@click.option("--method", required=True, help="How the data was destroyed.")
@click.option("--digest", required=True, help="SHA-256 of what was destroyed.")
@click.option("--note", default="", help="Anything else the record should say.")
@gateway_command
def asset_dispose(s: Session, asset_id: str, method: str, digest: str, note: str) -> None:
    """Record the secure destruction of an asset's data (irreversible)."""
    s.show(
        s.client.dispose_asset(asset_id, method, digest, note),
        lambda card: click.echo(f"asset disposed: {card['id']} (method: {method})"),
    )


COMMANDS = (org, principal, key, site, asset)
