"""What the gateway and a site agent exchange, independent of the transport.

The gRPC codec (:mod:`sandbox.agent.codec`) converts these to and from the
``blindgate.v1.SiteAgent`` messages; the gateway's client uses the same types.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sandbox.spec import FailureReason, ResultTable

CANCELLED = "cancelled"
"""The failure code of a fragment stopped by ``Cancel`` (besides :class:`FailureReason`)."""

FAILURE_CODES = (*(reason.value for reason in FailureReason), CANCELLED)


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
    """One fragment as the gateway sends it (see ``RunFragmentRequest`` in site.proto)."""

    fragment_id: str
    job_id: str
    asset_id: str
    executor: str
    program: str
    limits: RequestedLimits = field(default_factory=RequestedLimits)
    deadline_ms: int = 0
    input_sha256: str = ""
    pushdown_program: str = ""


@dataclass(frozen=True)
class FragmentOutcome:
    """A fragment's result: a table, or one failure code from :data:`FAILURE_CODES`."""

    fragment_id: str
    ok: bool
    table: ResultTable | None = None
    failure: str | None = None
    elapsed_ms: float = 0.0
    replayed: bool = False

    @classmethod
    def failed(cls, fragment_id: str, failure: str, elapsed_ms: float = 0.0) -> FragmentOutcome:
        """A failed outcome carrying only its code."""
        if failure not in FAILURE_CODES:
            raise ValueError(f"unknown failure code {failure!r}")
        return cls(fragment_id, ok=False, failure=failure, elapsed_ms=elapsed_ms)


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
class StoredInput:
    """An input stored content-addressed on the agent."""

    sha256: str
    size: int
    already_present: bool
