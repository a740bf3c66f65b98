"""``blindgate site init|endorse|serve``: a site agent's identity, its holder's endorsement,
and running the agent next to the data."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import click

from gateway.cli.output import fail, note, print_json

json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON, for scripts.")


@click.command("init")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The agent's directory (where site.yaml lives); identity.pem is written there.",
)
@json_flag
def init(directory: Path, as_json: bool) -> None:
    """Create the agent's Ed25519 identity key (identity.pem, mode 0600); print its public key.

    Give the public key to your organisation's key holder, who endorses it with
    `blindgate site endorse`, and list both files under identity: in site.yaml.
    """
    from sandbox.agent.identity import IDENTITY_FILE, create_identity

    path = directory / IDENTITY_FILE
    try:
        public_key = create_identity(directory)
    except FileExistsError:
        fail(f"{path} exists; not overwriting the agent's key")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    if as_json:
        print_json({"key_file": str(path), "agent_key": public_key})
        return
    note(f"agent key written to {path} (keep it private; it never leaves the site)")
    click.echo(public_key)


@click.command("endorse")
@click.option(
    "--key",
    "key_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The organisation's Ed25519 signing key (PEM), the one registered with "
    "`blindgate org set-key`.",
)
@click.option("--org", "org_id", required=True, help="Your organisation's id.")
@click.option(
    "--agent-key", required=True, help="The agent's public key, as `blindgate site init` printed."
)
@click.option("--name", default=None, help="The site's name (recorded in the endorsement).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the endorsement (endorsement.json beside site.yaml).",
)
@json_flag
def endorse(
    key_path: Path, org_id: str, agent_key: str, name: str | None, out: Path, as_json: bool
) -> None:
    """Endorse a site agent's key with your organisation's signing key.

    The agent starts only with an endorsement signed by one of the keys in its site.yaml
    (holder.keys), and the gateway registers the site only for the organisation whose
    registered key signed it. Prints the holder: section for site.yaml.
    """
    from contracts import LicenceError, encode_public_key, private_key_from_pem
    from contracts.endorsement import EndorsementError, dump_endorsement
    from contracts.endorsement import endorse as sign_endorsement

    try:
        holder_key = private_key_from_pem(key_path.read_bytes())
    except (OSError, LicenceError) as exc:
        fail(f"cannot read the signing key {key_path}: {exc}")
    try:
        endorsement = sign_endorsement(
            org_id,
            agent_key.strip(),
            holder_key,
            issued_at=datetime.now(UTC).replace(microsecond=0),
            name=name,
        )
    except EndorsementError as exc:
        fail(f"cannot endorse: {exc.detail}")
    try:
        out.write_bytes(dump_endorsement(endorsement))
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    holder_public = encode_public_key(holder_key.public_key())
    if as_json:
        print_json(
            {
                "endorsement": str(out),
                "organisation": org_id,
                "agent_key": endorsement.terms.agent_key,
                "holder_key": holder_public,
            }
        )
        return
    note(f"endorsement written to {out} (agent {endorsement.terms.agent_key[:12]}… of {org_id})")
    note("site.yaml:")
    click.echo(
        f"holder:\n  organisation: {org_id}\n  keys: [{holder_public}]\n"
        f"identity:\n  key: identity.pem\n  endorsement: {out.name}"
    )


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The agent's site.yaml.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much the agent logs.",
)
def serve(config_path: Path, log_level: str) -> None:
    """Run this site's agent (gRPC over mutual TLS) until interrupted.

    The agent refuses to start unless its endorsement (identity: in site.yaml) is signed
    by one of holder.keys, names holder.organisation and names the agent's own key.
    """
    from pydantic import ValidationError

    from sandbox.agent.config import load_config
    from sandbox.agent.identity import IdentityError
    from sandbox.agent.server import serve as serve_agent
    from sandbox.agent.sitelog import SiteLogError
    from sandbox.runner import IsolationError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(config_path)
    except ValidationError as exc:
        fail(f"invalid configuration {config_path}:\n{exc}", 2)
    try:
        serve_agent(config)
    except (IsolationError, IdentityError, SiteLogError) as exc:
        fail(f"refusing to start: {exc}", 3)
    except OSError as exc:
        fail(f"cannot start the site agent: {exc}", 3)
