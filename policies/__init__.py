"""Blindgate policy engine: pure, I/O-free decisions on job descriptions.

Load a holder's policy with :func:`load_policy`, describe a job as an
:class:`EvaluationRequest` and call :func:`evaluate`; the :class:`Decision` lists every
reason (codes in :data:`REASONS`) and, when allowed, the parameters the runner applies.
"""

from policies.budget import (
    Charge,
    fits,
    jobs_that_fit,
    remaining,
    remaining_budget,
    remaining_epsilon,
    spent_in_period,
)
from policies.combine import EffectiveRules, combine
from policies.decision import Decision, EffectiveParameters, Reason
from policies.document import (
    AssetShape,
    load_policy,
    load_policy_for,
    parsed_policy,
    policy_schema,
)
from policies.errors import PolicyDocumentError, PolicyIssue
from policies.evaluator import evaluate
from policies.model import (
    AggregateFunction,
    Approval,
    ApprovalMode,
    Budget,
    ClipBounds,
    ColumnRule,
    Control,
    JobKind,
    JobRules,
    KeyDomain,
    Policy,
    PrivacyRules,
    Quorum,
    TimeWindow,
    Weekday,
)
from policies.reasons import REASONS, ReasonInfo
from policies.request import (
    AssetContext,
    AssetFacts,
    AssetStatus,
    ColumnTag,
    ColumnUsage,
    ColumnUse,
    EvaluationRequest,
    LicenceFacts,
    LicenceStatus,
    UsageCounters,
)

__all__ = [
    "REASONS",
    "AggregateFunction",
    "Approval",
    "ApprovalMode",
    "AssetContext",
    "AssetFacts",
    "AssetShape",
    "AssetStatus",
    "Budget",
    "Charge",
    "ClipBounds",
    "ColumnRule",
    "ColumnTag",
    "ColumnUsage",
    "ColumnUse",
    "Control",
    "Decision",
    "EffectiveParameters",
    "EffectiveRules",
    "EvaluationRequest",
    "JobKind",
    "JobRules",
    "KeyDomain",
    "LicenceFacts",
    "LicenceStatus",
    "Policy",
    "PolicyDocumentError",
    "PolicyIssue",
    "PrivacyRules",
    "Quorum",
    "Reason",
    "ReasonInfo",
    "TimeWindow",
    "UsageCounters",
    "Weekday",
    "combine",
    "evaluate",
    "fits",
    "jobs_that_fit",
    "load_policy",
    "load_policy_for",
    "parsed_policy",
    "policy_schema",
    "remaining",
    "remaining_budget",
    "remaining_epsilon",
    "spent_in_period",
]
