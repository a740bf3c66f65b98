"""The gateway-to-site wire types and their protobuf codec, imported by both sides.

The dataclasses are what the gateway and a site agent exchange, independent of the
transport; the ``encode_*``/``decode_*`` functions convert them to and from the
``blindgate.v1.SiteAgent`` messages (site.proto), so both sides agree on how results,
failure codes and limits are encoded.  No gRPC import here.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from blindgate_proto.v1 import site_pb2
from sandbox.spec import FailureReason, ResultTable, Scalar

CANCELLED = "cancelled"
"""The failure code of a fragment stopped by ``Cancel`` (besides :class:`FailureReason`)."""
REFUSED = "refused"
"""The failure code of a ticket the site refused (its reasons say why)."""

FAILURE_CODES = (*(reason.value for reason in FailureReason), CANCELLED, REFUSED)


@dataclass(frozen=True)
class RequestedLimits:
    """Limits asked for by the gateway; 0 means the site's default."""

    memory_bytes: int = 0
    cpu_seconds: int = 0
    wall_seconds: float = 0.0
    output_bytes: int = 0
    threads: int = 0


@dataclass(frozen=True)
class FragmentRequest:
    """One fragment as the gateway sends it (see ``RunFragmentRequest`` in site.proto):
    the ticket the site decides on, and how long it may take."""

    fragment_id: str
    ticket: bytes
    limits: RequestedLimits = field(default_factory=RequestedLimits)
    deadline_ms: int = 0
    input_sha256: str = ""


@dataclass(frozen=True)
class FragmentOutcome:
    """A fragment's result: a table, or one failure code from :data:`FAILURE_CODES`."""

    fragment_id: str
    ok: bool
    table: ResultTable | None = None
    failure: str | None = None
    elapsed_ms: float = 0.0
    replayed: bool = False
    release: str = ""
    """How the site released its partials (JSON), with a successful table."""
    reasons: tuple[str, ...] = ()
    """Why the site refused the ticket (codes), with failure ``refused``."""

    @classmethod
    def failed(
        cls,
        fragment_id: str,
        failure: str,
        elapsed_ms: float = 0.0,
        reasons: tuple[str, ...] = (),
    ) -> FragmentOutcome:
        """A failed outcome carrying only its code (and, when refused, reason codes)."""
        if failure not in FAILURE_CODES:
            raise ValueError(f"unknown failure code {failure!r}")
        return cls(fragment_id, ok=False, failure=failure, elapsed_ms=elapsed_ms, reasons=reasons)


class CancelOutcome(enum.StrEnum):
    """What ``Cancel`` did."""

    STOPPED = "stopped"
    NOT_STARTED = "not_started"
    ALREADY_FINISHED = "already_finished"


@dataclass(frozen=True)
class AssetStatus:
    """One asset as ``Health`` reports it."""

    id: str
    kind: str
    format: str
    ready: bool


@dataclass(frozen=True)
class HealthReport:
    """The agent's version, isolation and assets."""

    agent_version: str
    isolation_level: str
    isolation_backend: str
    layers: dict[str, bool]
    assets: tuple[AssetStatus, ...]
    executors: tuple[str, ...]


@dataclass(frozen=True)
class AgentProof:
    """An agent's answer to ``Prove``: its key, its holder's endorsement, its signature."""

    agent_public_key: str
    endorsement: bytes
    signature: bytes
    tls_fingerprint: str


@dataclass(frozen=True)
class StoredInput:
    """An input stored content-addressed on the agent."""

    sha256: str
    size: int
    already_present: bool


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

FAILURE_TO_PROTO: dict[str, site_pb2.FailureReason] = {
    FailureReason.TIMEOUT.value: site_pb2.FAILURE_REASON_TIMEOUT,
    FailureReason.MEMORY.value: site_pb2.FAILURE_REASON_MEMORY,
    FailureReason.SANDBOX_VIOLATION.value: site_pb2.FAILURE_REASON_SANDBOX_VIOLATION,
    FailureReason.OUTPUT_TOO_LARGE.value: site_pb2.FAILURE_REASON_OUTPUT_TOO_LARGE,
    FailureReason.BAD_INPUT.value: site_pb2.FAILURE_REASON_BAD_INPUT,
    FailureReason.INTERNAL.value: site_pb2.FAILURE_REASON_INTERNAL,
    CANCELLED: site_pb2.FAILURE_REASON_CANCELLED,
    REFUSED: site_pb2.FAILURE_REASON_REFUSED,
}
FAILURE_FROM_PROTO = {number: code for code, number in FAILURE_TO_PROTO.items()}

CANCEL_TO_PROTO: dict[CancelOutcome, site_pb2.CancelOutcome] = {
    CancelOutcome.STOPPED: site_pb2.CANCEL_OUTCOME_STOPPED,
    CancelOutcome.NOT_STARTED: site_pb2.CANCEL_OUTCOME_NOT_STARTED,
    CancelOutcome.ALREADY_FINISHED: site_pb2.CANCEL_OUTCOME_ALREADY_FINISHED,
}
CANCEL_FROM_PROTO = {number: outcome for outcome, number in CANCEL_TO_PROTO.items()}


class CodecError(ValueError):
    """A message that cannot be converted (malformed on the wire)."""


def encode_value(value: Scalar) -> site_pb2.Value:
    """One result cell as a typed value."""
    if value is None:
        return site_pb2.Value(null_value=True)
    if isinstance(value, bool):
        return site_pb2.Value(bool_value=value)
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return site_pb2.Value(int_value=value)
        return site_pb2.Value(big_int_value=str(value))
    if isinstance(value, float):
        return site_pb2.Value(double_value=value)
    return site_pb2.Value(string_value=value)


def decode_value(value: site_pb2.Value) -> Scalar:
    """The scalar a typed value holds."""
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        if not math.isfinite(value.double_value):
            raise CodecError("non-finite number in a result")
        return value.double_value
    if kind == "string_value":
        return value.string_value
    if kind == "big_int_value":
        try:
            return int(value.big_int_value)
        except ValueError as exc:
            raise CodecError("malformed big integer") from exc
    return None


def encode_outcome(outcome: FragmentOutcome) -> site_pb2.RunFragmentResponse:
    """A fragment's outcome as a response message."""
    response = site_pb2.RunFragmentResponse(
        fragment_id=outcome.fragment_id,
        ok=outcome.ok,
        elapsed_ms=outcome.elapsed_ms,
        replayed=outcome.replayed,
        release=outcome.release,
    )
    response.reasons.extend(outcome.reasons)
    if outcome.ok and outcome.table is not None:
        response.columns.extend(outcome.table.columns)
        response.types.extend(outcome.table.types)
        for row in outcome.table.rows:
            response.rows.add().values.extend(encode_value(cell) for cell in row)
    else:
        response.failure = FAILURE_TO_PROTO[outcome.failure or FailureReason.INTERNAL.value]
    return response


def decode_outcome(response: site_pb2.RunFragmentResponse) -> FragmentOutcome:
    """A response message as a fragment outcome (validated)."""
    if not response.ok:
        failure = FAILURE_FROM_PROTO.get(response.failure)
        if failure is None:
            raise CodecError("failed fragment without a known reason")
        return FragmentOutcome(
            response.fragment_id,
            ok=False,
            failure=failure,
            elapsed_ms=response.elapsed_ms,
            replayed=response.replayed,
            reasons=tuple(str(r)[:100] for r in response.reasons[:32]),
        )
    columns = tuple(response.columns)
    if len(response.types) != len(columns):
        raise CodecError("types and columns differ in length")
    rows: list[tuple[Scalar, ...]] = []
    for row in response.rows:
        if len(row.values) != len(columns):
            raise CodecError("a row is not as long as the columns")
        rows.append(tuple(decode_value(cell) for cell in row.values))
    table = ResultTable(columns=columns, types=tuple(response.types), rows=tuple(rows))
    return FragmentOutcome(
        response.fragment_id,
        ok=True,
        table=table,
        elapsed_ms=response.elapsed_ms,
        replayed=response.replayed,
        release=response.release,
    )


def encode_request(request: FragmentRequest) -> site_pb2.RunFragmentRequest:
    """A fragment as a request message."""
    limits = request.limits
    return site_pb2.RunFragmentRequest(
        fragment_id=request.fragment_id,
        ticket=request.ticket,
        limits=site_pb2.Limits(
            memory_bytes=limits.memory_bytes,
            cpu_seconds=limits.cpu_seconds,
            wall_seconds=limits.wall_seconds,
            output_bytes=limits.output_bytes,
            threads=limits.threads,
        ),
        deadline_ms=request.deadline_ms,
        input_sha256=request.input_sha256,
    )


def decode_request(message: site_pb2.RunFragmentRequest) -> FragmentRequest:
    """A request message as a fragment request (the ticket is checked by the service)."""
    limits = message.limits
    return FragmentRequest(
        fragment_id=message.fragment_id,
        ticket=bytes(message.ticket),
        limits=RequestedLimits(
            memory_bytes=limits.memory_bytes,
            cpu_seconds=limits.cpu_seconds,
            wall_seconds=limits.wall_seconds,
            output_bytes=limits.output_bytes,
            threads=limits.threads,
        ),
        deadline_ms=message.deadline_ms,
        input_sha256=message.input_sha256,
    )


def encode_health(report: HealthReport) -> site_pb2.HealthResponse:
    """The health report as a response message."""
    response = site_pb2.HealthResponse(
        agent_version=report.agent_version,
        isolation_level=report.isolation_level,
        isolation_backend=report.isolation_backend,
        executors=list(report.executors),
    )
    response.layers.update(report.layers)
    for asset in report.assets:
        response.assets.add(id=asset.id, kind=asset.kind, format=asset.format, ready=asset.ready)
    return response


def decode_health(response: site_pb2.HealthResponse) -> HealthReport:
    """A health response as a report."""
    assets: Sequence[site_pb2.AssetInfo] = response.assets
    return HealthReport(
        agent_version=response.agent_version,
        isolation_level=response.isolation_level,
        isolation_backend=response.isolation_backend,
        layers=dict(response.layers),
        assets=tuple(AssetStatus(a.id, a.kind, a.format, a.ready) for a in assets),
        executors=tuple(response.executors),
    )


@dataclass(frozen=True)
class HeldFile:
    """One file a Python job left at a site (``content`` only once released)."""

    kind: str
    path: str
    size: int
    sha256: str
    content: bytes = b""


@dataclass(frozen=True)
class HeldOutcome:
    """What a site says of a Python fragment's outputs (see ``FetchOutputs``)."""

    fragment_id: str
    state: str
    """``held``, ``released``, ``rejected`` or ``unknown``."""
    reason: str = ""
    reviewer: str = ""
    review_statement: str = ""
    review_signature: str = ""
    outputs_sha256: str = ""
    detail: str = ""
    files: tuple[HeldFile, ...] = ()


def encode_held(outcome: HeldOutcome) -> site_pb2.FetchOutputsResponse:
    return site_pb2.FetchOutputsResponse(
        fragment_id=outcome.fragment_id,
        state=outcome.state,
        reason=outcome.reason,
        reviewer=outcome.reviewer,
        review_statement=outcome.review_statement,
        review_signature=outcome.review_signature,
        outputs_sha256=outcome.outputs_sha256,
        detail=outcome.detail,
        files=[
            site_pb2.OutputFile(
                kind=f.kind, path=f.path, size=f.size, sha256=f.sha256, content=f.content
            )
            for f in outcome.files
        ],
    )


def decode_held(response: site_pb2.FetchOutputsResponse) -> HeldOutcome:
    return HeldOutcome(
        fragment_id=response.fragment_id,
        state=response.state,
        reason=response.reason,
        reviewer=response.reviewer,
        review_statement=response.review_statement,
        review_signature=response.review_signature,
        outputs_sha256=response.outputs_sha256,
        detail=response.detail,
        files=tuple(
            HeldFile(f.kind, f.path, int(f.size), f.sha256, bytes(f.content))
            for f in response.files
        ),
    )


def encode_proof(proof: AgentProof) -> site_pb2.ProveResponse:
    """An agent's proof as a response message."""
    return site_pb2.ProveResponse(
        agent_public_key=proof.agent_public_key,
        endorsement=proof.endorsement,
        signature=proof.signature,
        tls_fingerprint=proof.tls_fingerprint,
    )


def decode_proof(response: site_pb2.ProveResponse) -> AgentProof:
    """A ``Prove`` response as a proof (its signatures are checked by the gateway)."""
    return AgentProof(
        agent_public_key=response.agent_public_key,
        endorsement=bytes(response.endorsement),
        signature=bytes(response.signature),
        tls_fingerprint=response.tls_fingerprint,
    )
