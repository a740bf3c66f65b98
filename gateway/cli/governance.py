"""``blindgate keys|policy|licence|job``: signing keys, policies, licences and dry runs.

Licence signatures are made here, on the signer's machine: private keys never reach the
gateway.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import click

from contracts import (
    LicenceError,
    LicenceTerms,
    countersign,
    decode_public_key,
    encode_public_key,
    generate_keypair,
    private_key_from_pem,
    private_key_to_pem,
    sign_offer,
    terms_from_canonical,
)
from gateway.cli.admin import KEY_OPTION, URL_OPTION
from gateway.client import ApiError, Client


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _load_key(path: Path) -> Any:
    try:
        return private_key_from_pem(path.read_bytes())
    except (OSError, LicenceError) as exc:
        _fail(f"cannot read the private key {path}: {exc}")


def _print_decision(decision: dict[str, Any]) -> None:
    if decision["allow"]:
        click.echo(click.style("ALLOW", fg="green", bold=True))
        params = decision.get("parameters") or {}
        for key in ("epsilon", "min_group_size", "max_rows_per_unit", "approval_mode"):
            if key in params:
                click.echo(f"  {key}: {params[key]}")
        return
    reasons = decision["reasons"]
    click.echo(click.style("DENY", fg="red", bold=True) + f" ({len(reasons)} reason(s))")
    for reason in reasons:
        where = f" [{reason['asset']}]" if reason.get("asset") else ""
        click.echo(f"- {reason['code']}{where} at {reason['clause']}: {reason['message']}")
        click.echo(f"  fix: {reason['fix']}")


def governance_commands(cli: click.Group) -> None:
    """Attach keys, policy, licence and job commands to ``cli``."""

    @cli.group()
    def keys() -> None:
        """Ed25519 signing keys for licences (kept on your machine)."""

    @keys.command("generate")
    @click.option(
        "--out",
        type=click.Path(path_type=Path),
        required=True,
        help="Where to write the private key (PEM, mode 0600).",
    )
    def keys_generate(out: Path) -> None:
        """Create a key pair; print the public key to register with `blindgate org set-key`."""
        pair = generate_keypair()
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            _fail(f"{out} exists; not overwriting a key")
        with os.fdopen(fd, "wb") as fh:
            fh.write(private_key_to_pem(pair.private_key))
        click.echo(encode_public_key(pair.public_key))

    @cli.group()
    def policy() -> None:
        """Usage policies of assets (versioned YAML)."""

    @policy.command("set")
    @click.argument("asset_id")
    @click.argument("file", type=click.File("r"))
    @URL_OPTION
    @KEY_OPTION
    def policy_set(asset_id: str, file: Any, url: str, api_key: str) -> None:
        """Store FILE as the asset's new policy version (holder key)."""
        document = file.read()
        try:
            with Client(url, api_key) as client:
                _print(
                    client.request(
                        "PUT",
                        f"/v1/assets/{asset_id}/policy",
                        content=document.encode("utf-8"),
                        headers={"content-type": "application/yaml"},
                    )
                )
        except ApiError as exc:
            if exc.code == "policy_invalid" and exc.body:
                for issue in exc.body.get("issues", []):
                    line = issue.get("line")
                    where = f"{file.name}:{line}:{issue.get('column')}" if line else file.name
                    click.echo(f"{where}: {issue['path']}: {issue['message']}", err=True)
            _fail(str(exc))

    @policy.command("show")
    @click.argument("asset_id")
    @click.option("--version", type=int, default=None)
    @URL_OPTION
    @KEY_OPTION
    def policy_show(asset_id: str, version: int | None, url: str, api_key: str) -> None:
        """Print the asset's policy document (latest, or --version N)."""
        path = f"/v1/assets/{asset_id}/policy" + (f"/versions/{version}" if version else "")
        try:
            with Client(url, api_key) as client:
                found = client.get(path)
        except ApiError as exc:
            _fail(str(exc))
        click.echo(
            f"# version {found['version']} by {found['created_by']} at {found['created_at']}",
            err=True,
        )
        click.echo(found["document"], nl=False)

    @policy.command("schema")
    @URL_OPTION
    @KEY_OPTION
    def policy_schema_cmd(url: str, api_key: str) -> None:
        """Print the JSON Schema of policy documents."""
        with Client(url, api_key) as client:
            _print(client.get("/v1/policy-schema"))

    @cli.group()
    def licence() -> None:
        """Licences: offer (holder), accept (operator), revoke, budget."""

    @licence.command("offer")
    @click.option(
        "--key",
        "key_file",
        type=click.Path(path_type=Path),
        required=True,
        help="The holder organisation's private key (PEM).",
    )
    @click.option("--operator-org", required=True)
    @click.option("--asset", "assets", multiple=True, required=True)
    @click.option("--purpose", "purposes", multiple=True, required=True)
    @click.option("--kind", "kinds", multiple=True, default=["sql_aggregate"], show_default=True)
    @click.option(
        "--valid-from",
        type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"]),
        default=None,
        help="Start of validity (default: now).",
    )
    @click.option(
        "--days",
        type=click.IntRange(1, 3650),
        default=365,
        show_default=True,
        help="Days of validity from its start.",
    )
    @click.option("--epsilon-cap", type=str, default=None)
    @click.option("--job-cap", type=int, default=None)
    @click.option("--fee", type=str, default="0", show_default=True)
    @click.option("--currency", default="CNY", show_default=True)
    @click.option("--revenue-share", type=str, default="0", show_default=True)
    @click.option("--id", "licence_id", default=None, help="Licence id (default: generated).")
    @URL_OPTION
    @KEY_OPTION
    def licence_offer(
        key_file: Path,
        operator_org: str,
        assets: tuple[str, ...],
        purposes: tuple[str, ...],
        kinds: tuple[str, ...],
        valid_from: datetime | None,
        days: int,
        epsilon_cap: str | None,
        job_cap: int | None,
        fee: str,
        currency: str,
        revenue_share: str,
        licence_id: str | None,
        url: str,
        api_key: str,
    ) -> None:
        """Sign licence terms with the holder's key and offer them to an operator."""
        private_key = _load_key(key_file)
        now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        start = valid_from or now
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        try:
            with Client(url, api_key) as client:
                me = client.whoami()
                terms = LicenceTerms.model_validate(
                    {
                        "licence_id": licence_id or f"lic_{secrets.token_hex(8)}",
                        "holder_org_id": me["organisation"]["id"],
                        "operator_org_id": operator_org,
                        "asset_ids": list(assets),
                        "purposes": list(purposes),
                        "job_kinds": list(kinds),
                        "valid_from": start,
                        "valid_until": start + timedelta(days=days),
                        "epsilon_cap": epsilon_cap,
                        "job_cap": job_cap,
                        "fee": {
                            "amount": fee,
                            "currency": currency,
                            "revenue_share_percent": revenue_share,
                        },
                    }
                )
                signature = base64.b64encode(sign_offer(terms, private_key)).decode()
                body = {"terms": json.loads(terms.model_dump_json()), "holder_signature": signature}
                _print(client.post("/v1/licences", body))
        except ApiError as exc:
            _fail(str(exc))
        except ValueError as exc:
            _fail(f"invalid terms: {exc}")

    @licence.command("accept")
    @click.argument("licence_id")
    @click.option(
        "--key",
        "key_file",
        type=click.Path(path_type=Path),
        required=True,
        help="The operator organisation's private key (PEM).",
    )
    @URL_OPTION
    @KEY_OPTION
    def licence_accept(licence_id: str, key_file: Path, url: str, api_key: str) -> None:
        """Verify the holder's offer locally, then countersign it."""
        private_key = _load_key(key_file)
        try:
            with Client(url, api_key) as client:
                offered = client.get(f"/v1/licences/{licence_id}")
                if not offered.get("holder_public_key"):
                    _fail("the holder has no registered public key")
                terms = terms_from_canonical(offered["canonical_terms"].encode())
                signature = countersign(
                    terms,
                    base64.b64decode(offered["holder_signature"]),
                    private_key,
                    holder_public_key=decode_public_key(offered["holder_public_key"]),
                )
                _print(
                    client.post(
                        f"/v1/licences/{licence_id}/accept",
                        {"operator_signature": base64.b64encode(signature).decode()},
                    )
                )
        except LicenceError as exc:
            _fail(f"refusing to accept: {exc}")
        except ApiError as exc:
            _fail(str(exc))

    @licence.command("revoke")
    @click.argument("licence_id")
    @click.option("--reason", required=True)
    @URL_OPTION
    @KEY_OPTION
    def licence_revoke(licence_id: str, reason: str, url: str, api_key: str) -> None:
        """Revoke a licence at once (holder or auditor)."""
        try:
            with Client(url, api_key) as client:
                _print(client.post(f"/v1/licences/{licence_id}/revoke", {"reason": reason}))
        except ApiError as exc:
            _fail(str(exc))

    @licence.command("list")
    @URL_OPTION
    @KEY_OPTION
    def licence_list(url: str, api_key: str) -> None:
        with Client(url, api_key) as client:
            _print(
                [
                    {k: lic[k] for k in ("id", "status", "holder_org_id", "operator_org_id")}
                    for lic in client.paginate("/v1/licences")
                ]
            )

    @licence.command("show")
    @click.argument("licence_id")
    @URL_OPTION
    @KEY_OPTION
    def licence_show(licence_id: str, url: str, api_key: str) -> None:
        try:
            with Client(url, api_key) as client:
                _print(client.get(f"/v1/licences/{licence_id}"))
        except ApiError as exc:
            _fail(str(exc))

    @licence.command("budget")
    @click.argument("licence_id")
    @click.option("--epsilon-per-job", type=float, default=None)
    @URL_OPTION
    @KEY_OPTION
    def licence_budget(
        licence_id: str, epsilon_per_job: float | None, url: str, api_key: str
    ) -> None:
        """Remaining privacy budget, and how many jobs of --epsilon-per-job still fit."""
        try:
            with Client(url, api_key) as client:
                _print(
                    client.get(f"/v1/licences/{licence_id}/budget", epsilon_per_job=epsilon_per_job)
                )
        except ApiError as exc:
            _fail(str(exc))

    @cli.group()
    def job() -> None:
        """Jobs: check (dry run) a job description against every rule."""

    @job.command("check")
    @click.argument("file", type=click.File("r"))
    @click.option("--json", "as_json", is_flag=True, help="Print the raw decision.")
    @URL_OPTION
    @KEY_OPTION
    def job_check(file: Any, as_json: bool, url: str, api_key: str) -> None:
        """Dry-run the job described in FILE (JSON); exit 1 when it would be denied."""
        try:
            description = json.load(file)
        except ValueError as exc:
            _fail(f"{file.name} is not JSON: {exc}")
        try:
            with Client(url, api_key) as client:
                decision = client.post("/v1/jobs/dry-run", description)
        except ApiError as exc:
            _fail(str(exc))
        if as_json:
            _print(decision)
        else:
            _print_decision(decision)
        sys.exit(0 if decision["allow"] else 1)
