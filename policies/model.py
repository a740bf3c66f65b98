"""The parsed policy document: frozen models with the semantic rules a schema cannot express.

A :class:`Policy` is what a holder writes for one asset. It is normally built by
:func:`policies.document.load_policy` from YAML, but the models validate themselves,
so a policy built in code obeys the same rules as one loaded from a file.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Control = Literal["never", "join_key", "filter", "group_by", "aggregate", "plain"]
JobKind = Literal["sql_aggregate", "he_aggregate", "he_linear", "python"]
AggregateFunction = Literal["count", "sum", "avg", "variance", "stddev", "min", "max"]
ApprovalMode = Literal["auto", "manual", "quorum"]
OutputType = Literal["csv", "json", "txt", "md", "png"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

WEEKDAYS: Final[tuple[Weekday, ...]] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEMA_VERSION: Final = 1

#: Strictness order of approval modes: a higher rank is stricter.
APPROVAL_RANK: Final[Mapping[ApprovalMode, int]] = {"auto": 0, "manual": 1, "quorum": 2}

#: Controls under which a column may be aggregated, and so may carry clip bounds.
CLIPPABLE_CONTROLS: Final[frozenset[Control]] = frozenset({"aggregate", "plain"})
#: Controls under which a column may be a group key, and so may declare its key domain.
KEYED_CONTROLS: Final[frozenset[Control]] = frozenset({"group_by", "plain"})
#: Most keys one column's domain may declare.
MAX_DOMAIN_KEYS: Final = 10_000
KeyValue = str | int

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_CLOCK_START = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
_CLOCK_END = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"


class _Frozen(BaseModel):
    """Base for immutable models that reject unknown fields."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, revalidate_instances="always"
    )


class ClipBounds(_Frozen):
    """Bounds every aggregated value is clipped to before it is summed."""

    lower: float
    upper: float

    @model_validator(mode="after")
    def _ordered(self) -> ClipBounds:
        if not self.lower < self.upper:
            raise ValueError(f"lower ({self.lower}) must be less than upper ({self.upper})")
        return self


class KeyRange(_Frozen):
    """Integers from ``from_`` to ``to`` (both included) in steps of ``step``."""

    model_config = ConfigDict(populate_by_name=True)

    from_: int = Field(alias="from")
    to: int
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> KeyRange:
        if self.to < self.from_:
            raise ValueError(f"to ({self.to}) must not be less than from ({self.from_})")
        return self

    def enumerate(self) -> tuple[int, ...]:
        return tuple(range(self.from_, self.to + 1, self.step))


class KeyDates(_Frozen):
    """Dates from ``from_`` to ``to`` (both included), by day or by month (the firsts)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    by: Literal["day", "month"] = "day"

    @model_validator(mode="after")
    def _ordered(self) -> KeyDates:
        if self.to < self.from_:
            raise ValueError(f"to ({self.to}) must not be before from ({self.from_})")
        return self

    def enumerate(self) -> tuple[str, ...]:
        """ISO dates (``YYYY-MM-DD``); stops one past :data:`MAX_DOMAIN_KEYS`."""
        out: list[str] = []
        if self.by == "day":
            current = self.from_
            while current <= self.to and len(out) <= MAX_DOMAIN_KEYS:
                out.append(current.isoformat())
                current += timedelta(days=1)
            return tuple(out)
        year, month = self.from_.year, self.from_.month + (self.from_.day != 1)
        while len(out) <= MAX_DOMAIN_KEYS:
            if month == 13:
                year, month = year + 1, 1
            if (year, month) > (self.to.year, self.to.month):
                break
            out.append(date(year, month, 1).isoformat())
            month += 1
        return tuple(out)


class KeyDomain(_Frozen):
    """The public domain of a group key: every value a job may release as a key.

    Exactly one of ``values`` (an explicit list), ``range`` (integers) or ``dates`` (by
    day or month) is given.  A job that groups only by columns with a declared domain
    releases every declared key, empty ones included, and never a key outside it.
    """

    values: tuple[KeyValue, ...] | None = Field(default=None, min_length=1)
    range: KeyRange | None = None
    dates: KeyDates | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> KeyDomain:
        given = [name for name in ("values", "range", "dates") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a key domain is exactly one of: values, range, dates")
        if self.values is not None and len(set(self.values)) != len(self.values):
            raise ValueError("key values must be unique")
        if len(self.keys()) > MAX_DOMAIN_KEYS:
            raise ValueError(f"a key domain declares at most {MAX_DOMAIN_KEYS} keys")
        return self

    def keys(self) -> tuple[KeyValue, ...]:
        """Every declared key, in declaration order."""
        if self.values is not None:
            return self.values
        if self.range is not None:
            return self.range.enumerate()
        assert self.dates is not None
        return self.dates.enumerate()


class ColumnRule(_Frozen):
    """What an operator may do with one column."""

    control: Control
    clip: ClipBounds | None = None
    keys: KeyDomain | None = None
    description: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="after")
    def _clip_needs_aggregation(self) -> ColumnRule:
        if self.clip is not None and self.control not in CLIPPABLE_CONTROLS:
            raise ValueError(
                f"clip is only meaningful for control 'aggregate' or 'plain', not '{self.control}'"
            )
        if self.keys is not None and self.control not in KEYED_CONTROLS:
            raise ValueError(
                f"keys are only meaningful for control 'group_by' or 'plain', not '{self.control}'"
            )
        return self


class Quorum(_Frozen):
    """``required`` approvals out of ``of`` named approvers."""

    required: int = Field(ge=1, le=100)
    of: int = Field(ge=1, le=100)

    @model_validator(mode="after")
    def _reachable(self) -> Quorum:
        if self.required > self.of:
            raise ValueError(f"required ({self.required}) cannot exceed of ({self.of})")
        return self


class Approval(_Frozen):
    """How a job on the asset is approved; manual approval unless stated otherwise."""

    mode: ApprovalMode = "manual"
    quorum: Quorum | None = None
    expires_after_hours: int | None = Field(default=None, ge=1, le=8760)

    @model_validator(mode="after")
    def _quorum_iff_mode(self) -> Approval:
        if self.mode == "quorum" and self.quorum is None:
            raise ValueError("mode 'quorum' needs a quorum: {required, of}")
        if self.mode != "quorum" and self.quorum is not None:
            raise ValueError(f"quorum is only allowed with mode 'quorum', not '{self.mode}'")
        return self


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class TimeWindow(_Frozen):
    """A weekly window in a time zone; ``end`` at or before ``start`` runs past midnight.

    ``days`` name the day a window *starts* on, so ``fri 22:00-06:00`` covers Friday
    night into Saturday morning. ``end`` is exclusive; ``24:00`` means end of day.
    """

    days: tuple[Weekday, ...] = Field(default=WEEKDAYS, min_length=1)
    start: str = Field(pattern=_CLOCK_START)
    end: str = Field(pattern=_CLOCK_END)
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except Exception as exc:
            raise ValueError(f"unknown time zone '{value}'") from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("start and end must differ")
        return self

    def contains(self, now: datetime) -> bool:
        """Whether the aware instant ``now`` falls inside this window."""
        local = now.astimezone(zoneinfo.ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.start), _minutes(self.end)
        today = WEEKDAYS[local.weekday()]
        if start < end:
            return today in self.days and start <= minute < end
        yesterday = WEEKDAYS[(local - timedelta(days=1)).weekday()]
        return (today in self.days and minute >= start) or (yesterday in self.days and minute < end)


class JobRules(_Frozen):
    """Which jobs may run on the asset, and the bounds they run under."""

    kinds: tuple[JobKind, ...]
    aggregates: tuple[AggregateFunction, ...]
    purposes: tuple[str, ...]
    min_group_size: int = Field(default=10, ge=2)
    max_rows_per_unit: int = Field(default=1, ge=1)
    max_groups: int | None = Field(default=None, ge=1)
    approval: Approval = Approval()
    rate_limit_per_hour: int | None = Field(default=None, ge=1)
    time_windows: tuple[TimeWindow, ...] = ()


class PythonOutputs(_Frozen):
    """What a Python job may leave in its ``outputs/`` folder for review."""

    types: tuple[OutputType, ...] = Field(default=("csv", "json", "txt"), min_length=1)
    max_files: int = Field(default=10, ge=1, le=100)
    max_file_bytes: int = Field(default=1024 * 1024, ge=1, le=16 * 1024 * 1024)
    max_total_bytes: int = Field(default=4 * 1024 * 1024, ge=1, le=16 * 1024 * 1024)


class PythonLimits(_Frozen):
    """The sandbox limits of one Python job at one site (the site's own limits still cap
    them)."""

    wall_seconds: int = Field(default=120, ge=1, le=3600)
    cpu_seconds: int = Field(default=60, ge=1, le=3600)
    memory_bytes: int = Field(default=512 * 1024 * 1024, ge=64 * 1024 * 1024, le=16 * 1024**3)


class CodeFile(_Frozen):
    """One file of pre-approved code, as ``syft-bg`` lists it (``path`` is where syft-bg
    keeps its copy; Blindgate checks the hash)."""

    relative_path: str = Field(min_length=1, max_length=512)
    hash: str = Field(pattern=r"^(sha256:)?[0-9a-f]{64}$")
    path: str | None = Field(default=None, max_length=1024)

    @property
    def sha256(self) -> str:
        return self.hash.removeprefix("sha256:")


class AutoApproval(_Frozen):
    """A ``syft-bg`` auto-approval object: files whose content is fixed by hash, files
    whose name alone is fixed, and (optionally) the operators it applies to."""

    file_contents: tuple[CodeFile, ...] = ()
    file_paths: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()
    """Operator organisations this object approves code for (any, when empty)."""

    @model_validator(mode="after")
    def _not_empty(self) -> AutoApproval:
        if not self.file_contents:
            raise ValueError("an auto-approval object fixes at least one file by its hash")
        return self


class AutoApprovals(_Frozen):
    """``syft-bg``'s ``auto_approvals`` section, as a holder's existing allow-list."""

    enabled: bool = True
    objects: Mapping[str, AutoApproval] = Field(default_factory=dict)


class ApprovedCode(_Frozen):
    """Code the holder approved in advance: whole code hashes, or syft-bg objects."""

    code_hashes: tuple[str, ...] = ()
    auto_approvals: AutoApprovals = AutoApprovals()

    @field_validator("code_hashes")
    @classmethod
    def _hex(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            if not _SHA256_HEX.match(item.removeprefix("sha256:")):
                raise ValueError("a code hash is 64 lowercase hex digits")
        return tuple(item.removeprefix("sha256:") for item in value)


class PythonRules(_Frozen):
    """How Python jobs (syft-rds job folders) run on the asset.

    ``columns`` are the only columns a job's copy of the asset holds; ``release`` says
    whether outputs of pre-approved code are released after the automatic checks
    (``approved_code``) or always wait for the holder's review (``review``).
    """

    columns: tuple[str, ...] = Field(min_length=1, max_length=4096)
    outputs: PythonOutputs = PythonOutputs()
    limits: PythonLimits = PythonLimits()
    approved_code: ApprovedCode = ApprovedCode()
    release: Literal["review", "approved_code"] = "review"

    @field_validator("columns")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("python.columns must be unique")
        return value


class Budget(_Frozen):
    """The privacy budget of the asset over a rolling period."""

    epsilon: float = Field(gt=0)
    delta: float = Field(default=0.0, ge=0, lt=1)
    period_days: int = Field(ge=1, le=3660)


class PrivacyRules(_Frozen):
    """Differential-privacy limits: per job and per period.

    ``epsilon_per_job_min`` refuses jobs whose ε is too small to be released usefully
    (and keeps every noise scale finite); ``delta_per_job_max`` is the most δ one job may
    spend (0: group keys must be declared); ``max_noisy_quantities`` caps how many noisy
    quantities besides the count of people one job may ask for; ``threshold_share`` is
    the fixed part of a job's ε spent on the count of people that decides which groups
    are released, whatever else the job asks for.
    """

    epsilon_per_job_max: float = Field(gt=0)
    epsilon_per_job_min: float = Field(default=0.01, gt=0)
    delta_per_job_max: float = Field(default=0.0, ge=0, lt=1)
    max_noisy_quantities: int = Field(default=20, ge=1, le=1000)
    threshold_share: float = Field(default=0.5, ge=0.05, le=0.95)
    budget: Budget

    @model_validator(mode="after")
    def _job_fits_budget(self) -> PrivacyRules:
        if self.epsilon_per_job_max > self.budget.epsilon:
            raise ValueError(
                f"epsilon_per_job_max ({self.epsilon_per_job_max}) exceeds "
                f"budget.epsilon ({self.budget.epsilon})"
            )
        if self.epsilon_per_job_min > self.epsilon_per_job_max:
            raise ValueError(
                f"epsilon_per_job_min ({self.epsilon_per_job_min}) exceeds "
                f"epsilon_per_job_max ({self.epsilon_per_job_max})"
            )
        if self.delta_per_job_max > self.budget.delta:
            raise ValueError(
                f"delta_per_job_max ({self.delta_per_job_max}) exceeds "
                f"budget.delta ({self.budget.delta})"
            )
        return self


class Policy(_Frozen):
    """A holder's usage policy for one asset (schema version 1)."""

    version: Literal[1] = SCHEMA_VERSION
    asset: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    columns: Mapping[str, ColumnRule]
    jobs: JobRules
    privacy: PrivacyRules
    python: PythonRules | None = None
    """How Python jobs run on the asset (needed when ``jobs.kinds`` lists ``python``)."""

    @model_validator(mode="after")
    def _python_rules_when_allowed(self) -> Policy:
        if "python" in self.jobs.kinds and self.python is None:
            raise ValueError(
                "jobs.kinds lists python: the policy needs a python section naming the "
                "columns Python jobs may read"
            )
        return self

    @property
    def empty_rule_sets(self) -> tuple[str, ...]:
        """Clauses that leave nothing allowed; a policy with any of them denies every job."""
        empty: list[str] = []
        if not any(rule.control != "never" for rule in self.columns.values()):
            empty.append("columns")
        for name in ("kinds", "aggregates", "purposes"):
            if not getattr(self.jobs, name):
                empty.append(f"jobs.{name}")
        return tuple(empty)
