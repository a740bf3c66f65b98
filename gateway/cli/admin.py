"""Commands that talk to a running gateway over REST (admin, holder and auditor tasks)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import click

from gateway.cli.site import serve as site_serve
from gateway.client import ApiError, Client

URL_OPTION = click.option(
    "--url",
    envvar="BLINDGATE_URL",
    default="http://127.0.0.1:8080",
    show_default=True,
    help="Gateway URL (env BLINDGATE_URL).",
)
KEY_OPTION = click.option(
    "--api-key",
    envvar="BLINDGATE_API_KEY",
    required=True,
    help="API key (env BLINDGATE_API_KEY).",
)


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _call(url: str, api_key: str, fn: Callable[[Client], Any]) -> None:
    try:
        with Client(url, api_key) as client:
            _print(fn(client))
    except ApiError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:
        click.echo(f"error: cannot reach {url}: {type(exc).__name__}", err=True)
        sys.exit(3)


def admin_commands(cli: click.Group) -> None:
    """Attach the REST-backed command groups to ``cli``."""

    @cli.group()
    def org() -> None:
        """Organisations."""

    @org.command("create")
    @click.argument("name")
    @click.option("--description", default="")
    @URL_OPTION
    @KEY_OPTION
    def org_create(name: str, description: str, url: str, api_key: str) -> None:
        _call(
            url,
            api_key,
            lambda c: c.post("/v1/organisations", {"name": name, "description": description}),
        )

    @org.command("list")
    @URL_OPTION
    @KEY_OPTION
    def org_list(url: str, api_key: str) -> None:
        _call(url, api_key, lambda c: c.paginate("/v1/organisations"))

    @org.command("set-key")
    @click.argument("org_id")
    @click.argument("public_key")
    @URL_OPTION
    @KEY_OPTION
    def org_set_key(org_id: str, public_key: str, url: str, api_key: str) -> None:
        """Register the organisation's Ed25519 public key (base64 of 32 raw bytes)."""
        _call(
            url,
            api_key,
            lambda c: c.request(
                "PUT", f"/v1/organisations/{org_id}/public-key", json={"public_key": public_key}
            ),
        )

    @cli.group()
    def principal() -> None:
        """Principals (people and services) and their roles."""

    @principal.command("create")
    @click.argument("name")
    @click.option("--org", "org_id", required=True, help="Organisation id.")
    @click.option(
        "--role", type=click.Choice(["admin", "holder", "operator", "auditor"]), required=True
    )
    @URL_OPTION
    @KEY_OPTION
    def principal_create(name: str, org_id: str, role: str, url: str, api_key: str) -> None:
        """Create a principal; its API key is printed once."""
        _call(
            url,
            api_key,
            lambda c: c.post("/v1/principals", {"name": name, "org_id": org_id, "role": role}),
        )

    @principal.command("list")
    @click.option("--org", "org_id", default=None)
    @URL_OPTION
    @KEY_OPTION
    def principal_list(org_id: str | None, url: str, api_key: str) -> None:
        _call(url, api_key, lambda c: c.paginate("/v1/principals", org_id=org_id))

    @principal.command("disable")
    @click.argument("principal_id")
    @URL_OPTION
    @KEY_OPTION
    def principal_disable(principal_id: str, url: str, api_key: str) -> None:
        _call(
            url,
            api_key,
            lambda c: c.request("PATCH", f"/v1/principals/{principal_id}", json={"disabled": True}),
        )

    @principal.command("enable")
    @click.argument("principal_id")
    @URL_OPTION
    @KEY_OPTION
    def principal_enable(principal_id: str, url: str, api_key: str) -> None:
        _call(
            url,
            api_key,
            lambda c: c.request(
                "PATCH", f"/v1/principals/{principal_id}", json={"disabled": False}
            ),
        )

    @cli.group()
    def key() -> None:
        """API keys: rotate, list, revoke."""

    @key.command("rotate")
    @click.argument("principal_id")
    @click.option("--keep-existing", is_flag=True, help="Do not revoke the other keys.")
    @URL_OPTION
    @KEY_OPTION
    def key_rotate(principal_id: str, keep_existing: bool, url: str, api_key: str) -> None:
        """Issue a new key (printed once); revoke the others unless --keep-existing."""
        _call(
            url,
            api_key,
            lambda c: c.post(
                f"/v1/principals/{principal_id}/keys", {"revoke_existing": not keep_existing}
            ),
        )

    @key.command("list")
    @click.argument("principal_id")
    @URL_OPTION
    @KEY_OPTION
    def key_list(principal_id: str, url: str, api_key: str) -> None:
        _call(url, api_key, lambda c: c.get(f"/v1/principals/{principal_id}/keys"))

    @key.command("revoke")
    @click.argument("principal_id")
    @click.argument("key_id")
    @URL_OPTION
    @KEY_OPTION
    def key_revoke(principal_id: str, key_id: str, url: str, api_key: str) -> None:
        _call(
            url,
            api_key,
            lambda c: c.request("DELETE", f"/v1/principals/{principal_id}/keys/{key_id}"),
        )

    @cli.group()
    def site() -> None:
        """Holders' sites (where site agents and data live)."""

    @site.command("register")
    @click.argument("name")
    @click.option("--address", required=True, help="host:port of the site agent.")
    @click.option("--fingerprint", required=True, help="SHA-256 of the site certificate.")
    @click.option("--org", "org_id", default=None, help="Admins only: holder organisation.")
    @URL_OPTION
    @KEY_OPTION
    def site_register(
        name: str, address: str, fingerprint: str, org_id: str | None, url: str, api_key: str
    ) -> None:
        body: dict[str, Any] = {
            "name": name,
            "grpc_address": address,
            "tls_fingerprint": fingerprint,
        }
        if org_id:
            body["org_id"] = org_id
        _call(url, api_key, lambda c: c.post("/v1/sites", body))

    @site.command("list")
    @URL_OPTION
    @KEY_OPTION
    def site_list(url: str, api_key: str) -> None:
        _call(url, api_key, lambda c: c.paginate("/v1/sites"))

    @site.command("health")
    @click.argument("site_id")
    @URL_OPTION
    @KEY_OPTION
    def site_health(site_id: str, url: str, api_key: str) -> None:
        """Ask the gateway to check a site agent: reachability and isolation layers."""
        _call(url, api_key, lambda c: c.get(f"/v1/sites/{site_id}/health"))

    site.add_command(site_serve)

    @cli.group()
    def asset() -> None:
        """Assets and their cards."""

    @asset.command("list")
    @click.option("--status", type=click.Choice(["active", "frozen", "disposed"]))
    @URL_OPTION
    @KEY_OPTION
    def asset_list(status: str | None, url: str, api_key: str) -> None:
        _call(url, api_key, lambda c: c.assets(status))

    @asset.command("show")
    @click.argument("asset_id")
    @URL_OPTION
    @KEY_OPTION
    def asset_show(asset_id: str, url: str, api_key: str) -> None:
        _call(url, api_key, lambda c: c.asset(asset_id))

    @asset.command("freeze")
    @click.argument("asset_id")
    @click.option("--reason", required=True)
    @URL_OPTION
    @KEY_OPTION
    def asset_freeze(asset_id: str, reason: str, url: str, api_key: str) -> None:
        """Stop all new use of an asset at once."""
        _call(url, api_key, lambda c: c.post(f"/v1/assets/{asset_id}/freeze", {"reason": reason}))

    @asset.command("unfreeze")
    @click.argument("asset_id")
    @URL_OPTION
    @KEY_OPTION
    def asset_unfreeze(asset_id: str, url: str, api_key: str) -> None:
        _call(url, api_key, lambda c: c.post(f"/v1/assets/{asset_id}/unfreeze"))

    @asset.command("dispose")
    @click.argument("asset_id")
    @click.option("--method", required=True, help="How the data was destroyed.")
    @click.option("--digest", required=True, help="SHA-256 of what was destroyed.")
    @click.option("--note", default="")
    @URL_OPTION
    @KEY_OPTION
    def asset_dispose(
        asset_id: str, method: str, digest: str, note: str, url: str, api_key: str
    ) -> None:
        """Record the secure destruction of an asset's data (irreversible)."""
        _call(
            url,
            api_key,
            lambda c: c.post(
                f"/v1/assets/{asset_id}/dispose",
                {"method": method, "destroyed_digest": digest, "note": note},
            ),
        )
