"""The site agent's gRPC server (service ``blindgate.v1.SiteAgent``) over mutual TLS.

Two checks guard every call.  The TLS layer (``require_client_auth=True``) admits
only clients whose certificate chains to the configured CA.  Then
:class:`FingerprintGuard`, a server interceptor wrapped around every method
handler, takes the peer certificate from ``context.auth_context()
['x509_pem_cert']``, computes the SHA-256 of its DER encoding and refuses the call
with ``UNAUTHENTICATED`` unless it equals one of the configured gateway
fingerprints, before the handler sees any request data.  So another client
certificate from the same CA is not enough.

The servicer is a thin shell over :class:`sandbox.agent.service.AgentService`, which
refuses to start without its holder's endorsement (:mod:`sandbox.agent.identity`) and keeps
the site's own log (:mod:`sandbox.agent.sitelog`).
"""

from __future__ import annotations

import hmac
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any, NoReturn, TypeVar

import grpc

from blindgate_proto.v1 import site_pb2, site_pb2_grpc
from sandbox import wire
from sandbox.agent.config import SiteConfig
from sandbox.agent.fragments import AgentRunner
from sandbox.agent.identity import certificate_fingerprint
from sandbox.agent.service import AgentError, AgentService, Busy, InvalidRequest
from sandbox.inputs import InputRejected
from sandbox.logs import install_safe_records

log = logging.getLogger(__name__)
R = TypeVar("R")

CONTROL_THREADS = 4
_SIGNAL_POLL_SECONDS = 0.2
"""The main thread waits in slices: a signal delivered to another thread only runs its
Python handler once the main thread is back in the interpreter loop."""
_REJECTED_STATUS = {
    InputRejected.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    InputRejected.STORE_FULL: grpc.StatusCode.RESOURCE_EXHAUSTED,
    InputRejected.BAD_DIGEST: grpc.StatusCode.INVALID_ARGUMENT,
    InputRejected.SIZE_MISMATCH: grpc.StatusCode.INVALID_ARGUMENT,
    InputRejected.DIGEST_MISMATCH: grpc.StatusCode.INVALID_ARGUMENT,
}


MAX_REQUEST_MESSAGE = 20 * 1024 * 1024
"""Largest request (an HE fragment carries encrypted weights in its program)."""


def peer_fingerprint(context: grpc.ServicerContext) -> str | None:
    """The fingerprint of the TLS peer's certificate, or ``None`` without exactly one."""
    auth: dict[str, Any] = dict(context.auth_context())
    if auth.get("transport_security_type") != [b"ssl"]:
        return None
    certificates = auth.get("x509_pem_cert")
    if not isinstance(certificates, list) or len(certificates) != 1:
        return None
    try:
        return certificate_fingerprint(certificates[0])
    except (ValueError, UnicodeDecodeError):
        return None


class FingerprintGuard(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses every call whose client certificate is not one of ``allowed``."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self._allowed = tuple(allowed)
        if not self._allowed:
            raise ValueError("at least one gateway fingerprint is required")

    def authorised(self, context: grpc.ServicerContext) -> bool:
        """Whether the peer presented an allowed certificate."""
        found = peer_fingerprint(context)
        if found is not None and any(hmac.compare_digest(found, ok) for ok in self._allowed):
            return True
        log.warning("refused a call from %s (certificate %s)", context.peer(), (found or "-")[:16])
        return False

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        return _guarded(handler, self.authorised)


def _guarded(
    handler: grpc.RpcMethodHandler,  # type: ignore[type-arg]
    check: Callable[[grpc.ServicerContext], bool],
) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
    def wrap(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Callable[..., Any]:
        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if not check(context):
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "client certificate not accepted")
            return behaviour(request, context)

        return guarded

    codecs = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), *codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary), *codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream), *codecs)
    assert handler.stream_stream is not None
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream), *codecs)


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # pragma: no cover


class SiteAgentServicer(site_pb2_grpc.SiteAgentServicer):
    """Maps each call onto the service; refusals become status codes without detail."""

    def __init__(self, service: AgentService, max_waiting: int) -> None:
        self.service = service
        self._waiting = threading.BoundedSemaphore(max_waiting)

    def Health(
        self, request: site_pb2.HealthRequest, context: grpc.ServicerContext
    ) -> site_pb2.HealthResponse:
        return self._call(context, lambda: wire.encode_health(self.service.health()))

    def RunFragment(
        self, request: site_pb2.RunFragmentRequest, context: grpc.ServicerContext
    ) -> site_pb2.RunFragmentResponse:
        def run() -> site_pb2.RunFragmentResponse:
            if not self._waiting.acquire(blocking=False):
                raise Busy("too many waiting calls")
            try:
                outcome = self.service.run(
                    wire.decode_request(request), context.time_remaining(), context.is_active
                )
            finally:
                self._waiting.release()
            return wire.encode_outcome(outcome)

        return self._call(context, run)

    def UploadInput(
        self, request_iterator: Iterator[site_pb2.UploadInputRequest], context: grpc.ServicerContext
    ) -> site_pb2.UploadInputResponse:
        def upload() -> site_pb2.UploadInputResponse:
            first = next(request_iterator, None)
            if first is None:
                raise InvalidRequest("empty upload")
            with self.service.upload(first.total_size, first.sha256) as pending:
                if not pending.already_present:
                    pending.write(first.chunk)
                    for message in request_iterator:
                        if (message.total_size, message.sha256) not in (
                            (0, ""),
                            (first.total_size, first.sha256),
                        ):
                            raise InvalidRequest("size and digest must not change mid-upload")
                        pending.write(message.chunk)
                stored = pending.commit()
            return site_pb2.UploadInputResponse(
                sha256=stored.sha256, size=stored.size, already_present=stored.already_present
            )

        return self._call(context, upload)

    def Cancel(
        self, request: site_pb2.CancelRequest, context: grpc.ServicerContext
    ) -> site_pb2.CancelResponse:
        def cancel() -> site_pb2.CancelResponse:
            outcome = self.service.cancel(request.fragment_id)
            return site_pb2.CancelResponse(outcome=wire.CANCEL_TO_PROTO[outcome])

        return self._call(context, cancel)

    def FetchOutputs(
        self, request: site_pb2.FetchOutputsRequest, context: grpc.ServicerContext
    ) -> site_pb2.FetchOutputsResponse:
        return self._call(
            context, lambda: wire.encode_held(self.service.fetch_outputs(request.fragment_id))
        )

    def Prove(
        self, request: site_pb2.ProveRequest, context: grpc.ServicerContext
    ) -> site_pb2.ProveResponse:
        return self._call(
            context, lambda: wire.encode_proof(self.service.prove(bytes(request.challenge)))
        )

    def _call(self, context: grpc.ServicerContext, action: Callable[[], R]) -> R:
        try:
            return action()
        except AgentError as exc:
            _abort(context, grpc.StatusCode[exc.status], str(exc))
        except InputRejected as exc:
            _abort(context, _REJECTED_STATUS[exc.reason], f"input refused: {exc.reason}")
        except Exception as exc:
            log.error("unhandled %s in a site agent call (message withheld)", type(exc).__name__)
            _abort(context, grpc.StatusCode.INTERNAL, "internal error")


def server_credentials(config: SiteConfig) -> grpc.ServerCredentials:
    """Mutual TLS: this agent's certificate; client certificates must chain to the CA."""
    tls = config.tls
    return grpc.ssl_server_credentials(
        [(tls.key.read_bytes(), tls.cert.read_bytes())],
        root_certificates=tls.ca.read_bytes(),
        require_client_auth=True,
    )


class AgentServer:
    """A site agent: the sandbox runner, the service and the gRPC server around them."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        credentials = server_credentials(config)
        self.runner = AgentRunner(config.runner_config())
        try:
            self.service = AgentService(config, self.runner)
        except BaseException:
            self.runner.close()
            raise
        capacity = config.max_concurrent_fragments + config.max_queued_fragments
        waiting = 2 * capacity
        threads = waiting + config.max_concurrent_uploads + CONTROL_THREADS
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="site-rpc"),
            interceptors=[FingerprintGuard(config.gateway_fingerprints)],
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_REQUEST_MESSAGE),
            ],
            maximum_concurrent_rpcs=threads,
        )
        site_pb2_grpc.add_SiteAgentServicer_to_server(  # type: ignore[no-untyped-call]
            SiteAgentServicer(self.service, waiting), self._server
        )
        self._credentials = credentials
        self.port = 0

    def start(self) -> int:
        """Pre-start sandboxes, listen and return the bound port."""
        self.service.warm()
        try:
            port = self._server.add_secure_port(self.config.listen, self._credentials)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self.config.listen}") from exc
        if not port:
            raise OSError(f"cannot listen on {self.config.listen}")
        self._server.start()
        self.port = port
        report = self.runner.isolation_report()
        log.info(
            "site agent listening on port %d (isolation %s via %s, %d assets)",
            port,
            report.level.value,
            report.backend,
            len(self.config.assets),
        )
        return port

    def stop(self, grace: float = 2.0) -> None:
        """Stop accepting calls, stop every fragment and the sandboxes."""
        self._server.stop(grace).wait()
        self.service.close()

    def wait(self) -> None:
        """Block until the server stops."""
        self._server.wait_for_termination()


def serve(config: SiteConfig) -> None:
    """Run an agent until SIGINT or SIGTERM."""
    install_safe_records()
    server = AgentServer(config)
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    try:
        server.start()
        while not stop.wait(_SIGNAL_POLL_SECONDS):
            pass
    finally:
        server.stop()
