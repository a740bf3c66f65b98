"""A bounded fuzz run over the OpenAPI schema: no operation answers 5xx, and no answer
carries internal details (tracebacks, exception class names, SQL, file paths).

Every operation gets ``EXAMPLES[store]`` generated requests (schemathesis over hypothesis,
derandomised so a run is reproducible), authenticated in turn as each role of a seeded
world with a policy and an active licence, on a real server over a real store.
"""

from __future__ import annotations

import itertools
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from contracts import countersign, encode_public_key, generate_keypair, sign_offer
from gateway.config import Settings
from gateway.http import create_app
from gateway.service import build_services
from gateway.store import open_store
from tests.conftest import SeededRandom
from tests.governance.conftest import b64, policy_for, terms_for, terms_json
from tests.server import running
from tests.world import StandInAgents, World, seed_world

EXAMPLES = {"sqlite": 120, "postgresql": 60}
"""Per operation: 180 over both stores, the whole run within two minutes on two cores."""

ROOT = str(Path(__file__).resolve().parents[2])
INTERNAL = re.compile(
    r"Traceback \(most recent call last\)|\bFile \\?\"[^\"]+\", line \d+"
    r"|\b(?:[A-Z][a-z0-9]+)+(?:Error|Exception|Warning)\b\s*[:(]"
    r"|sqlalchemy|psycopg|sqlite3|\[SQL: |\bINSERT INTO\b|\bSELECT \S+(?:, \S+)* FROM \w+_"
    r"|site-packages|" + re.escape(ROOT) + "|" + re.escape(sys.prefix)
)
"""What must never appear in an answer: stack frames, exception classes, SQL, the paths of
the code or the interpreter."""


@dataclass
class Fuzzed:
    url: str
    keys: Iterator[str]
    known: dict[str, str]
    """Real ids for path parameters, so that requests also reach existing objects."""
    store: str
    requests: int = 0
    server_errors: int = 0


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzzed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Fuzzed]:
    tmp = tmp_path
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database()
    store = open_store(url)
    settings_ = Settings(data_dir=tmp / "data", dev_mode=True, max_body_bytes=64 * 1024)
    services = build_services(store, settings_, random=SeededRandom(11), prover=StandInAgents())
    world = seed_world(services)
    _license(world)
    keys = [world.holder_a_key, world.operator_key, world.auditor_key, world.admin_key]
    known = {
        "asset_id": world.asset_a,
        "site_id": world.site_a,
        "org_id": world.holder_a.org_id,
        "principal_id": world.operator.principal_id,
        "licence_id": "lic-fuzz",
        "version": "1",
    }
    with running(create_app(services)) as base:
        yield Fuzzed(base, itertools.cycle(keys), known, request.param)
    store.close()


def _license(world: World) -> None:
    """Signing keys, a policy on asset A and an active licence: budgets, usage and job
    decisions have something to answer about."""
    svc = world.services
    holder, operator = generate_keypair(), generate_keypair()
    svc.identities.set_public_key(
        world.holder_a, world.holder_a.org_id, encode_public_key(holder.public_key)
    )
    svc.identities.set_public_key(
        world.operator, world.operator.org_id, encode_public_key(operator.public_key)
    )
    svc.policies.set(world.holder_a, world.asset_a, policy_for(world.asset_a))
    terms = terms_for(world, licence_id="lic-fuzz")
    holder_sig = sign_offer(terms, holder.private_key)
    svc.licences.offer(world.holder_a, terms_json(terms), b64(holder_sig))
    svc.licences.accept(
        world.operator, terms.licence_id, b64(countersign(terms, holder_sig, operator.private_key))
    )


def _call(fuzzed: Fuzzed, http: httpx.Client, case: schemathesis.Case) -> list[str]:
    headers = {"Authorization": f"Bearer {next(fuzzed.keys)}"}
    request = case.as_transport_kwargs(base_url=fuzzed.url, headers=headers)
    http.cookies = request.pop("cookies", None) or {}
    if isinstance(request.get("data"), bytes | str):
        request["content"] = request.pop("data")
    response = http.request(**request)
    fuzzed.requests += 1
    problems = []
    if response.status_code >= 500:
        fuzzed.server_errors += 1
        problems.append(f"{response.status_code}")
    if INTERNAL.search(response.text):
        problems.append("internal details")
    return [f"{case.method} {case.formatted_path}: {p}: {response.text[:200]}" for p in problems]


def _strategy(fuzzed: Fuzzed, operation: Any) -> st.SearchStrategy[schemathesis.Case]:
    """Valid requests, invalid ones, and valid ones on objects that exist."""
    strategies = [operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)]
    names = {p.name for p in operation.path_parameters}
    if names and names <= set(fuzzed.known):
        known = {n: fuzzed.known[n] for n in names}
        strategies.append(operation.as_strategy(path_parameters=known))
    return st.one_of(strategies)


def test_no_server_errors_or_internal_details(fuzzed: Fuzzed) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json")
    found: dict[str, str] = {}
    began = time.perf_counter()
    with httpx.Client(timeout=30) as http:
        for result in schema.get_all_operations():
            operation = result.ok()

            @settings(
                max_examples=EXAMPLES[fuzzed.store],
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=_strategy(fuzzed, operation))
            def run(case: schemathesis.Case) -> None:
                for problem in _call(fuzzed, http, case):
                    found.setdefault(problem.split(":")[0], problem)

            run()
    elapsed = time.perf_counter() - began
    print(
        f"\nfuzzed {fuzzed.requests} requests in {elapsed:.0f} s, "
        f"{fuzzed.server_errors} answered 5xx"
    )
    assert not found, "\n".join(found.values())
