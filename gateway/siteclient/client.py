"""The gateway's client of a site agent (``blindgate.v1.SiteAgent``) over mutual TLS.

**Server identity.**  A site is registered with the SHA-256 fingerprint of its
certificate's DER encoding, and gRPC Python gives a client no access to the peer
certificate.  So the client pins in two steps before any call is made:

1. *Pre-flight*: one TLS handshake with Python's :mod:`ssl` (the same CA, the
   gateway's client certificate, hostname verification) fetches the certificate
   the agent presents; unless its fingerprint equals the registered one the
   client raises :class:`SiteIdentityMismatch` and never sends anything.
2. *Pinned channel*: the gRPC channel then trusts **only that certificate** as its
   root (``root_certificates=<the site's own certificate>``; gRPC's TLS stack
   accepts a trusted leaf as a chain of one).  Every handshake on the channel,
   including reconnects, therefore fails unless the server presents exactly the
   registered certificate: a server swapped in after the pre-flight, even one
   holding another certificate from the same CA, is refused by TLS itself.
   Hostname verification and the validity period still apply.

Calls have deadlines and are retried with exponential backoff and jitter on
``UNAVAILABLE`` and ``DEADLINE_EXCEEDED`` (and, except for uploads,
``RESOURCE_EXHAUSTED``); ``RunFragment`` retries carry the same ``fragment_id``,
so the agent returns the first run's outcome (or waits for it) instead of
running the fragment again.  Large inputs are streamed in chunks (1 MiB).
Per-site metrics go to the :class:`SiteMetrics` passed in (its own
``CollectorRegistry``, never the global one).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from blindgate_proto.v1 import site_pb2, site_pb2_grpc
from gateway.errors import BadRequest, BlindgateError, Conflict, Unavailable
from sandbox import wire
from sandbox.wire import (
    AgentProof,
    CancelOutcome,
    FragmentOutcome,
    FragmentRequest,
    HealthReport,
    HeldOutcome,
    StoredInput,
)

R = TypeVar("R")

CHUNK_BYTES = 1024 * 1024
MAX_RESULT_BYTES = 64 * 1024 * 1024
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
VIOLATIONS = {
    "sandbox_violation": "sandbox_violation",
    "memory": "memory",
    "output_too_large": "output_too_large",
    "fragment_sandbox_violation": "sandbox_violation",
    "fragment_memory": "memory",
    "fragment_output_too_large": "output_too_large",
    "combine_sandbox_violation": "sandbox_violation",
    "combine_memory": "memory",
    "combine_output_too_large": "output_too_large",
}
"""Failure codes that mean a sandbox contained a fragment (a forbidden system call or
namespace operation, the memory limit, the output cap), by the reason they are counted
under; timeouts and bad inputs are not violations."""


class SiteUnavailable(Unavailable):
    """The site agent could not be reached or refused the gateway (after retries)."""


class SiteIdentityMismatch(Unavailable):
    """The agent's certificate is not the one registered for the site."""


class SiteMetrics:
    """Per-site call metrics, registered into ``registry`` (one instance per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["site", "method"]
        self.calls = Counter(
            "blindgate_site_calls", "Calls to site agents (each attempt)", labels, registry=registry
        )
        self.failures = Counter(
            "blindgate_site_failures",
            "Failed calls to site agents and failed fragments, by reason",
            [*labels, "reason"],
            registry=registry,
        )
        self.retries = Counter(
            "blindgate_site_retries", "Retried calls to site agents", labels, registry=registry
        )
        self.latency = Histogram(
            "blindgate_site_call_seconds",
            "Latency of calls to site agents (each attempt)",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fragment_seconds = Histogram(
            "blindgate_fragment_seconds",
            "Time fragments spent in their site's sandbox, by site (answered fragments)",
            ["site"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.fragment_failures = Counter(
            "blindgate_fragment_failures",
            "Fragments that failed at their site, by site and reason",
            ["site", "reason"],
            registry=registry,
        )
        self.sandbox_violations = Counter(
            "blindgate_sandbox_violations",
            "Fragments a sandbox stopped (sandbox_violation, memory, output_too_large), by "
            "site ('gateway' for the gateway's own combining sandbox) and reason",
            ["site", "reason"],
            registry=registry,
        )
        self.certificate_expiry = Gauge(
            "blindgate_site_certificate_expiry_timestamp_seconds",
            "When the certificate the site agent presented expires (Unix time)",
            ["site"],
            registry=registry,
        )

    def violation(self, site: str, code: str | None) -> None:
        """Count ``code`` as a sandbox violation at ``site`` if it is one."""
        reason = VIOLATIONS.get(code or "")
        if reason is not None:
            self.sandbox_violations.labels(site, reason).inc()

    def fragment(self, site: str, outcome: FragmentOutcome) -> None:
        """Record one answered fragment: its time in the sandbox, or why it failed."""
        if outcome.ok:
            self.fragment_seconds.labels(site).observe(outcome.elapsed_ms / 1000)
            return
        self.fragment_failures.labels(site, outcome.failure or "unknown").inc()
        self.violation(site, outcome.failure)


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` as ``(host, port)``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"not a host:port address: {address!r}")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _normalise(value: str) -> str:
    return value.strip().lower().replace(":", "")


@contextlib.contextmanager
def _identity_file(cert_pem: bytes, key_pem: bytes) -> Iterator[str]:
    """The client certificate and key as an in-memory file path (never on disk)."""
    fd = os.memfd_create("blindgate-client-identity", os.MFD_CLOEXEC)
    try:
        os.write(fd, cert_pem.rstrip(b"\n") + b"\n" + key_pem)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def fetch_server_certificate(
    address: str,
    ca_pem: bytes,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    server_name: str | None = None,
    timeout: float = 5.0,
) -> bytes:
    """The DER certificate a TLS server presents, verified against ``ca_pem`` and its name."""
    host, port = split_address(address)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=ca_pem.decode("ascii"))
    with _identity_file(client_cert_pem, client_key_pem) as path:
        context.load_cert_chain(path)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name or host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the server presented no certificate")
    return der


class SiteClient:
    """A connection to one site agent; thread-safe, connects lazily, pins the agent."""

    def __init__(
        self,
        address: str,
        ca_pem: bytes,
        client_cert_pem: bytes,
        client_key_pem: bytes,
        expected_fingerprint: str,
        *,
        site: str | None = None,
        metrics: SiteMetrics | None = None,
        server_name: str | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.address = address
        self.site = site or address
        self._ca = ca_pem
        self._cert = client_cert_pem
        self._key = client_key_pem
        self._expected = _normalise(expected_fingerprint)
        self._metrics = metrics
        self._server_name = server_name
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - backoff jitter only
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: site_pb2_grpc.SiteAgentStub | None = None

    def __enter__(self) -> SiteClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel (a later call reconnects and pins again)."""
        with self._lock:
            channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            channel.close()

    def health(self, timeout: float | None = None) -> HealthReport:
        """The agent's version, isolation and assets."""
        response = self._call(
            "Health", lambda stub, t: stub.Health(site_pb2.HealthRequest(), timeout=t), timeout
        )
        return wire.decode_health(response)

    def healthy(self, timeout: float = 2.0) -> bool:
        """Whether the agent answers ``Health`` with its registered certificate."""
        try:
            self.health(timeout)
        except BlindgateError:
            return False
        return True

    def run_fragment(
        self, request: FragmentRequest, timeout: float | None = None
    ) -> FragmentOutcome:
        """Run one fragment (retries reuse its ``fragment_id``, so it runs at most once)."""
        message = wire.encode_request(request)
        response = self._call(
            "RunFragment",
            lambda stub, t: stub.RunFragment(message, timeout=t),
            timeout,
            retry_busy=True,
        )
        try:
            outcome = wire.decode_outcome(response)
        except wire.CodecError as exc:
            self._count_failure("RunFragment", "malformed_response")
            raise BlindgateError("malformed response from a site agent") from exc
        if not outcome.ok and self._metrics is not None:
            self._count_failure("RunFragment", outcome.failure or "unknown")
        if self._metrics is not None:
            self._metrics.fragment(self.site, outcome)
        return outcome

    def cancel(self, fragment_id: str, timeout: float | None = None) -> CancelOutcome:
        """Stop a fragment (or make sure it never runs)."""
        response = self._call(
            "Cancel",
            lambda stub, t: stub.Cancel(site_pb2.CancelRequest(fragment_id=fragment_id), timeout=t),
            timeout,
        )
        return wire.CANCEL_FROM_PROTO.get(response.outcome, CancelOutcome.ALREADY_FINISHED)

    def fetch_outputs(self, fragment_id: str, timeout: float | None = None) -> HeldOutcome:
        """What the site holds of a Python fragment's outputs (files once released)."""
        response = self._call(
            "FetchOutputs",
            lambda stub, t: stub.FetchOutputs(
                site_pb2.FetchOutputsRequest(fragment_id=fragment_id), timeout=t
            ),
            timeout,
        )
        return wire.decode_held(response)

    def prove(self, challenge: bytes, timeout: float | None = None) -> AgentProof:
        """The agent's identity, its holder's endorsement and its signature over
        ``challenge`` (checked by the caller, see :mod:`contracts.endorsement`)."""
        request = site_pb2.ProveRequest(challenge=challenge)
        response = self._call("Prove", lambda stub, t: stub.Prove(request, timeout=t), timeout)
        return wire.decode_proof(response)

    def upload_input(
        self,
        data: bytes | Path,
        chunk_bytes: int = CHUNK_BYTES,
        timeout: float | None = None,
        *,
        digest: str | None = None,
    ) -> StoredInput:
        """Stream an input to the agent in chunks; returns its digest (verified there).

        ``digest`` spares hashing a file whose SHA-256 the caller already knows (the agent
        checks it anyway, and answers after the first chunk if it has the input).
        """
        if isinstance(data, Path) and digest is not None:
            size = data.stat().st_size
        elif isinstance(data, Path):
            digest, size = _file_digest(data)
        else:
            digest, size = hashlib.sha256(data).hexdigest(), len(data)

        def messages() -> Iterator[site_pb2.UploadInputRequest]:
            header = site_pb2.UploadInputRequest(total_size=size, sha256=digest)
            for index, chunk in enumerate(_chunks(data, chunk_bytes)):
                if index == 0:
                    header.chunk = chunk
                    yield header
                else:
                    yield site_pb2.UploadInputRequest(chunk=chunk)
            if size == 0:
                yield header

        response = self._call(
            "UploadInput", lambda stub, t: stub.UploadInput(messages(), timeout=t), timeout
        )
        if response.sha256 != digest or response.size != size:
            raise BlindgateError("the site agent stored a different input")
        return StoredInput(response.sha256, response.size, response.already_present)

    def _connect(self) -> site_pb2_grpc.SiteAgentStub:
        with self._lock:
            if self._stub is not None:
                return self._stub
            try:
                der = fetch_server_certificate(
                    self.address, self._ca, self._cert, self._key, self._server_name
                )
            except (OSError, ValueError) as exc:
                raise _Unreachable from exc
            found = hashlib.sha256(der).hexdigest()
            if self._metrics is not None:
                expires = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
                self._metrics.certificate_expiry.labels(self.site).set(expires)
            if found != self._expected:
                self._count_failure("connect", "identity_mismatch")
                raise SiteIdentityMismatch(
                    f"site {self.site} presented certificate {found[:16]}…, "
                    f"not the registered {self._expected[:16]}…"
                )
            pinned = ssl.DER_cert_to_PEM_cert(der).encode("ascii")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=pinned, private_key=self._key, certificate_chain=self._cert
            )
            options: list[tuple[str, int | str]] = [
                ("grpc.max_receive_message_length", MAX_RESULT_BYTES),
                ("grpc.max_send_message_length", 20 * 1024 * 1024),
            ]
            if self._server_name:
                options.append(("grpc.ssl_target_name_override", self._server_name))
            self._channel = grpc.secure_channel(self.address, credentials, options=options)
            self._stub = site_pb2_grpc.SiteAgentStub(self._channel)  # type: ignore[no-untyped-call]
            return self._stub

    def _call(
        self,
        method: str,
        invoke: Callable[[site_pb2_grpc.SiteAgentStub, float], R],
        timeout: float | None,
        *,
        retry_busy: bool = False,
    ) -> R:
        per_attempt = timeout or self.timeout
        retryable = RETRYABLE | {grpc.StatusCode.RESOURCE_EXHAUSTED} if retry_busy else RETRYABLE
        for attempt in range(self.attempts):
            if attempt and self._metrics is not None:
                self._metrics.retries.labels(self.site, method).inc()
            begin = time.perf_counter()
            if self._metrics is not None:
                self._metrics.calls.labels(self.site, method).inc()
            try:
                result = invoke(self._connect(), per_attempt)
            except _Unreachable:
                code = grpc.StatusCode.UNAVAILABLE
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
                details = exc.details() if isinstance(exc, grpc.Call) else ""
                if code not in retryable:
                    self._observe(method, begin, code)
                    raise _error(method, code, details or "") from None
            else:
                self._observe(method, begin, None)
                return result
            self._observe(method, begin, code)
            if attempt + 1 < self.attempts:
                self._sleep(self._delay(attempt))
        raise SiteUnavailable(f"site {self.site} did not answer {method}")

    def _delay(self, attempt: int) -> float:
        return min(self._max_backoff, self._backoff * 2.0**attempt) * (0.5 + self._rng.random())

    def _observe(self, method: str, begin: float, code: grpc.StatusCode | None) -> None:
        if self._metrics is None:
            return
        self._metrics.latency.labels(self.site, method).observe(time.perf_counter() - begin)
        if code is not None:
            self._count_failure(method, code.name.lower())

    def _count_failure(self, method: str, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.failures.labels(self.site, method, reason).inc()


class _Unreachable(Exception):
    """The pre-flight handshake failed (network, TLS or certificate chain)."""


def _error(method: str, code: grpc.StatusCode, details: str) -> BlindgateError:
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return SiteUnavailable("the site agent refused the gateway's certificate")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return BadRequest(f"the site agent refused the {method} request")
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return SiteUnavailable(f"the site agent does not know {method} (an older version?)")
    if code == grpc.StatusCode.ALREADY_EXISTS:
        return Conflict("the fragment id was already used for a different fragment")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if details.endswith("too_large"):
            return BlindgateError(
                "the input is larger than the site accepts", code="body_too_large"
            )
        return SiteUnavailable("the site agent is busy or out of space")
    return BlindgateError(code="internal")


def _file_digest(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while block := handle.read(CHUNK_BYTES):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _chunks(data: bytes | Path, chunk_bytes: int) -> Iterator[bytes]:
    if isinstance(data, bytes):
        view = memoryview(data)
        for start in range(0, len(view), chunk_bytes):
            yield bytes(view[start : start + chunk_bytes])
        return
    with data.open("rb") as handle:
        while block := handle.read(chunk_bytes):
            yield block
