"""The gateway's gRPC API (see proto/blindgate/v1/gateway.proto)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import json_format, struct_pb2
from pydantic import ValidationError

from blindgate_proto.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.domain import Actor, AssetStatus
from gateway.errors import BlindgateError, ValidationFailed, as_public
from gateway.service import Services
from gateway.service.catalogue.schemas import AssetCard
from gateway.service.core.context import page_request
from gateway.service.jobs.schemas import JobSubmitIn

log = logging.getLogger("blindgate.grpc")
R = TypeVar("R")


def _abort(context: grpc.ServicerContext, error: BlindgateError) -> NoReturn:
    message = f"{error.code}: {error.detail or error.spec.message}"
    context.abort(grpc.StatusCode[error.spec.grpc_status], message)
    raise AssertionError("unreachable")  # pragma: no cover


def _peer_host(peer: str | None) -> str | None:
    """The address in a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``)."""
    if not peer:
        return None
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return kind


def _card(card: AssetCard) -> gateway_pb2.AssetCard:
    struct = struct_pb2.Struct()
    json_format.ParseDict(card.model_dump(mode="json"), struct)
    return gateway_pb2.AssetCard(id=card.id, card=struct)


def _struct(model: Any) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    json_format.ParseDict(model.model_dump(mode="json"), struct)
    return struct


class JobsServicer:
    """The job methods of the gateway service (mixed into :class:`GatewayServicer`)."""

    services: Services

    def _call(self, context: grpc.ServicerContext, fn: Callable[[Actor], R]) -> R:
        raise NotImplementedError

    def SubmitJob(
        self, request: gateway_pb2.SubmitJobRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.Job:
        def run(actor: Actor) -> gateway_pb2.Job:
            try:
                body = JobSubmitIn(
                    sql=request.sql,
                    assets=list(request.assets),
                    epsilon=request.epsilon,
                    delta=request.delta,
                    purpose=request.purpose,
                    licence_ids=list(request.licence_ids) or None,
                    idempotency_key=request.idempotency_key or None,
                )
            except ValidationError as exc:
                where = ".".join(str(p) for p in exc.errors()[0].get("loc", ()))
                raise ValidationFailed(f"invalid field '{where}'") from None
            job = self.services.jobs.submit(actor, body)
            return gateway_pb2.Job(id=job.id, state=job.state, job=_struct(job))

        return self._call(context, run)

    def GetJob(
        self, request: gateway_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.Job:
        def run(actor: Actor) -> gateway_pb2.Job:
            job = self.services.jobs.get(actor, request.job_id)
            return gateway_pb2.Job(id=job.id, state=job.state, job=_struct(job))

        return self._call(context, run)

    def GetJobResult(
        self, request: gateway_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.JobResult:
        def run(actor: Actor) -> gateway_pb2.JobResult:
            result = self.services.jobs.result(actor, request.job_id)
            return gateway_pb2.JobResult(job_id=result.job_id, result=_struct(result))

        return self._call(context, run)


class GatewayServicer(JobsServicer, gateway_pb2_grpc.GatewayServicer):
    """Each method authenticates, calls one use case and maps errors through the catalogue."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def _call(self, context: grpc.ServicerContext, fn: Callable[[Actor], R]) -> R:
        try:
            header = None
            for key, value in context.invocation_metadata():
                if key == "authorization" and isinstance(value, str):
                    header = value
            actor = self.services.identities.authenticate(header, _peer_host(context.peer()))
            return fn(actor)
        except BlindgateError as exc:
            _abort(context, exc)
        except Exception as exc:
            log.error("unhandled %s in gRPC call (message withheld)", type(exc).__name__)
            _abort(context, as_public(exc))

    def WhoAmI(
        self, request: gateway_pb2.WhoAmIRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.WhoAmIResponse:
        def run(actor: Actor) -> gateway_pb2.WhoAmIResponse:
            me = self.services.identities.whoami(actor)
            return gateway_pb2.WhoAmIResponse(
                principal_id=me.principal.id,
                principal_name=me.principal.name,
                role=str(me.principal.role),
                org_id=me.organisation.id,
                org_name=me.organisation.name,
            )

        return self._call(context, run)

    def ListAssets(
        self, request: gateway_pb2.ListAssetsRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.ListAssetsResponse:
        def run(actor: Actor) -> gateway_pb2.ListAssetsResponse:
            page = page_request(
                self.services.ctx.settings, request.limit or None, request.cursor or None
            )
            try:
                status = AssetStatus(request.status) if request.status else None
            except ValueError:
                raise ValidationFailed("status must be active, frozen or disposed") from None
            result = self.services.assets.list(actor, page, status)
            return gateway_pb2.ListAssetsResponse(
                items=[_card(c) for c in result.items], next_cursor=result.next_cursor or ""
            )

        return self._call(context, run)

    def GetAsset(
        self, request: gateway_pb2.GetAssetRequest, context: grpc.ServicerContext
    ) -> gateway_pb2.AssetCard:
        return self._call(
            context, lambda actor: _card(self.services.assets.get(actor, request.asset_id))
        )


def _unusable(message: Any) -> bool:
    """Whether a request message holds a NUL character in any string, at any depth."""
    for _field, value in message.ListFields():
        repeated = not isinstance(value, str | bytes) and not hasattr(value, "ListFields")
        values = value if repeated and hasattr(value, "__iter__") else [value]
        for item in values:
            if isinstance(item, str) and "\x00" in item:
                return True
            if hasattr(item, "ListFields") and _unusable(item):
                return True
    return False


class TextGuard(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Refuses, before any use case runs, a request whose text no store can keep."""

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            if _unusable(request):
                error = ValidationFailed("text must not contain NUL characters")
                _abort(context, error)
            return inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def start_grpc(
    services: Services, *, address: str | None = None, workers: int = 16
) -> tuple[Any, int]:
    """Start the gRPC server; return it and the bound port (``address`` may use port 0)."""
    settings = services.ctx.settings
    bind = address or f"{settings.host}:{settings.grpc_port}"
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", settings.max_body_bytes)],
        interceptors=[TextGuard()],
    )
    gateway_pb2_grpc.add_GatewayServicer_to_server(  # type: ignore[no-untyped-call]
        GatewayServicer(services), server
    )
    if settings.grpc_tls_cert and settings.grpc_tls_key:
        credentials = grpc.ssl_server_credentials(
            [(settings.grpc_tls_key.read_bytes(), settings.grpc_tls_cert.read_bytes())]
        )
        port = server.add_secure_port(bind, credentials)
    else:
        port = server.add_insecure_port(bind)
    if port == 0:
        raise OSError(f"cannot bind gRPC to {bind}")
    server.start()
    log.info("gRPC API on %s", bind.rsplit(":", 1)[0] + f":{port}")
    return server, port
