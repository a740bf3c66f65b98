"""Pure checks: output validation, classification, filter and cgroup plumbing."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from sandbox import landlock
from sandbox.cgroups import CgroupManager
from sandbox.launcher import LAUNCH_FAILED
from sandbox.plans import asset_format, asset_inside_bwrap
from sandbox.process import RawOutcome
from sandbox.runner import classify
from sandbox.seccomp_filter import build_filter_bpf
from sandbox.spec import (
    FailureReason,
    Limits,
    OutputValidationError,
    ResultTable,
    parse_output,
    table_from_document,
)

LIMITS = Limits(cpu_seconds=2)


def _doc(raw: str) -> ResultTable | tuple[FailureReason, str]:
    return table_from_document(parse_output(raw.encode()))


def test_valid_table() -> None:
    table = _doc('{"ok": true, "columns": ["a", "b"], "types": ["INT", "T"], "rows": [[1, "x"]]}')
    assert table == ResultTable(("a", "b"), ("INT", "T"), ((1, "x"),))


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2]",
        '{"ok": true, "columns": ["a"], "types": ["T"], "rows": [[1, 2]]}',
        '{"ok": true, "columns": ["a"], "types": ["T"], "rows": [[[1]]]}',
        '{"ok": true, "columns": ["a"], "types": ["T"], "rows": [[{"k": 1}]]}',
        '{"ok": true, "columns": ["a"], "types": ["T"], "rows": [[NaN]]}',
        '{"ok": true, "columns": [1], "types": ["T"], "rows": []}',
        '{"ok": true, "columns": ["a"], "types": [], "rows": []}',
        '{"ok": true, "columns": ["a"], "types": ["T"], "rows": [], "extra": 1}',
        '{"ok": false, "reason": "exfiltrated", "kind": "X"}',
        '{"ok": false, "reason": "memory"}',
    ],
)
def test_invalid_documents(raw: str) -> None:
    with pytest.raises(OutputValidationError):
        _doc(raw)


def test_failure_document() -> None:
    assert _doc('{"ok": false, "reason": "bad_input", "kind": "BinderException"}') == (
        FailureReason.BAD_INPUT,
        "BinderException",
    )


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (RawOutcome(too_large=True, timed_out=True), FailureReason.OUTPUT_TOO_LARGE),
        (RawOutcome(timed_out=True, signal=9), FailureReason.TIMEOUT),
        (RawOutcome(signal=9, oom_killed=True), FailureReason.MEMORY),
        (RawOutcome(signal=signal.SIGXCPU), FailureReason.TIMEOUT),
        (RawOutcome(signal=9, cpu_seconds=3.0), FailureReason.TIMEOUT),
        (RawOutcome(signal=9, cpu_seconds=0.1), FailureReason.INTERNAL),
        (RawOutcome(signal=signal.SIGSYS), FailureReason.SANDBOX_VIOLATION),
        (RawOutcome(exit_code=LAUNCH_FAILED), FailureReason.INTERNAL),
        (RawOutcome(exit_code=0, stdout=b"garbage"), FailureReason.INTERNAL),
    ],
)
def test_classify(outcome: RawOutcome, expected: FailureReason) -> None:
    assert classify(outcome, LIMITS)[0] is expected


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="memory"):
        Limits(memory_bytes=1024)
    with pytest.raises(ValueError, match="threads"):
        Limits(threads=0)


def test_asset_formats() -> None:
    assert asset_format(Path("a.CSV")) == "csv"
    assert asset_format(Path("a.csv.gz")) == "csv"
    assert asset_format(Path("a.parquet")) == "parquet"
    assert asset_format(Path("a.json")) is None
    assert asset_format(Path("a.tar.gz")) is None
    assert asset_inside_bwrap(Path("/x/y.v2.csv.gz")) == "/data/asset.csv.gz"


def test_seccomp_programs_build() -> None:
    namespaced = build_filter_bpf(allow_unix_sockets=True)
    host = build_filter_bpf(allow_unix_sockets=False)
    assert len(namespaced) % 8 == 0
    assert len(host) > 0
    assert namespaced != host


def test_landlock_abi_is_reported() -> None:
    assert landlock.abi_version() >= 0
    assert landlock.handled_fs_access(1) < landlock.handled_fs_access(5)


def test_cgroup_create_and_remove() -> None:
    manager = CgroupManager.detect()
    group = manager.create(64 * 1024 * 1024, 8)
    try:
        assert all(directory.is_dir() for directory in group.dirs)
        assert not group.oom_killed()
        assert group.pids() == set()
    finally:
        group.remove()
    assert not any(directory.exists() for directory in group.dirs)
