from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from blindgate_demo.seed import POLICY
from contracts import LicenceTerms, countersign, encode_public_key, generate_keypair, sign_offer
from gateway.http import create_app
from tests.server import running
from tests.world import World

POLICY_FOR = (
    # the demo's policy without its python section (it names columns this world lacks)
    POLICY.split("\npython:")[0]
    .replace(
        "kinds: [sql_aggregate, he_aggregate, he_linear, python]",
        "kinds: [sql_aggregate, he_aggregate, he_linear]",
    )
    .replace("asset: admissions", "asset: {asset}")
    .replace("budget: {epsilon: 10,", "budget: {epsilon: 3,")
    .replace("  sex:\n    control: group_by\n    keys: {values: [F, M]}\n", "")
    .replace("  admitted: {control: filter}\n", "")
    .replace("  cost:\n    control: aggregate\n    clip: {lower: 0, upper: 50000}\n", "")
    .replace("  diagnosis: {control: never}\n", "  age_band: {control: never}\n")
)


def policy_for(asset_id: str) -> str:
    # the test world's asset has columns patient_id, age, los_days
    return (
        POLICY_FOR.replace("{asset}", asset_id)
        .replace(
            "  district:\n    control: group_by\n"
            "    keys: {values: [north, south, east, west, centre, harbour]}\n",
            "",
        )
        .replace("  age_band: {control: never}\n", "")
    )


@dataclass
class Gov:
    world: World
    holder_key: Ed25519PrivateKey
    operator_key: Ed25519PrivateKey
    licence_id: str


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def terms_for(world: World, licence_id: str = "lic-test-1", **over: object) -> LicenceTerms:
    now = world.services.ctx.clock.now()
    data: dict[str, object] = {
        "licence_id": licence_id,
        "holder_org_id": world.holder_a.org_id,
        "operator_org_id": world.operator.org_id,
        "asset_ids": [world.asset_a],
        "purposes": ["public-health-research"],
        "job_kinds": ["sql_aggregate"],
        "valid_from": now - timedelta(days=1),
        "valid_until": now + timedelta(days=90),
        "epsilon_cap": "10",
        "job_cap": 100,
        "fee": {"amount": "5000", "currency": "CNY", "revenue_share_percent": "12.5"},
    }
    data.update(over)
    return LicenceTerms.model_validate(data)


def terms_json(terms: LicenceTerms) -> dict[str, object]:
    return json.loads(terms.model_dump_json())


@pytest.fixture
def gov(world: World) -> Gov:
    """Keys registered, a policy on asset A, and an active licence for the operator."""
    svc = world.services
    holder = generate_keypair()
    operator = generate_keypair()
    svc.identities.set_public_key(
        world.holder_a, world.holder_a.org_id, encode_public_key(holder.public_key)
    )
    svc.identities.set_public_key(
        world.operator, world.operator.org_id, encode_public_key(operator.public_key)
    )
    svc.policies.set(world.holder_a, world.asset_a, policy_for(world.asset_a))
    terms = terms_for(world)
    holder_sig = sign_offer(terms, holder.private_key)
    svc.licences.offer(world.holder_a, terms_json(terms), b64(holder_sig))
    op_sig = countersign(terms, holder_sig, operator.private_key)
    svc.licences.accept(world.operator, terms.licence_id, b64(op_sig))
    return Gov(world, holder.private_key, operator.private_key, terms.licence_id)


@pytest.fixture
def gov_url(gov: Gov) -> Iterator[str]:
    with running(create_app(gov.world.services)) as url:
        yield url
