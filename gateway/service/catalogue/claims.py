"""Claiming a site: its agent proves that the registering organisation endorsed it.

The gateway sends the agent a fresh random challenge over the pinned mutual-TLS channel
(the agent must present the certificate being registered).  The agent answers with its
identity key, its holder's endorsement of that key and its signature over the challenge,
its certificate's fingerprint and the endorsement (:mod:`contracts.endorsement`).  The
claim stands only if the endorsement was signed by the registering organisation's
registered key and names that organisation, and the signature verifies under the endorsed
agent key for this challenge and this certificate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from contracts import LicenceError, decode_public_key
from contracts.endorsement import (
    Endorsement,
    EndorsementError,
    parse_endorsement,
    verify_endorsement,
    verify_proof,
)
from gateway.errors import BlindgateError, Forbidden, Unavailable
from sandbox.wire import AgentProof


class AgentProver(Protocol):
    """Asks the agent at ``address`` (presenting certificate ``fingerprint``) to prove
    who it is over ``challenge``."""

    def prove(self, address: str, fingerprint: str, challenge: bytes) -> AgentProof: ...


class ClaimRefused(Forbidden):
    """The agent is not the registering organisation's; ``owner`` is the organisation whose
    registered key did endorse it, when there is one (it sees the attempt in its trace)."""

    def __init__(self, detail: str, owner: str | None = None) -> None:
        super().__init__(detail)
        self.owner = owner


@dataclass(frozen=True, slots=True)
class Claim:
    """A proven claim: the agent's key and its endorsement."""

    agent_key: str
    endorsement: Endorsement


def ask(prover: AgentProver, address: str, fingerprint: str, challenge: bytes) -> AgentProof:
    """The agent's proof; an agent that cannot be asked is ``unavailable`` (503)."""
    try:
        return prover.prove(address, fingerprint, challenge)
    except BlindgateError:
        raise
    except Exception:
        raise Unavailable(f"the agent at {address} did not answer") from None


def _verifies(endorsement: Endorsement, key_text: str | None) -> bool:
    if key_text is None:
        return False
    try:
        verify_endorsement(endorsement, [decode_public_key(key_text)])
    except (EndorsementError, LicenceError):
        return False
    return True


def verify_claim(
    proof: AgentProof,
    *,
    address: str,
    fingerprint: str,
    challenge: bytes,
    org_id: str,
    org_key: str,
    key_of: Callable[[str], str | None],
) -> Claim:
    """Check the agent's proof for ``org_id`` (whose registered key is ``org_key``).

    ``key_of(org)`` is another organisation's registered key (to name who owns an agent
    claimed by the wrong organisation).  Raises :class:`ClaimRefused` (403).
    """
    who = f"the agent at {address}"
    try:
        endorsement = parse_endorsement(proof.endorsement)
    except EndorsementError:
        raise ClaimRefused(f"{who} sent no readable endorsement") from None
    if proof.agent_public_key != endorsement.terms.agent_key:
        raise ClaimRefused(f"{who} holds another key than the one its endorsement names")
    if proof.tls_fingerprint.lower() != fingerprint:
        raise ClaimRefused(f"{who} proved another certificate than the one registered")
    endorser = endorsement.terms.organisation
    if endorser != org_id:
        owner = endorser if _verifies(endorsement, key_of(endorser)) else None
        raise ClaimRefused(f"{who} is endorsed by another organisation", owner)
    if not _verifies(endorsement, org_key):
        raise ClaimRefused(f"{who} is endorsed by no organisation you hold keys for")
    try:
        verify_proof(proof.signature, challenge, fingerprint, endorsement)
    except EndorsementError:
        raise ClaimRefused(f"{who} did not prove it holds the endorsed key") from None
    return Claim(endorsement.terms.agent_key, endorsement)
