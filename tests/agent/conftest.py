"""Fixtures for the site agent suite: a real agent over mutual TLS with a real sandbox.

One development PKI and one agent serve the whole package (starting an agent
detects the isolation layers and pre-starts sandboxes, so it is not free).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry

from blindgate_demo.federation import endorse_agent
from blindgate_proto.v1 import site_pb2_grpc
from gateway import pki
from gateway.siteclient.client import SiteClient, SiteMetrics
from sandbox.agent.config import SiteConfig, parse_config
from sandbox.agent.server import AgentServer
from tests.agent.python_jobs import PY_ROWS
from tests.agent.tickets import HOLDER, ORGANISATION

ROWS = [
    ("p1", "north", 3, "flu"),
    ("p2", "south", 5, "asthma"),
    ("p3", "north", 7, "flu"),
    ("p4", "east", 1, "fracture"),
    ("p5", "south", 9, "flu"),
]
EXACT = {"north": (2, 10), "south": (2, 14), "east": (1, 1)}
"""Exact (people, total length of stay) per district: what no released value may equal."""
MAX_INPUT = 6 * 1024 * 1024


@dataclass(frozen=True)
class Identity:
    """A certificate and its key, as PEM, with the certificate's fingerprint."""

    cert: bytes
    key: bytes
    fingerprint: str


@dataclass(frozen=True)
class Pki:
    """Everything the suite needs from the development PKI."""

    root: Path
    ca: bytes
    site: Identity
    site_key_path: Path
    impostor: Identity
    gateway: Identity
    intruder: Identity
    foreign_ca: bytes
    foreign: Identity
    holder_org: str
    holder_key: Ed25519PrivateKey
    identity: dict[str, Any]
    """site.yaml's holder and identity sections for the suite's agent (absolute paths)."""


HOLDER_ORG = ORGANISATION


def agent_identity(
    directory: Path, org_id: str, holder_key: Ed25519PrivateKey, name: str = "riverside"
) -> dict[str, Any]:
    """An identity key and its endorsement in ``directory``; the sections, paths absolute."""
    sections = endorse_agent(directory, org_id, holder_key, name)
    sections["identity"] = {k: str(directory / v) for k, v in sections["identity"].items()}
    return sections


def _identity(directory: Path, name: str, fingerprint: str) -> Identity:
    return Identity(
        (directory / f"{name}.crt").read_bytes(),
        (directory / f"{name}.key").read_bytes(),
        fingerprint,
    )


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca_dir, other_ca_dir = root / "ca", root / "other-ca"
    tls = root / "agent" / "tls"
    tls.mkdir(parents=True)
    (root / "agent").chmod(0o700)
    clients = root / "clients"
    pki.init_ca(ca_dir)
    pki.init_ca(other_ca_dir, name="Another CA")
    hosts = ["127.0.0.1", "localhost"]
    site = pki.issue(ca_dir, "site", tls, kind="server", hosts=hosts)
    impostor = pki.issue(ca_dir, "impostor", clients, kind="server", hosts=hosts)
    gateway = pki.issue(ca_dir, "gateway", clients, kind="client")
    intruder = pki.issue(ca_dir, "intruder", clients, kind="client")
    foreign = pki.issue(other_ca_dir, "foreign", clients, kind="client")
    holder_key = HOLDER
    return Pki(
        root=root,
        ca=(ca_dir / pki.CA_CERT).read_bytes(),
        site=_identity(tls, "site", site),
        site_key_path=tls / "site.key",
        impostor=_identity(clients, "impostor", impostor),
        gateway=_identity(clients, "gateway", gateway),
        intruder=_identity(clients, "intruder", intruder),
        foreign_ca=(other_ca_dir / pki.CA_CERT).read_bytes(),
        foreign=_identity(clients, "foreign", foreign),
        holder_org=HOLDER_ORG,
        holder_key=holder_key,
        identity=agent_identity(root / "agent", HOLDER_ORG, holder_key),
    )


@pytest.fixture(scope="session")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("assets")
    os.chmod(root, 0o755)
    csv = root / "admissions.csv"
    lines = "".join(",".join(map(str, row)) + "\n" for row in ROWS)
    csv.write_text("patient_id,district,los,diagnosis\n" + lines, encoding="utf-8")
    parquet = root / "admissions.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{parquet}' (FORMAT parquet)")
    con.close()
    return {"csv": csv, "parquet": parquet}


def agent_document(certs: Pki, assets: dict[str, Path], cache: Path) -> dict[str, Any]:
    """The suite's site.yaml as a mapping."""
    tls = certs.site_key_path.parent
    return {
        "listen": "127.0.0.1:0",
        "tls": {"cert": str(tls / "site.crt"), "key": str(tls / "site.key"), "ca": "../ca/ca.crt"},
        "gateway_fingerprints": [certs.gateway.fingerprint.upper()],
        "assets": {
            "admissions-csv": {"path": str(assets["csv"])},
            "admissions-parquet": {"path": str(assets["parquet"]), "format": "parquet"},
            "billing": {"postgres": {"dsn_env": "BILLING_DSN", "table": "public.billing"}},
        },
        "cache_dir": str(cache),
        "unsafe_enable_test_executor": True,
        "pool_size": 1,
        "limits": {"cpu_seconds": 2, "wall_seconds": 6.0},
        "max_concurrent_fragments": 3,
        "max_input_bytes": MAX_INPUT,
        **copy.deepcopy(certs.identity),
    }


@pytest.fixture(scope="session")
def agent_config(certs: Pki, assets: dict[str, Path]) -> SiteConfig:
    cache = certs.root / "agent" / "cache"
    return parse_config(agent_document(certs, assets, cache), certs.root / "agent")


@contextmanager
def running_agent(
    certs: Pki,
    assets: dict[str, Path],
    directory: Path,
    identity: dict[str, Any],
    **overrides: Any,
) -> Iterator[AgentServer]:
    """An agent of its own (the suite's certificate) with ``identity``'s holder and key."""
    document = {**agent_document(certs, assets, directory / "cache"), **identity, **overrides}
    document["pool_size"] = overrides.get("pool_size", 0)
    document["tls"]["ca"] = str(certs.root / "ca" / pki.CA_CERT)
    server = AgentServer(parse_config(document, directory))
    try:
        server.start()
        yield server
    finally:
        server.stop(grace=0.2)


@pytest.fixture(scope="session")
def agent(agent_config: SiteConfig) -> Iterator[AgentServer]:
    server = AgentServer(agent_config)
    try:
        server.start()
        yield server
    finally:
        server.stop(grace=0.5)


@pytest.fixture(scope="session")
def address(agent: AgentServer) -> str:
    return f"127.0.0.1:{agent.port}"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def client(address: str, certs: Pki, registry: CollectorRegistry) -> Iterator[SiteClient]:
    with SiteClient(
        address,
        certs.ca,
        certs.gateway.cert,
        certs.gateway.key,
        certs.site.fingerprint,
        site="riverside",
        metrics=SiteMetrics(registry),
        timeout=15.0,
        sleep=lambda _: None,
    ) as site_client:
        yield site_client


@contextmanager
def raw_stub(
    address: str, root: bytes, identity: Identity | None
) -> Iterator[site_pb2_grpc.SiteAgentStub]:
    """A bare stub: ``root`` trusted, ``identity`` as the client certificate (or none)."""
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=identity.key if identity else None,
        certificate_chain=identity.cert if identity else None,
    )
    with grpc.secure_channel(address, credentials) as channel:
        yield site_pb2_grpc.SiteAgentStub(channel)  # type: ignore[no-untyped-call]


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="session")
def py_config(
    certs: Pki, assets: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> SiteConfig:
    root = tmp_path_factory.mktemp("python-site")
    os.chmod(root, 0o755)
    people = root / "people.csv"
    people.write_text(
        "patient_id,district,age,los,diagnosis\n"
        + "".join(",".join(map(str, row)) + "\n" for row in PY_ROWS),
        encoding="utf-8",
    )
    document = agent_document(certs, assets, root / "cache")
    document["assets"]["people-csv"] = {"path": str(people)}
    document["limits"] = {
        "cpu_seconds": 5,
        "wall_seconds": 20.0,
        "output_bytes": 1 << 20,
        "file_size_bytes": 8 << 20,
    }
    document["pool_size"] = 0
    document["unsafe_enable_test_executor"] = False
    return parse_config(document, certs.root / "agent")


@pytest.fixture(scope="session")
def py_agent(py_config: SiteConfig) -> Iterator[AgentServer]:
    server = AgentServer(py_config)
    try:
        server.start()
        yield server
    finally:
        server.stop(grace=0.5)


@pytest.fixture
def site(py_agent: AgentServer, certs: Pki) -> Iterator[SiteClient]:
    with SiteClient(
        f"127.0.0.1:{py_agent.port}",
        certs.ca,
        certs.gateway.cert,
        certs.gateway.key,
        certs.site.fingerprint,
        site="riverside",
        timeout=60.0,
        sleep=lambda _: None,
    ) as client:
        yield client
