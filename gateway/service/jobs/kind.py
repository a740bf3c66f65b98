"""The job-kind interface: what one kind of job does differently, behind one pipeline.

Every job goes through the same steps, whatever its kind::

    draft ─▶ precheck ─▶ analyse ─▶ decide (policy engine) ─▶ plan      at submission,
                                                                       dry run and start
    site steps ─▶ fan-out to the sites ─▶ combine ─▶ charge + release   in the runner

:class:`~gateway.service.jobs.decide.JobDecider` and :class:`~gateway.service.jobs.runner.
JobRunner` own the shared steps (visibility, the policy decision, licences, approval, the
queue, fan-out and cancellation, the budget charge, the trace and the receipt); a
:class:`JobKind` owns only what differs: how a submission is stored, which column uses it
implies, what plan an allowed job runs, what each site computes and how the sites'
answers are combined into what is released.  A new kind is one module implementing this
protocol, registered once in :func:`gateway.service.jobs.kinds.registry`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from gateway.domain import Asset, Job
from policies import ColumnUsage, Decision, EffectiveParameters
from policies.jobs import AssetSchema
from sandbox.spec import ResultTable
from sandbox.wire import HeldOutcome

A = TypeVar("A")
P = TypeVar("P")
A_co = TypeVar("A_co", covariant=True)


class FailureCode(enum.StrEnum):
    """Why a job failed or was denied after submission: the ``error_code`` operators see."""

    POLICY_DENIED = "policy_denied"
    LICENCE_NOT_COVERING = "licence_not_covering"
    SITE_MISSING = "site_missing"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    APPROVAL_EXPIRED = "approval_expired"
    TIMEOUT = "timeout"
    TOO_MANY_GROUPS = "too_many_groups"
    RELEASE_REFUSED = "release_refused"
    BUDGET_EXHAUSTED = "budget_exhausted"
    KIND_UNAVAILABLE = "he_unavailable"
    INTERNAL = "internal"
    FRAGMENT_TIMEOUT = "fragment_timeout"
    FRAGMENT_MEMORY = "fragment_memory"
    FRAGMENT_SANDBOX_VIOLATION = "fragment_sandbox_violation"
    FRAGMENT_OUTPUT_TOO_LARGE = "fragment_output_too_large"
    FRAGMENT_BAD_INPUT = "fragment_bad_input"
    FRAGMENT_INTERNAL = "fragment_internal"
    FRAGMENT_CANCELLED = "fragment_cancelled"
    COMBINE_TIMEOUT = "combine_timeout"
    COMBINE_MEMORY = "combine_memory"
    COMBINE_SANDBOX_VIOLATION = "combine_sandbox_violation"
    COMBINE_OUTPUT_TOO_LARGE = "combine_output_too_large"
    COMBINE_BAD_INPUT = "combine_bad_input"
    COMBINE_INTERNAL = "combine_internal"
    SITE_REFUSED = "site_refused"
    POLICY_UNSIGNED = "policy_unsigned"
    REVIEW_REJECTED = "review_rejected"
    REVIEW_LOST = "review_lost"

    @property
    def charged(self) -> bool:
        """Whether the failure may depend on the data, so the job is charged as if it had
        been released: otherwise whether a job fails would leak what no release may."""
        return self in _CHARGED

    @classmethod
    def of_fragment(cls, reason: str | None) -> FailureCode:
        """The code of a site fragment that failed with ``reason`` (a sandbox code, or
        ``refused`` when the site refused the ticket)."""
        if reason == "refused":
            return cls.SITE_REFUSED
        return cls._prefixed("fragment", reason)

    @classmethod
    def of_combine(cls, reason: str | None) -> FailureCode:
        """The code of a combining step (in the gateway's sandbox) that failed."""
        return cls._prefixed("combine", reason)

    @classmethod
    def _prefixed(cls, prefix: str, reason: str | None) -> FailureCode:
        try:
            return cls(f"{prefix}_{reason or 'internal'}")
        except ValueError:
            return cls(f"{prefix}_internal")


_CHARGED = frozenset(
    {
        FailureCode.TOO_MANY_GROUPS,
        FailureCode.RELEASE_REFUSED,
        FailureCode.REVIEW_REJECTED,
        *(
            FailureCode(f"{step}_{reason}")
            for step in ("fragment", "combine")
            for reason in ("timeout", "memory", "sandbox_violation", "output_too_large", "internal")
        ),
    }
)


class JobFailed(Exception):
    """A job cannot finish; ``code`` is what its operator is told, ``reasons`` why."""

    def __init__(self, code: FailureCode, reasons: list[dict[str, Any]] | None = None) -> None:
        super().__init__(code.value)
        self.code = code
        self.reasons = reasons or []


class JobHeld(Exception):
    """The sites ran the job and hold its results for their holders' review; ``detail``
    is what the trace records of the run (hashes and states, never results)."""

    def __init__(self, detail: dict[str, Any]) -> None:
        super().__init__("held")
        self.detail = detail


Use = tuple[str, ColumnUsage, str | None]
"""A column use the policy engine decides on: (column, usage, aggregate function)."""


@dataclass(frozen=True, slots=True)
class Draft:
    """What a submission stores before any decision, and what the trace records of it."""

    kind: str
    sql: str
    spec: dict[str, Any] | None
    delta: float
    detail: dict[str, Any]
    """The trace entry's detail for a submission or dry run (never ciphertexts or rows)."""
    request: Any
    """What the trace digests as the request (ciphertexts replaced by their SHA-256)."""


@dataclass(frozen=True, slots=True)
class Analysed(Generic[A_co]):
    """An operator's job as the policy engine sees it, with the kind's own analysis.

    ``keys`` lists the columns each group key reads: a key that is one column with a
    declared domain is public; any other needs δ > 0.
    """

    uses: list[Use]
    analysis: A_co
    keys: list[tuple[str, ...]] = field(default_factory=list)
    code: dict[str, Any] | None = None
    """Submitted code as the policy engine decides on it (its hash and files), for kinds
    that run an operator's code."""


@dataclass(frozen=True, slots=True)
class SiteStep:
    """One fragment for the site holding ``asset``: what the kind adds to the ticket (inputs
    the job carries, by name), and an input the site must hold before it runs."""

    asset: Asset
    attachments: dict[str, str] = field(default_factory=dict)
    upload: Path | None = None
    input_sha256: str = ""


@dataclass(frozen=True, slots=True)
class SiteResult:
    """What one site answered for its fragment: its (already noised) table and how it
    released it."""

    step: SiteStep
    table: ResultTable
    elapsed_ms: float = 0.0
    release: str = ""


class JobKind(Protocol[A, P]):
    """One kind of job: everything the shared pipeline does not know about."""

    @property
    def name(self) -> str:
        """The kind's name, as policies and licences list it (``sql_aggregate`` …)."""
        ...

    def draft(self, body: Any) -> Draft:
        """What to store of a submission body (may store inputs it carries, by digest)."""
        ...

    def precheck(self, spec: dict[str, Any] | None) -> Decision | None:
        """A denial for reasons outside the policy (an unusable input …), else ``None``.

        Runs outside any store transaction: it may be slow.
        """
        ...

    def analyse(self, job: Job, schema: AssetSchema) -> Analysed[A] | Decision:
        """The column uses the job implies, or a denial if it cannot be analysed."""
        ...

    def plan(
        self, job: Job, analysis: A, schema: AssetSchema, params: EffectiveParameters
    ) -> P | Decision:
        """What an allowed job runs under ``params``, or a denial."""
        ...

    def site_steps(self, job: Job, plan: P, assets: list[Asset]) -> list[SiteStep]:
        """One fragment per asset, for the site that holds it (the runner wraps each in a
        ticket: the site derives the fragment itself from the job)."""
        ...

    def combine(self, job: Job, plan: P, results: list[SiteResult]) -> dict[str, Any]:
        """The released result from the sites' answers; raises :class:`JobFailed`, or
        :class:`JobHeld` when the sites hold the results for their holders' review."""
        ...

    def reviewed(self, job: Job, answers: list[tuple[Asset, HeldOutcome]]) -> dict[str, Any] | None:
        """A held job's result once every site's holder released it (``None`` while any
        still holds it); raises :class:`JobFailed` when one rejected it."""
        ...
