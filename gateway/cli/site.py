"""``blindgate site init|endorse|serve|outputs``: a site agent's identity, its holder's
endorsement, running the agent next to the data, and reviewing the outputs Python jobs
left there."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

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


def _store(config_path: Path) -> tuple[Any, Any]:
    from pydantic import ValidationError

    from sandbox.agent.config import load_config
    from sandbox.agent.held import HeldOutputs

    try:
        config = load_config(config_path)
    except ValidationError as exc:
        fail(f"invalid configuration {config_path}:\n{exc}", 2)
    return config, HeldOutputs(config.state)


def printable(data: bytes) -> str:
    """A held file as text a terminal shows but does not obey: every control character
    but newline and tab escaped (a job's output may try to drive the reviewer's terminal)."""
    text = data.decode("utf-8", "replace")
    return "".join(
        c if c in "\n\t" or not (ord(c) < 32 or 127 <= ord(c) < 160) else f"\\x{ord(c):02x}"
        for c in text
    )


CONFIG = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    required=True,
    help="The agent's site.yaml (the outputs are in its state directory).",
)


@click.group("outputs")
def outputs() -> None:
    """Review the outputs Python jobs left at this site (run on the site's machine)."""


@outputs.command("list")
@CONFIG
@click.option(
    "--state",
    type=click.Choice(["held", "released", "rejected"]),
    default=None,
    help="Only outputs in this state.",
)
def outputs_list(config_path: Path, state: str | None) -> None:
    """Held outputs, one line each: fragment, state, job, operator, files, code hash."""
    _, store = _store(config_path)
    try:
        for held in store.list(state):
            code = str(held.detail.get("code_hash", ""))[:12]
            click.echo(
                f"{held.fragment_id}  {held.state:8}  {held.job_id}  {held.operator}  "
                f"{len(held.files)} files  code {code}"
            )
    finally:
        store.close()


@outputs.command("show")
@CONFIG
@click.argument("fragment")
@click.option("--file", "path", default=None, help="Print this file's content.")
def outputs_show(config_path: Path, fragment: str, path: str | None) -> None:
    """One fragment's outputs: the job, the checks, every file (and one file's content)."""
    _, store = _store(config_path)
    try:
        held = store.get(fragment)
        if held is None:
            fail(f"no outputs held for {fragment}")
        if path is not None:
            try:
                click.echo(printable(store.read(held, path)), nl=False)
            except KeyError:
                fail(f"{fragment} has no file {path}")
            return
        click.echo(f"fragment  {held.fragment_id} ({held.state})")
        click.echo(f"job       {held.job_id} by {held.operator}")
        for key in ("code_hash", "files_sha256", "asset_sha256", "exit_code", "columns"):
            click.echo(f"{key:9} {held.detail.get(key)}")
        if held.detail.get("checks"):
            click.echo(f"checks    {', '.join(held.detail['checks'])}")
        if held.reason or held.reviewer:
            click.echo(f"decided   by {held.reviewer}: {printable(held.reason.encode())}")
        click.echo(f"outputs   {held.outputs_sha256}")
        for item in held.files:
            click.echo(f"  {item.size:>9}  {item.sha256[:16]}  {printable(item.path.encode())}")
    finally:
        store.close()


def _review(
    config_path: Path, fragment: str, key_path: Path, reviewer: str, release: bool, reason: str
) -> None:
    from datetime import UTC, datetime

    from contracts import LicenceError, private_key_from_pem
    from sandbox.agent.reviews import review_statement, sign_review

    config, store = _store(config_path)
    try:
        key = private_key_from_pem(key_path.read_bytes())
    except (OSError, LicenceError) as exc:
        fail(f"cannot read the private key {key_path}: {exc}")
    try:
        held = store.get(fragment)
        if held is None or config.holder is None:
            fail(f"no outputs held for {fragment}")
        statement = review_statement(
            held,
            organisation=config.holder.organisation,
            reviewer=reviewer,
            release=release,
            reason=reason,
            signed_at=datetime.now(UTC),
        )
        if not sign_review(store, statement, key):
            fail(f"{fragment} is {held.state}, not held")
    finally:
        store.close()
    verb = "release" if release else "rejection"
    click.echo(f"{fragment}: {verb} signed; the agent applies it when the gateway next asks")


REVIEW_OPTIONS = [
    CONFIG,
    click.argument("fragment"),
    click.option(
        "--key",
        "key_path",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        required=True,
        help="The holder organisation's signing key (PEM); the agent checks it is pinned.",
    ),
    click.option("--reviewer", default="holder", show_default=True, help="Who reviewed."),
]


F = TypeVar("F", bound=Callable[..., Any])


def _with(options: list[Any]) -> Callable[[F], F]:
    def apply(fn: F) -> F:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


@outputs.command("release")
@_with(REVIEW_OPTIONS)
def outputs_release(config_path: Path, fragment: str, key_path: Path, reviewer: str) -> None:
    """Release a fragment's outputs to the operator (signed with the holder's key)."""
    _review(config_path, fragment, key_path, reviewer, True, "")


@outputs.command("reject")
@_with(REVIEW_OPTIONS)
@click.option("--reason", required=True, help="Why (the operator is shown it).")
def outputs_reject(
    config_path: Path, fragment: str, key_path: Path, reviewer: str, reason: str
) -> None:
    """Reject a fragment's outputs, with a reason the operator sees (signed)."""
    _review(config_path, fragment, key_path, reviewer, False, reason)
