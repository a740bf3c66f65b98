"""The development PKI and the command line around the agent."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway import pki
from gateway.cli.main import cli
from gateway.siteclient.client import SiteClient
from tests.agent.conftest import Pki, agent_document

ROOT = Path(__file__).resolve().parents[2]


def test_issued_server_certificate(tmp_path: Path) -> None:
    pki.init_ca(tmp_path / "ca")
    fingerprint = pki.issue(
        tmp_path / "ca", "site-a", tmp_path / "out", kind="server", hosts=["10.0.0.5", "site-a.lan"]
    )
    pem = (tmp_path / "out" / "site-a.crt").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert fingerprint == hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    assert fingerprint == pki.fingerprint(pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.5")]
    assert names.get_values_for_type(x509.DNSName) == ["site-a.lan"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (tmp_path / "out" / "site-a.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600


def test_client_certificates_and_refusals(tmp_path: Path) -> None:
    pki.init_ca(tmp_path / "ca")
    pki.issue(tmp_path / "ca", "gateway", tmp_path, kind="client")
    cert = x509.load_pem_x509_certificate((tmp_path / "gateway.crt").read_bytes())
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    with pytest.raises(FileExistsError):
        pki.init_ca(tmp_path / "ca")
    with pytest.raises(ValueError, match="host"):
        pki.issue(tmp_path / "ca", "s", tmp_path, kind="server")
    with pytest.raises(ValueError, match="name"):
        pki.issue(tmp_path / "ca", "../evil", tmp_path, kind="client")


def test_cli_pki_init_and_issue(tmp_path: Path) -> None:
    runner = CliRunner()
    ca = tmp_path / "ca"
    result = runner.invoke(cli, ["pki", "init", "--dir", str(ca)])
    assert result.exit_code == 0, result.output
    args = ["pki", "issue", "site-b", "--ca-dir", str(ca), "--out-dir", str(tmp_path / "tls")]
    result = runner.invoke(cli, [*args, "--host", "127.0.0.1", "--host", "localhost"])
    assert result.exit_code == 0, result.output
    fingerprint = result.stdout.strip().splitlines()[-1]
    assert fingerprint == pki.fingerprint((tmp_path / "tls" / "site-b.crt").read_bytes())
    result = runner.invoke(cli, ["pki", "init", "--dir", str(ca)])
    assert result.exit_code != 0


def test_cli_site_serve_is_registered() -> None:
    result = CliRunner().invoke(cli, ["site", "serve", "--help"])
    assert result.exit_code == 0
    assert "--config" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_blindgate_site_serve_serves_until_sigterm(
    tmp_path: Path, certs: Pki, assets: dict[str, Path]
) -> None:
    doc = agent_document(certs, assets, tmp_path / "cache")
    port = _free_port()
    doc.update(listen=f"127.0.0.1:{port}", pool_size=0, unsafe_enable_test_executor=False)
    doc["tls"]["ca"] = str(certs.root / "ca" / "ca.crt")
    config = tmp_path / "site.yaml"
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "blindgate"), "site", "serve", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    client = SiteClient(
        f"127.0.0.1:{port}",
        certs.ca,
        certs.gateway.cert,
        certs.gateway.key,
        certs.site.fingerprint,
        attempts=1,
    )
    try:
        deadline = time.monotonic() + 20
        while not client.healthy(timeout=1):
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "the agent did not come up"
            time.sleep(0.1)
        assert client.health().executors == ("duckdb_sql", "python", "tenseal_he")
    finally:
        client.close()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
        if process.stderr:
            process.stderr.close()
    assert code == 0
