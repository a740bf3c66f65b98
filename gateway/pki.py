"""A development PKI for gateway <-> site agent mutual TLS.

``init_ca(dir)`` creates a CA (``ca.key``, ``ca.crt``); ``issue(ca_dir, name,
out_dir, kind, hosts)`` creates ``<name>.key`` and ``<name>.crt`` signed by it:
``server`` certificates (site agents) carry the ``hosts`` as DNS/IP subject
alternative names and the serverAuth usage, ``client`` certificates (the gateway)
the clientAuth usage.  Both return the certificate's SHA-256 DER fingerprint,
which is what a site is registered with (``tls_fingerprint``) and what an agent
allows (``gateway_fingerprints``).  Keys are ECDSA P-256, written with mode 0600.

For production, issue certificates from the organisation's own CA; nothing here
depends on this module having made them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.clock import Clock, SystemClock

Kind = Literal["server", "client"]
CA_KEY = "ca.key"
CA_CERT = "ca.crt"
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 (lowercase hex) of a PEM certificate's DER encoding."""
    return x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256()).hex()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def _usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing,
        crl_sign=signing,
        encipher_only=False,
        decipher_only=False,
    )


def init_ca(
    directory: Path,
    name: str = "Blindgate development CA",
    days: int = 365,
    clock: Clock | None = None,
) -> str:
    """Create ``ca.key`` and ``ca.crt`` in ``directory``; return the CA's fingerprint.

    Refuses to overwrite an existing CA.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    if key_path.exists() or cert_path.exists():
        raise FileExistsError(f"a CA already exists in {directory}")
    now = (clock or SystemClock()).now()
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.fingerprint(hashes.SHA256()).hex()


def _alt_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue(
    ca_dir: Path,
    name: str,
    out_dir: Path,
    kind: Kind = "server",
    hosts: Sequence[str] = (),
    days: int = 90,
    clock: Clock | None = None,
) -> str:
    """Issue ``<name>.key`` and ``<name>.crt`` in ``out_dir``; return the fingerprint.

    A server certificate needs at least one host (DNS name or IP address) that
    clients will connect to.
    """
    if not _FILE_NAME.match(name):
        raise ValueError("name must be 1-64 of [A-Za-z0-9._-], starting with a letter or digit")
    if kind not in ("server", "client"):
        raise ValueError("kind must be 'server' or 'client'")
    if kind == "server" and not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    ca_key = serialization.load_pem_private_key((ca_dir / CA_KEY).read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key must be an EC key")
    ca_cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
    now = (clock or SystemClock()).now()
    not_after = min(now + timedelta(days=days), ca_cert.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    purpose = (
        ExtendedKeyUsageOID.SERVER_AUTH if kind == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signing=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_alt_names(hosts)), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_key(out_dir / f"{name}.key", key)
    (out_dir / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert.fingerprint(hashes.SHA256()).hex()
