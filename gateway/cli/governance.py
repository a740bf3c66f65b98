"""``blindgate keys|policy|licence``: signing keys, policies, licences and budgets.

Licence signatures are made here, on the signer's machine: private keys never reach the
gateway.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from gateway.cli import render
from gateway.cli.connect import Session, gateway_command
from gateway.cli.output import fail, failures, fields, note, number, print_json, table

DATES = click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d"])


def _load_key(path: Path) -> Any:
    try:
        return private_key_from_pem(path.read_bytes())
    except (OSError, LicenceError) as exc:
        fail(f"cannot read the private key {path}: {exc}")


@click.group()
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
        fail(f"{out} exists; not overwriting a key")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_key_to_pem(pair.private_key))
    click.echo(encode_public_key(pair.public_key))


@click.group()
def policy() -> None:
    """Usage policies of assets (versioned YAML)."""


@policy.command("set")
@click.argument("asset_id")
@click.argument("file", type=click.File("r"))
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Sign the policy with this organisation key (PEM): the asset's site accepts only "
    "policies its holder signed.",
)
@gateway_command
def policy_set(s: Session, asset_id: str, file: Any, key_path: Path | None) -> None:
    """Store FILE as the asset's new policy version (holder key)."""
    document = file.read()
    key = _load_key(key_path) if key_path is not None else None
    with failures(source=file.name):
        stored = s.client.set_policy(asset_id, document, key=key)

    def human(p: dict[str, Any]) -> None:
        click.echo(f"policy version {p['version']} stored for {p['asset_id']}")
        if not p.get("signed"):
            note("not signed: the asset's site refuses jobs until a signed version is set (--key)")

    s.show(stored, human)


@policy.command("show")
@click.argument("asset_id")
@click.option("--version", type=int, default=None, help="This version (default: the latest).")
@gateway_command
def policy_show(s: Session, asset_id: str, version: int | None) -> None:
    """Print the asset's policy document (latest, or --version N)."""

    def human(found: dict[str, Any]) -> None:
        note(f"# version {found['version']} by {found['created_by']} at {found['created_at']}")
        click.echo(found["document"], nl=False)

    s.show(s.client.policy(asset_id, version), human)


@policy.command("schema")
@gateway_command
def policy_schema_cmd(s: Session) -> None:
    """Print the JSON Schema of policy documents."""
    print_json(s.client.policy_schema())


@click.group()
def licence() -> None:
    """Licences: offer (holder), accept (operator), revoke, list, budget, usage."""


@licence.command("offer")
@click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path),
    required=True,
    help="The holder organisation's private key (PEM).",
)
@click.option("--operator-org", required=True, help="The operator organisation's id.")
@click.option("--asset", "assets", multiple=True, required=True, help="Licensed asset (repeat).")
@click.option("--purpose", "purposes", multiple=True, required=True, help="Allowed purpose.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    default=["sql_aggregate"],
    show_default=True,
    help="Allowed job kind (repeat).",
)
@click.option("--valid-from", type=DATES, default=None, help="Start of validity (default: now).")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=365,
    show_default=True,
    help="Days of validity from its start.",
)
@click.option("--epsilon-cap", type=str, default=None, help="Total epsilon the licence allows.")
@click.option("--job-cap", type=int, default=None, help="Number of jobs the licence allows.")
@click.option("--fee", type=str, default="0", show_default=True, help="Fixed fee.")
@click.option("--currency", default="CNY", show_default=True, help="Currency of the fee.")
@click.option(
    "--revenue-share", type=str, default="0", show_default=True, help="Holder's share, percent."
)
@click.option("--id", "licence_id", default=None, help="Licence id (default: generated).")
@gateway_command
def licence_offer(
    s: Session,
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
) -> None:
    """Sign licence terms with the holder's key and offer them to an operator."""
    private_key = _load_key(key_file)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    start = valid_from or now
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    me = s.client.whoami()
    try:
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
    except ValueError as exc:
        fail(f"invalid terms: {exc}")
    signature = base64.b64encode(sign_offer(terms, private_key)).decode()
    offered = s.client.offer_licence(json.loads(terms.model_dump_json()), signature)
    s.show(
        offered,
        lambda lic: click.echo(
            f"licence offered: {lic['id']} to {lic['operator_org_id']} ({lic['status']})"
        ),
    )


@licence.command("accept")
@click.argument("licence_id")
@click.option(
    "--key",
    "key_file",
    type=click.Path(path_type=Path),
    required=True,
    help="The operator organisation's private key (PEM).",
)
@gateway_command
def licence_accept(s: Session, licence_id: str, key_file: Path) -> None:
    """Verify the holder's offer locally, then countersign it."""
    private_key = _load_key(key_file)
    offered = s.client.licence(licence_id)
    if not offered.get("holder_public_key"):
        fail("the holder has no registered public key")
    try:
        terms = terms_from_canonical(offered["canonical_terms"].encode())
        signature = countersign(
            terms,
            base64.b64decode(offered["holder_signature"]),
            private_key,
            holder_public_key=decode_public_key(offered["holder_public_key"]),
        )
    except LicenceError as exc:
        fail(f"refusing to accept: {exc}")
    accepted = s.client.accept_licence(licence_id, base64.b64encode(signature).decode())
    s.show(accepted, lambda lic: click.echo(f"licence accepted: {lic['id']} ({lic['status']})"))


@licence.command("revoke")
@click.argument("licence_id")
@click.option("--reason", required=True, help="Why (kept in the licence and the trace).")
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Sign the revocation with the holder organisation's key (PEM): it then reaches "
    "the holder's sites, which refuse the licence for good.",
)
@gateway_command
def licence_revoke(s: Session, licence_id: str, reason: str, key_path: Path | None) -> None:
    """Revoke a licence at once (holder or auditor)."""
    key = _load_key(key_path) if key_path is not None else None
    s.show(
        s.client.revoke_licence(licence_id, reason, key=key),
        lambda lic: click.echo(f"licence revoked: {lic['id']} (reason: {reason})"),
    )


@licence.command("list")
@gateway_command
def licence_list(s: Session) -> None:
    """List the licences your organisation is party to."""
    s.show(s.client.licences(), render.licences)


@licence.command("show")
@click.argument("licence_id")
@gateway_command
def licence_show(s: Session, licence_id: str) -> None:
    """Show a licence's terms, state and signatures."""
    s.show(s.client.licence(licence_id), render.licence)


@licence.command("budget")
@click.argument("licence_id")
@click.option(
    "--epsilon-per-job", type=float, default=None, help="Say how many jobs of this epsilon fit."
)
@gateway_command
def licence_budget(s: Session, licence_id: str, epsilon_per_job: float | None) -> None:
    """Remaining privacy budget, and how many jobs of --epsilon-per-job still fit."""
    s.show(s.client.budget(licence_id, epsilon_per_job), render.budget)


@licence.command("usage")
@click.argument("licence_id")
@gateway_command
def licence_usage(s: Session, licence_id: str) -> None:
    """What a licence has been used for: jobs, epsilon and delta charged, compute time."""

    def human(u: dict[str, Any]) -> None:
        fields(
            [
                ("licence", u["licence_id"]),
                ("jobs", f"{u['jobs']} ({u['jobs_last_hour']} in the last hour)"),
                ("epsilon spent", number(u["epsilon_spent"])),
                ("delta spent", number(u["delta_spent"])),
                ("refunded", f"{u['charges_refunded']} charge(s)"),
                ("compute", f"{u['compute_seconds']:.1f} s"),
            ]
        )

    s.show(s.client.usage(licence_id), human)


@licence.command("settlement")
@click.option("--from", "start", type=DATES, required=True, help="Start of the period.")
@click.option("--to", "end", type=DATES, required=True, help="End of the period (excluded).")
@gateway_command
def licence_settlement(s: Session, start: datetime, end: datetime) -> None:
    """A holder's statement per licence over a period: fee, revenue share, jobs, epsilon."""
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)

    def human(found: dict[str, Any]) -> None:
        rows = [
            [
                line["licence_id"],
                line["operator_org_id"],
                f"{line['fixed_fee']} {line['currency']}",
                f"{line['revenue_share_percent']}%",
                line["jobs"],
                number(line["epsilon_spent"]),
            ]
            for line in found["lines"]
        ]
        table(
            ["LICENCE", "OPERATOR", "FEE", "SHARE", "JOBS", "EPSILON"],
            rows,
            empty="no licences in this period",
        )

    s.show(s.client.settlement(start, end), human)


COMMANDS = (keys, policy, licence)
