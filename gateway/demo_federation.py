"""The demo's federation: two more hospitals, a policy and a signed licence on every
partition of the admissions asset, and one federated query run end to end."""

from __future__ import annotations

import base64
import csv
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts import (
    LicenceTerms,
    countersign,
    encode_public_key,
    generate_keypair,
    private_key_to_pem,
    sign_offer,
)
from gateway.domain import Actor, Role
from gateway.service import Services
from gateway.service.identity.schemas import OrganisationCreate, PrincipalCreate

PARTNERS = (("eastside", "Eastside Medical Centre"), ("harbour", "Harbour Hospital"))
QUERY = (
    "SELECT district, COUNT(*) AS admissions, AVG(los_days) AS mean_stay "
    "FROM admissions WHERE age >= 65 GROUP BY district"
)
PURPOSE = "public-health-research"
HE_DISTRICTS = ("north", "south", "east", "west", "centre", "harbour")


def _save_key(path: Path, pem: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def partner_holders(services: Services, admin: Actor) -> list[tuple[str, str, Actor]]:
    """The partner hospitals' organisations and stewards: (slug, name, holder actor)."""
    out = []
    for slug, name in PARTNERS:
        org = services.identities.create_org(admin, OrganisationCreate(name=name))
        steward = services.identities.create_principal(
            admin, PrincipalCreate(org_id=org.id, name=f"{slug}-steward", role=Role.HOLDER)
        )
        out.append((slug, name, Actor(steward.principal.id, org.id, Role.HOLDER)))
    return out


def license_partitions(
    services: Services,
    keys_dir: Path,
    operator: Actor,
    holders: list[tuple[str, Actor, str]],
    policy: str,
) -> list[str]:
    """Each holder sets the policy and offers a signed licence; the operator countersigns.

    Signing keys are made here and kept in ``keys_dir`` (mode 0600): in real use each
    organisation keeps its own key on its own machine.
    """
    operator_keys = generate_keypair()
    _save_key(keys_dir / "operator.pem", private_key_to_pem(operator_keys.private_key))
    services.identities.set_public_key(
        operator, operator.org_id, encode_public_key(operator_keys.public_key)
    )
    now = datetime.now(UTC).replace(microsecond=0)
    licences = []
    for slug, holder, asset_id in holders:
        keys = generate_keypair()
        _save_key(keys_dir / f"{slug}.pem", private_key_to_pem(keys.private_key))
        services.identities.set_public_key(
            holder, holder.org_id, encode_public_key(keys.public_key)
        )
        services.policies.set(holder, asset_id, policy)
        terms = LicenceTerms.model_validate(
            {
                "licence_id": f"lic-demo-{slug}",
                "holder_org_id": holder.org_id,
                "operator_org_id": operator.org_id,
                "asset_ids": [asset_id],
                "purposes": [PURPOSE],
                "job_kinds": ["sql_aggregate", "he_aggregate", "he_linear"],
                "valid_from": now - timedelta(minutes=5),
                "valid_until": now + timedelta(days=90),
                "epsilon_cap": "20",
                "fee": {"amount": "1000", "currency": "CNY", "revenue_share_percent": "10"},
            }
        )
        offer = sign_offer(terms, keys.private_key)
        services.licences.offer(
            holder, json.loads(terms.model_dump_json()), base64.b64encode(offer).decode()
        )
        accept = countersign(
            terms, offer, operator_keys.private_key, holder_public_key=keys.public_key
        )
        services.licences.accept(operator, terms.licence_id, base64.b64encode(accept).decode())
        licences.append(terms.licence_id)
    return licences


def plaintext_answer(site_files: list[Path]) -> dict[str, tuple[int, float]]:
    """The exact answer to :data:`QUERY`, computed from the demo's own generated files.

    Only the demo can do this (it generated the data); no gateway code path reads rows.
    """
    stays: dict[str, list[int]] = {}
    for path in site_files:
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if int(row["age"]) >= 65:
                    stays.setdefault(row["district"], []).append(int(row["los_days"]))
    return {d: (len(v), sum(v) / len(v)) for d, v in sorted(stays.items())}


def run_query(
    services: Services, operator: Actor, asset_ids: list[str], run_once: Callable[[], bool]
) -> tuple[str, dict[str, Any] | None]:
    """Submit :data:`QUERY` over every partition and run it; return (job id, result)."""
    from gateway.service.jobs.schemas import JobSubmitIn

    job = services.jobs.submit(
        operator, JobSubmitIn(sql=QUERY, assets=asset_ids, epsilon=1.0, purpose=PURPOSE)
    )
    if job.state == "queued":
        run_once()
    done = services.jobs.get(operator, job.id)
    if done.state != "succeeded":
        return job.id, None
    return job.id, services.jobs.result(operator, job.id).model_dump(mode="json")


def run_he_aggregate(
    services: Services, operator: Actor, asset_ids: list[str], run_once: Callable[[], bool]
) -> tuple[str, dict[str, Any] | None, Any]:
    """Secure aggregation of :data:`QUERY`'s numbers under a fresh operator key.

    The demo plays the operator here: it creates the TenSEAL keys, uploads only the
    public context, and decrypts the released ciphertexts.  Returns (job id, decoded
    totals or ``None``, the keys).
    """
    import asyncio
    from collections.abc import AsyncIterator

    from gateway.client.he import HeKeys, decode_aggregate
    from gateway.service.jobs.schemas import HeJobIn

    keys = HeKeys.create(galois_keys=False)
    bundle = keys.public_bundle()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(bundle), 1 << 20):
            yield bundle[start : start + (1 << 20)]

    asyncio.run(services.he.upload(operator, chunks(), len(bundle), keys.bundle_sha256))
    job = services.jobs.submit(
        operator,
        HeJobIn.model_validate(
            {
                "kind": "he_aggregate",
                "assets": asset_ids,
                "context_sha256": keys.bundle_sha256,
                "purpose": PURPOSE,
                "epsilon": 1.0,
                "columns": ["los_days"],
                "groups": [{"column": "district", "values": list(HE_DISTRICTS)}],
                "where": [{"column": "age", "op": ">=", "value": 65}],
            }
        ),
    )
    if job.state == "queued":
        run_once()
    done = services.jobs.get(operator, job.id)
    if done.state != "succeeded":
        return job.id, None, keys
    result = services.jobs.result(operator, job.id).model_dump(mode="json")
    return job.id, decode_aggregate(keys, result), keys
