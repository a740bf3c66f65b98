"""Who a site agent is: its own Ed25519 key and its holder's endorsement of that key.

An agent starts only when its endorsement (``identity.endorsement`` in ``site.yaml``) was
signed by one of the holder's keys pinned in ``holder.keys``, names ``holder.organisation``
and names the agent's own public key (``identity.key``); otherwise it refuses with
:class:`IdentityError`.  :meth:`AgentIdentity.prove` answers the gateway's ``Prove`` call:
a signature over the gateway's challenge, the agent's TLS certificate fingerprint and the
endorsement (see :mod:`contracts.endorsement`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts import LicenceError, private_key_from_pem, private_key_to_pem
from contracts.endorsement import (
    CHALLENGE_SIZE,
    Endorsement,
    EndorsementError,
    canonical_endorsement,
    decode_agent_key,
    encode_agent_key,
    parse_endorsement,
    sign_proof,
    verify_endorsement,
)
from sandbox.agent.config import SiteConfig
from sandbox.wire import AgentProof

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.pem"
ENDORSEMENT_FILE = "endorsement.json"


class IdentityError(Exception):
    """The agent's identity key or endorsement is missing or does not hold."""


def certificate_fingerprint(pem: bytes) -> str:
    """SHA-256 (lowercase hex) of the DER encoding of a PEM certificate."""
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))).hexdigest()


def create_identity(directory: Path, file_name: str = IDENTITY_FILE) -> str:
    """Write a fresh agent key to ``directory/file_name`` (PEM, mode 0600); its public key.

    Refuses to overwrite an existing key (``FileExistsError``).
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    fd = os.open(directory / file_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private_key_to_pem(key))
    return encode_agent_key(key.public_key())


def read_identity_key(path: Path) -> Ed25519PrivateKey:
    """The agent's private key; raises :class:`IdentityError` when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read the agent's key {path}: {exc.strerror}") from None
    try:
        key = private_key_from_pem(data)
    except LicenceError:
        raise IdentityError(f"{path} is not an Ed25519 private key in PEM") from None
    if path.stat().st_mode & 0o077:
        log.warning("the agent's key %s is readable by other users; chmod 600 it", path)
    return key


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    """The agent's key, its verified endorsement, and the certificate it serves with."""

    private_key: Ed25519PrivateKey
    public_key: str
    organisation: str
    endorsement: Endorsement
    endorsement_json: bytes
    tls_cert: Path

    @property
    def key_prefix(self) -> str:
        """The first 16 hex digits of the raw public key (names the agent's log)."""
        return decode_agent_key(self.public_key).public_bytes_raw().hex()[:16]

    def tls_fingerprint(self) -> str:
        """SHA-256 (DER) of the certificate the agent serves with now."""
        return certificate_fingerprint(self.tls_cert.read_bytes())

    def prove(self, challenge: bytes) -> AgentProof:
        """Sign the gateway's challenge with the certificate fingerprint and endorsement."""
        if len(challenge) != CHALLENGE_SIZE:
            raise ValueError(f"a challenge is {CHALLENGE_SIZE} bytes")
        fingerprint = self.tls_fingerprint()
        signature = sign_proof(self.private_key, challenge, fingerprint, self.endorsement)
        return AgentProof(self.public_key, self.endorsement_json, signature, fingerprint)


def _read_endorsement(path: Path) -> Endorsement:
    try:
        return parse_endorsement(path.read_bytes())
    except OSError as exc:
        raise IdentityError(f"cannot read the endorsement {path}: {exc.strerror}") from None
    except EndorsementError as exc:
        raise IdentityError(f"{path} is not an endorsement: {exc.detail}") from None


def endorsed_agent_key(config: SiteConfig) -> str:
    """The agent key the holder endorsed, checked against ``holder`` (no private key read).

    For readers of the agent's log, which is signed with that key.
    """
    endorsement = _read_endorsement(config.identity.endorsement)
    keys = [decode_agent_key(text) for text in config.holder.keys]
    try:
        verify_endorsement(endorsement, keys, organisation=config.holder.organisation)
    except EndorsementError as exc:
        raise IdentityError(
            f"the endorsement {config.identity.endorsement}: {exc.detail}"
        ) from None
    return endorsement.terms.agent_key


def load_identity(config: SiteConfig) -> AgentIdentity:
    """Read the agent's key and endorsement and check them against ``holder``.

    Raises :class:`IdentityError` naming what is wrong: the agent must not start.
    """
    private_key = read_identity_key(config.identity.key)
    public_key = encode_agent_key(private_key.public_key())
    path = config.identity.endorsement
    endorsement = _read_endorsement(path)
    keys = [decode_agent_key(text) for text in config.holder.keys]
    holder = config.holder.organisation
    try:
        verify_endorsement(endorsement, keys, organisation=holder, agent_key=public_key)
    except EndorsementError as exc:
        reason = {
            "bad_signature": "is not signed by any of holder.keys",
            "wrong_organisation": f"endorses the agent for {endorsement.terms.organisation}, "
            f"not for holder.organisation ({holder})",
            "wrong_agent": f"names agent key {endorsement.terms.agent_key[:12]}…, not this "
            f"agent's key {public_key[:12]}… ({config.identity.key.name})",
        }.get(exc.code, exc.detail)
        raise IdentityError(f"the endorsement {path} {reason}") from None
    return AgentIdentity(
        private_key=private_key,
        public_key=public_key,
        organisation=holder,
        endorsement=endorsement,
        endorsement_json=canonical_endorsement(endorsement),
        tls_cert=config.tls.cert,
    )
