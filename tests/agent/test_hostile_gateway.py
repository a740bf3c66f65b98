"""A compromised gateway: it holds the gateway's TLS key and sends the site whatever it
likes.  The site decides for itself, so each of these is refused with a reason, charged
nothing, and logged at the site."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from contracts.tickets import encode_ticket
from gateway.siteclient.client import SiteClient, SiteMetrics
from sandbox.agent.config import parse_config
from sandbox.agent.server import AgentServer
from sandbox.wire import FragmentOutcome, FragmentRequest
from tests.agent.conftest import Pki, agent_document
from tests.agent.tickets import POLICY, Minter, asset_id, fresh_id, release_of, request

MINT = Minter()
GATEWAY_KEY = Ed25519PrivateKey.generate()
"""A key the gateway holds (or makes up): pinned nowhere."""


LOGS: list[Any] = []
"""The site logs of the agents these tests talk to (the suite's agent and their own)."""


@pytest.fixture(autouse=True)
def _logs(agent: AgentServer) -> Iterator[None]:
    LOGS[:] = [agent.service.log]
    yield
    LOGS.clear()


def refused(outcome: FragmentOutcome, code: str) -> tuple[str, ...]:
    """``outcome`` is a refusal with ``code``, logged at the site with the same reason."""
    assert (outcome.ok, outcome.failure, outcome.table) == (False, "refused", None), outcome
    assert outcome.reasons[0] == code, outcome.reasons
    logged = [
        e.entry
        for log in LOGS
        for e in log.entries(after=max(log.size - 50, 0) - 1, limit=50)
        if e.entry.get("event") == "ticket" and e.entry.get("decision") == "refuse"
    ]
    assert any(
        entry["reason"] == code and entry["fragment"] == outcome.fragment_id for entry in logged
    ), logged[-3:]
    text = repr(logged)
    assert "p1" not in text and "flu" not in text
    return outcome.reasons


def spent(agent: AgentServer, local_ref: str = "admissions-csv") -> float:
    since = datetime.now(UTC) - timedelta(days=30)
    return agent.service.ledger.asset_spent(asset_id(local_ref), since).epsilon


@pytest.fixture
def before(agent: AgentServer) -> float:
    return spent(agent)


# what the site would never run ----------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT * FROM admissions", "analysis_refused"),
        (
            "SELECT patient_id, diagnosis FROM admissions WHERE patient_id = 'p1'",
            "analysis_refused",
        ),
        ("SELECT los FROM admissions LIMIT 1 OFFSET 3", "analysis_refused"),
        ("SELECT district, MAX(los) AS m FROM admissions GROUP BY district", "analysis_refused"),
        ("SELECT string_agg(diagnosis, ',') AS all_rows FROM admissions", "analysis_refused"),
        ("SELECT diagnosis, COUNT(*) AS n FROM admissions GROUP BY diagnosis", "policy_denied"),
        (
            "SELECT district, COUNT(*) AS n FROM admissions GROUP BY district HAVING COUNT(*) = 1",
            "analysis_refused",
        ),
        ("SELECT COUNT(*) AS n FROM admissions WHERE diagnosis = 'flu'", "policy_denied"),
    ],
    ids=[
        "all-rows",
        "one-person",
        "paging",
        "unbounded-max",
        "string-agg",
        "never-column-key",
        "having-one",
        "never-column-filter",
    ],
)
def test_row_level_unbounded_and_never_column_jobs_are_refused(
    client: SiteClient, agent: AgentServer, before: float, sql: str, code: str
) -> None:
    outcome = client.run_fragment(request(MINT.ticket(sql=sql, epsilon=50)))
    reasons = refused(outcome, code)
    assert "p1" not in repr(outcome) and "flu" not in " ".join(reasons)
    assert spent(agent) == before


def test_a_ticket_naming_an_asset_outside_the_sites_configuration_is_refused(
    client: SiteClient,
) -> None:
    outcome = client.run_fragment(request(MINT.ticket(local_ref="../../etc/passwd")))
    refused(outcome, "unknown_asset")


def test_python_jobs_need_the_unsafe_test_executor(
    certs: Pki, assets: dict[str, Path], tmp_path: Path
) -> None:
    document = agent_document(certs, assets, tmp_path / "cache")
    document["unsafe_enable_test_executor"] = False
    with _agent(document, certs) as (_, client):
        ticket = MINT.ticket(kind="python_test", sql="result = open('/etc/passwd').read()")
        refused(client.run_fragment(request(ticket)), "unknown_kind")


# another organisation, forged and altered statements --------------------------------------
def test_a_policy_signed_with_a_key_the_site_does_not_pin_is_refused(
    client: SiteClient, agent: AgentServer, before: float
) -> None:
    permissive = POLICY.replace("min_group_size: 2", "min_group_size: 1").replace(
        "diagnosis: {control: never}", "diagnosis: {control: group_by}"
    )
    forger = dataclasses.replace(MINT, key=GATEWAY_KEY, policy=permissive)
    ticket = MINT.ticket(
        sql="SELECT diagnosis, COUNT(*) AS n FROM admissions GROUP BY diagnosis",
        policy=forger.signed_policy(asset_id("admissions-csv")),
    )
    refused(client.run_fragment(request(ticket)), "policy_signature")
    assert spent(agent) == before


def test_another_organisations_policy_does_not_govern_this_sites_asset(
    client: SiteClient,
) -> None:
    """A second holder's policy (even one the site's own key signed for that organisation,
    or for another asset) never stands for this holder's policy on this asset."""
    other_org = dataclasses.replace(MINT, organisation="org_rogue_holder")
    ticket = MINT.ticket(policy=other_org.signed_policy(asset_id("admissions-csv")))
    refused(client.run_fragment(request(ticket)), "policy_not_ours")
    ticket = MINT.ticket(policy=MINT.signed_policy(asset_id("admissions-parquet")))
    refused(client.run_fragment(request(ticket)), "policy_not_ours")


def test_a_policy_document_altered_after_signing_is_refused(client: SiteClient) -> None:
    signed = MINT.signed_policy(asset_id("admissions-csv"))
    relaxed = signed.model_copy(
        update={"document": signed.document.replace("diagnosis: {control: never}", "")}
    )
    refused(client.run_fragment(request(MINT.ticket(policy=relaxed))), "policy_altered")


def test_a_column_schema_altered_after_signing_is_refused(client: SiteClient) -> None:
    signed = MINT.signed_policy(asset_id("admissions-csv"))
    columns = tuple(
        (name, kind, "attribute" if name == "diagnosis" else tag)
        for name, kind, tag in signed.statement.columns
    )
    altered = signed.model_copy(
        update={"statement": signed.statement.model_copy(update={"columns": columns})}
    )
    refused(client.run_fragment(request(MINT.ticket(policy=altered))), "policy_signature")


def test_an_outdated_policy_is_refused_once_a_newer_one_was_seen(client: SiteClient) -> None:
    assert client.run_fragment(request(MINT.ticket())).ok
    yesterday = dataclasses.replace(MINT, signed_at=datetime.now(UTC) - timedelta(days=1))
    old = MINT.ticket(policy=yesterday.signed_policy(asset_id("admissions-csv")))
    refused(client.run_fragment(request(old)), "stale_policy")


def test_a_licence_signed_by_another_key_is_refused(client: SiteClient) -> None:
    forger = dataclasses.replace(MINT, key=GATEWAY_KEY)
    ticket = MINT.ticket(licences=(forger.licence(asset_id("admissions-csv")),))
    refused(client.run_fragment(request(ticket)), "licence_signature")


def test_licence_terms_altered_after_signing_are_refused(client: SiteClient) -> None:
    licence = MINT.licence(asset_id("admissions-csv"), epsilon_cap="1")
    altered = licence.model_copy(update={"terms": licence.terms.replace('"1"', '"1000"')})
    assert altered.terms != licence.terms
    refused(client.run_fragment(request(MINT.ticket(licences=(altered,)))), "licence_signature")


def test_a_ticket_without_a_licence_for_the_asset_is_refused(client: SiteClient) -> None:
    elsewhere = MINT.licence("ast_somewhere_else")
    refused(client.run_fragment(request(MINT.ticket(licences=(elsewhere,)))), "no_licence")
    refused(client.run_fragment(request(MINT.ticket(licences=()))), "no_licence")


def test_a_licence_for_another_operator_is_refused(client: SiteClient) -> None:
    theirs = dataclasses.replace(MINT, operator="org_someone_else")
    ticket = MINT.ticket(licences=(theirs.licence(asset_id("admissions-csv")),))
    refused(client.run_fragment(request(ticket)), "licence_other_operator")


def test_an_altered_job_loses_its_approval(client: SiteClient) -> None:
    manual = dataclasses.replace(
        MINT, policy=POLICY.replace("approval: {mode: auto}", "approval: {mode: manual}")
    )
    approved = manual.ticket()
    approval = manual.approval(approved)
    assert client.run_fragment(request(manual.ticket(job=approved.job, approvals=(approval,)))).ok
    sneaky = approved.job.model_copy(update={"sql": "SELECT COUNT(*) AS n FROM admissions"})
    ticket = manual.ticket(job=sneaky, approvals=(approval,))
    refused(client.run_fragment(request(ticket)), "approval_missing")
    rogue = dataclasses.replace(manual, organisation="org_rogue_holder")
    ticket = manual.ticket(job=approved.job, approvals=(rogue.approval(approved),))
    refused(client.run_fragment(request(ticket)), "approval_missing")
    forged = dataclasses.replace(manual, key=GATEWAY_KEY).approval(approved)
    refused(
        client.run_fragment(request(manual.ticket(job=approved.job, approvals=(forged,)))),
        "approval_missing",
    )


# replayed and expired tickets ------------------------------------------------------------
def test_expired_and_future_tickets_are_refused(client: SiteClient) -> None:
    stale = MINT.ticket(issued=datetime.now(UTC) - timedelta(hours=1))
    refused(client.run_fragment(request(stale)), "ticket_expired")
    future = MINT.ticket(issued=datetime.now(UTC) + timedelta(hours=1))
    refused(client.run_fragment(request(future)), "ticket_expired")


def test_a_ticket_for_another_fragment_id_is_refused(client: SiteClient) -> None:
    ticket = MINT.ticket()
    other = FragmentRequest("someone-else", encode_ticket(ticket))
    refused(client.run_fragment(other), "fragment_mismatch")


def test_garbage_is_not_a_ticket(client: SiteClient) -> None:
    for n, data in enumerate((b"", b"SELECT * FROM asset", b'{"version": 1}')):
        outcome = client.run_fragment(FragmentRequest(f"garbage-{n}-{fresh_id()}", data))
        refused(outcome, "invalid_ticket")


def test_a_replayed_ticket_runs_once_and_is_refused_after_a_restart(
    certs: Pki, assets: dict[str, Path], tmp_path: Path
) -> None:
    document = agent_document(certs, assets, tmp_path / "cache")
    ticket = MINT.ticket(epsilon=3)
    with _agent(document, certs) as (agent, client):
        first = client.run_fragment(request(ticket))
        again = client.run_fragment(request(ticket))
        assert first.ok and again.replayed and again.table == first.table
        assert spent(agent) == 3
    with _agent(document, certs) as (agent, client):
        refused(client.run_fragment(request(ticket)), "replayed")
        assert spent(agent) == 3


def test_a_revocation_the_holder_signed_stays_in_force(
    certs: Pki, assets: dict[str, Path], tmp_path: Path
) -> None:
    document = agent_document(certs, assets, tmp_path / "cache")
    with _agent(document, certs) as (_, client):
        forged = dataclasses.replace(MINT, key=GATEWAY_KEY).revocation()
        assert client.run_fragment(request(MINT.ticket(revocations=(forged,)))).ok
        revoked = MINT.ticket(revocations=(MINT.revocation(),))
        reasons = refused(client.run_fragment(request(revoked)), "policy_denied")
        assert "licence_revoked" in reasons
        # the gateway leaves the revocation out: the site remembers it
        reasons = refused(client.run_fragment(request(MINT.ticket())), "policy_denied")
        assert "licence_revoked" in reasons


# the site's own budget --------------------------------------------------------------------
def test_the_site_spends_no_more_than_its_holder_allowed(
    certs: Pki, assets: dict[str, Path], tmp_path: Path
) -> None:
    tight = dataclasses.replace(
        MINT,
        policy=POLICY.replace("epsilon: 1000000", "epsilon: 5").replace(
            "epsilon_per_job_max: 50", "epsilon_per_job_max: 2"
        ),
    )
    document = agent_document(certs, assets, tmp_path / "cache")
    with _agent(document, certs) as (agent, client):
        outcomes = [client.run_fragment(request(tight.ticket(epsilon=2))) for _ in range(3)]
        assert [o.ok for o in outcomes] == [True, True, False]
        assert outcomes[2].reasons[0] in ("policy_denied", "site_budget_exhausted")
        assert spent(agent) == 4
        assert release_of(outcomes[0])["charges"]
        refused(client.run_fragment(request(tight.ticket(epsilon=3))), "policy_denied")
        assert client.run_fragment(request(tight.ticket(epsilon=1))).ok
        refused(client.run_fragment(request(tight.ticket(epsilon=0.5))), "policy_denied")
        assert spent(agent) == 5


# helpers ---------------------------------------------------------------------------------
@contextmanager
def _agent(document: dict[str, Any], certs: Pki) -> Iterator[tuple[AgentServer, SiteClient]]:
    """A separate agent with its own cache and ledger, and a gateway client for it."""
    document = {**document, "pool_size": 0}
    agent = AgentServer(parse_config(document, certs.root / "agent"))
    port = agent.start()
    LOGS.append(agent.service.log)
    try:
        with SiteClient(
            f"127.0.0.1:{port}",
            certs.ca,
            certs.gateway.cert,
            certs.gateway.key,
            certs.site.fingerprint,
            metrics=SiteMetrics(CollectorRegistry()),
            timeout=15.0,
        ) as client:
            yield agent, client
    finally:
        LOGS.remove(agent.service.log)
        agent.stop(grace=0.2)
