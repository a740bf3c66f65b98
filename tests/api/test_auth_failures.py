"""Failed authentication: evidence kept at a bounded cost, and rate-limited per source."""

from __future__ import annotations

import secrets
from datetime import timedelta

import httpx

from gateway.app import Gateway
from gateway.clock import FixedClock
from gateway.service import Services
from tests.world import World, client


def _auth_entries(world: World) -> list[dict]:
    items = world.services.audit.entries(world.auditor, limit=1000, cursor=None).items
    return [i.entry for i in items if i.entry["action"].startswith("auth.")]


def _bad(url: str, n: int) -> list[httpx.Response]:
    with httpx.Client(base_url=url, timeout=30) as http:
        return [
            http.get("/v1/me", headers={"Authorization": f"Bearer bg_{secrets.token_hex(16)}"})
            for _ in range(n)
        ]


def test_a_burst_of_bad_keys_costs_two_entries_with_the_right_counts(
    base_url: str, world: World
) -> None:
    before = len(_auth_entries(world))
    answers = _bad(base_url, 200)
    limit = world.services.ctx.settings.auth_failures_per_source
    assert [a.status_code for a in answers] == [401] * limit + [429] * (200 - limit)
    retry = answers[-1].headers["Retry-After"]
    assert 1 <= int(retry) <= 60
    assert answers[-1].json()["error"]["code"] == "too_many_requests"
    # a valid key from the same source still authenticates
    assert client(base_url, world.operator_key).get("/v1/me").status_code == 200
    first = _auth_entries(world)[before:]
    assert len(first) == 1  # the first failure, whole, at once
    assert first[0]["action"] == "auth.authenticate"
    assert first[0]["detail"]["source"] == "127.0.0.1"
    assert len(first[0]["detail"]["key_hash_prefix"]) == 16
    assert world.services.identities.failures.flush(everything=True) == 1
    added = _auth_entries(world)[before:]
    assert len(added) == 2
    summary = added[1]["detail"]
    assert added[1]["action"] == "auth.failures"
    assert summary["source"] == "127.0.0.1"
    assert summary["count"] == 200
    assert summary["reasons"] == {"unknown API key": 200}
    assert summary["distinct_key_hash_prefixes"] == 200
    assert len(summary["key_hash_prefixes"]) == 16
    assert summary["answered_429"] == 200 - limit


def test_each_interval_has_its_own_group_and_the_timer_flushes_past_ones(
    world: World, clock: FixedClock
) -> None:
    failures = world.services.identities.failures
    before = len(_auth_entries(world))
    for _ in range(5):
        failures.refuse("10.0.0.1", "unknown API key", key_hash="ab" * 32)
    failures.refuse("10.0.0.2", "missing Authorization header")
    clock.advance(timedelta(seconds=failures.interval))
    for _ in range(3):
        failures.refuse("10.0.0.1", "unknown API key", key_hash="cd" * 32)
    assert failures.flush() == 1  # only the finished interval: 10.0.0.1's five
    entries = _auth_entries(world)[before:]
    kinds = [(e["action"], e["detail"].get("source"), e["detail"].get("count")) for e in entries]
    assert kinds == [
        ("auth.authenticate", "10.0.0.1", None),
        ("auth.authenticate", "10.0.0.2", None),  # a single failure needs no summary
        ("auth.authenticate", "10.0.0.1", None),  # the next interval's first, whole
        ("auth.failures", "10.0.0.1", 5),
    ]
    assert failures.flush(everything=True) == 1
    assert _auth_entries(world)[-1]["detail"]["count"] == 3


def test_nothing_is_lost_at_shutdown(services: Services, world: World) -> None:
    gateway = Gateway(services, http_port=0, grpc_port=0, runner=False).start()
    try:
        before = len(_auth_entries(world))
        assert {a.status_code for a in _bad(gateway.url, 7)} == {401}
    finally:
        gateway.stop()
    added = _auth_entries(world)[before:]
    assert [e["action"] for e in added] == ["auth.authenticate", "auth.failures"]
    assert added[1]["detail"]["count"] == 7
    size, _ = services.audit.log.latest_checkpoint() or (0, "")
    assert size == services.audit.log.size()  # the last checkpoint covers the summary


def test_too_many_sources_share_one_group(world: World) -> None:
    failures = world.services.identities.failures
    failures.max_sources = 3
    before = len(_auth_entries(world))
    for n in range(50):
        failures.refuse(f"10.1.0.{n}", "unknown API key", key_hash=f"{n:064x}")
    failures.flush(everything=True)
    added = _auth_entries(world)[before:]
    assert len(added) == 3 + 1 + 1  # three sources, then the overflow group's first and sum
    assert added[-1]["detail"]["source"] == "*"
    assert added[-1]["detail"]["count"] == 47
