"""What the evaluator answers: a decision, every reason for it, and the job's parameters."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

from policies.model import Approval, ApprovalMode, ClipBounds, JobKind, KeyValue
from policies.python import PythonGrant


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Reason(_Frozen):
    """Why a job is denied, which rule or fact says so and how to fix it.

    ``clause`` locates the rule. A policy path such as ``columns.age.control`` or
    ``jobs.kinds`` names a clause of the policy of ``asset``; other clauses name the
    input: ``facts.status`` (facts of ``asset``), ``usage.epsilon_spent``,
    ``licences[L-7].valid_until`` (by licence id) and ``request.column_uses[2].function``
    (the job description). ``subject`` is the column, function, purpose or other
    construct involved, when there is one.
    """

    code: str
    clause: str
    message: str
    fix: str
    asset: str | None = None
    subject: str | None = None


class EffectiveParameters(_Frozen):
    """The bounds a runner must apply to an allowed job (most restrictive over its assets).

    ``clip`` maps asset id to column to bounds for every aggregated column that needs
    them; ``approvals`` gives each asset's own approval rule and ``approval_mode`` the
    strictest of them.
    """

    job_kind: JobKind
    epsilon: float = Field(ge=0)
    delta: float = Field(ge=0, lt=1)
    min_group_size: int = Field(ge=2)
    max_rows_per_unit: int = Field(ge=1)
    max_groups: int | None = Field(default=None, ge=1)
    clip: Mapping[str, Mapping[str, ClipBounds]]
    privacy_units: Mapping[str, str]
    approval_mode: ApprovalMode
    approvals: Mapping[str, Approval]
    approval_expires_after_hours: int | None = None
    key_domains: Mapping[str, tuple[KeyValue, ...]] = Field(default_factory=dict)
    """Declared keys of each group-key column (the intersection over the assets), when every
    group key is a declared column; empty otherwise."""
    keys_declared: bool = False
    """Whether every group key is a column with a declared domain (no keys: ``True``)."""
    threshold_share: float = Field(default=0.5, gt=0, lt=1)
    """Part of ε spent on the count of people that decides which groups are released."""
    max_noisy_quantities: int = Field(default=20, ge=1)
    python: Mapping[str, PythonGrant] = Field(default_factory=dict)
    """A Python job's grant on each asset: its columns, outputs, limits and whether its
    code is approved in advance."""


class Decision(_Frozen):
    """The outcome of :func:`policies.evaluate`.

    An allowing decision has no reasons and carries the parameters; a denying one has
    at least one reason and no parameters. ``policy_versions`` maps each asset id to
    the policy revision the decision was made under.
    """

    allow: bool
    reasons: tuple[Reason, ...] = ()
    policy_versions: Mapping[str, int] = Field(default_factory=dict)
    parameters: EffectiveParameters | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.allow and (self.reasons or self.parameters is None):
            raise ValueError("an allowing decision has parameters and no reasons")
        if not self.allow and (not self.reasons or self.parameters is not None):
            raise ValueError("a denying decision has reasons and no parameters")
        return self

    @property
    def codes(self) -> tuple[str, ...]:
        """The reason codes, in order, without repeats."""
        return tuple(dict.fromkeys(reason.code for reason in self.reasons))
