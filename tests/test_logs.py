"""Log lines cannot be forged by caller-supplied text: one record is one line."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gateway.app import Gateway
from gateway.domain import Site
from gateway.service import Services
from gateway.siteclient.pool import SiteMonitor
from sandbox.logs import SafeLogRecord, escape_control, install_safe_records

FORGED = "riverside\n2026-11-30 12:00:00,000 ERROR blindgate: admin key leaked\r\x1b[2J\u2028"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield out
    finally:
        root.removeHandler(handler)


def test_control_characters_are_escaped_and_text_is_kept() -> None:
    assert escape_control("a\nb\tc\x00d\x9be\u2028") == "a\\nb\\tc\\x00d\\x9be\\u2028"
    assert escape_control("北区 Zürich bed-occupancy") == "北区 Zürich bed-occupancy"


def test_a_gateway_makes_every_record_one_line(services: Services, captured: io.StringIO) -> None:
    Gateway(services, runner=False)  # a gateway installs safe records for the process
    assert logging.getLogRecordFactory() is SafeLogRecord
    # a site whose stored name predates name validation, unreachable: the monitor logs it
    site = Site("site_1", "org_1", FORGED, "127.0.0.1:1", "ab" * 32, services.ctx.clock.now())
    monitor = SiteMonitor(services.site_pool, lambda: [site])
    assert monitor.check_all() == {"site_1": False}
    logging.getLogger("sandbox.agent.service").error(FORGED)
    lines = captured.getvalue().splitlines()
    assert len(lines) == 2
    assert "riverside\\n2026-11-30" in lines[0]
    assert "\x1b" not in captured.getvalue()


def test_a_site_agent_process_logs_one_line_per_record() -> None:
    code = (
        "import logging, sys\n"
        "from sandbox.logs import install_safe_records\n"
        "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "install_safe_records()\n"
        f"logging.getLogger('sandbox.agent').warning('asset %s refused', {FORGED!r})\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.count("\n") == 1
    assert out.stdout.startswith("WARNING asset riverside\\n")


def test_installing_twice_is_harmless() -> None:
    install_safe_records()
    install_safe_records()
    assert logging.getLogRecordFactory() is SafeLogRecord
