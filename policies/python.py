"""The rules of Python jobs: holder-reviewed code, never a differentially private release.

A Python job is a syft-rds job folder whose code runs in the sandbox on a copy of the
asset projected to the policy's ``python.columns``.  It spends no ε: arbitrary code can
make one person move every output, so no noise could bound what it reveals.  Instead
the job needs approval *by its code*: either the holder approved this job (a signed
approval over the job's digest, which covers the code hash), or the signed policy lists
the code in ``python.approved_code`` (whole code hashes, or ``syft-bg`` objects that fix
files by their SHA-256).  Whatever the approval, the outputs are held at the site for
the automatic checks and, unless the policy releases outputs of pre-approved code, the
holder's review.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from policies.model import Approval, AutoApproval, PythonLimits, PythonOutputs, PythonRules

if TYPE_CHECKING:
    from policies.reasons import Reasons

KIND = "python"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class PythonFacts(_Frozen):
    """What the decision needs of a Python job: its code, by hash and file by file."""

    code_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    files: Mapping[str, str]
    """``code/`` file path -> SHA-256 of its bytes."""
    operator_org_id: str = Field(min_length=1, max_length=200)


class PythonGrant(_Frozen):
    """What an allowed Python job may do on one asset."""

    columns: tuple[str, ...]
    outputs: PythonOutputs
    limits: PythonLimits
    pre_approved: bool
    """The signed policy approves this code in advance (no approval is asked for)."""
    release_without_review: bool
    """Outputs are released once the automatic checks pass (pre-approved code, and a
    policy with ``release: approved_code``)."""


def _matches(facts: PythonFacts, item: AutoApproval) -> bool:
    """``syft-bg``'s rule: the job's files are exactly the object's, and every file it
    fixes by content has that SHA-256 (full hashes only; no short prefixes)."""
    if item.peers and facts.operator_org_id not in item.peers:
        return False
    expected = {entry.relative_path for entry in item.file_contents} | set(item.file_paths)
    if set(facts.files) != expected:
        return False
    return all(facts.files.get(e.relative_path) == e.sha256 for e in item.file_contents)


def pre_approved(rules: PythonRules, facts: PythonFacts) -> bool:
    """Whether the holder's signed policy approves this code in advance."""
    approved = rules.approved_code
    if facts.code_hash in approved.code_hashes:
        return True
    objects = approved.auto_approvals
    return objects.enabled and any(_matches(facts, item) for item in objects.objects.values())


def check_python(
    out: Reasons, asset: str, rules: PythonRules | None, facts: PythonFacts | None
) -> None:
    """The rules a Python job must meet on ``asset`` (besides kind, purpose, licence)."""
    if rules is None:
        out.add(
            "python_rules_missing",
            "python",
            f"Asset '{asset}' has no python section: Python jobs cannot run on it.",
            asset=asset,
        )
    if facts is None:
        out.add(
            "missing_attribute",
            "request.python",
            "A Python job names its code hash and files.",
            asset=asset,
        )


def check_not_private(out: Reasons, asset: str, epsilon: float, delta: float) -> None:
    """A Python job asks for no ε or δ: it is reviewed, not noised."""
    if epsilon != 0 or delta != 0:
        out.add(
            "python_not_private",
            "request.epsilon",
            "Python jobs are reviewed by the holder, not differentially private: they spend "
            "no epsilon or delta.",
            asset=asset,
            fix="Submit the Python job with epsilon 0 and delta 0.",
        )


def grant(rules: PythonRules, facts: PythonFacts) -> PythonGrant:
    approved = pre_approved(rules, facts)
    return PythonGrant(
        columns=rules.columns,
        outputs=rules.outputs,
        limits=rules.limits,
        pre_approved=approved,
        release_without_review=approved and rules.release == "approved_code",
    )


def approval_for(rule: Approval, granted: PythonGrant) -> Approval:
    """A Python job's approval rule on one asset: none for pre-approved code, else at
    least one signed approval of this holder's, whatever the policy's mode."""
    if granted.pre_approved:
        return Approval(mode="auto")
    if rule.mode == "auto":
        return Approval(mode="manual", expires_after_hours=rule.expires_after_hours)
    return rule
