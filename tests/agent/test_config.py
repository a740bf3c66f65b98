"""site.yaml: validation, relative paths, fingerprints, asset kinds; the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from contracts import encode_public_key
from sandbox import wire
from sandbox.agent.config import FileAsset, PostgresAsset, load_config, parse_config
from sandbox.config import IsolationLevel
from sandbox.spec import ResultTable
from sandbox.wire import FragmentOutcome, FragmentRequest, RequestedLimits

FINGERPRINT = "ab" * 32
HOLDER_KEY = encode_public_key(Ed25519PrivateKey.generate().public_key())


def document(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "listen": "0.0.0.0:7443",
        "tls": {"cert": "tls/site.crt", "key": "tls/site.key", "ca": "/etc/blindgate/ca.crt"},
        "gateway_fingerprints": [FINGERPRINT],
        "assets": {"admissions": {"path": "data/admissions.parquet", "format": "parquet"}},
        "cache_dir": "cache",
        "holder": {"organisation": "org_riverside", "keys": [HOLDER_KEY]},
        "identity": {"key": "identity.pem", "endorsement": "endorsement.json"},
    }
    return {**base, **overrides}


def without(name: str) -> dict[str, Any]:
    found = document()
    del found[name]
    return found


def test_load_resolves_paths_against_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(document()), encoding="utf-8")
    config = load_config(path)
    assert config.tls.cert == tmp_path / "tls" / "site.crt"
    assert config.tls.ca == Path("/etc/blindgate/ca.crt")
    assert config.cache_dir == tmp_path / "cache"
    asset = config.assets["admissions"]
    assert isinstance(asset, FileAsset)
    assert asset.path == tmp_path / "data" / "admissions.parquet"
    assert config.minimum_isolation is IsolationLevel.STRONG
    assert not config.unsafe_allow_weak_isolation and not config.unsafe_enable_test_executor
    assert config.identity.key == tmp_path / "identity.pem"
    assert config.identity.endorsement == tmp_path / "endorsement.json"
    assert config.holder.keys == (HOLDER_KEY,)
    assert config.state == tmp_path / "cache" / "state"


def test_fingerprints_are_normalised(tmp_path: Path) -> None:
    spaced = ":".join(FINGERPRINT.upper()[i : i + 2] for i in range(0, 64, 2))
    config = parse_config(document(gateway_fingerprints=spaced), tmp_path)
    assert config.gateway_fingerprints == (FINGERPRINT,)


@pytest.mark.parametrize(
    "overrides",
    [
        {"gateway_fingerprints": []},
        {"gateway_fingerprints": ["abc"]},
        {"assets": {"a": {"path": "x.parquet", "format": "csv"}}},
        {"assets": {"a": {"path": "x.xlsx"}}},
        {"assets": {"../a": {"path": "x.csv"}}},
        {"assets": {"a": {"postgres": {"dsn_env": "X", "table": "t; DROP TABLE t"}}}},
        {"listen": "7443"},
        {"limits": {"memory_bytes": 1024}},
        {"unknown_setting": True},
    ],
)
def test_invalid_documents_are_refused(tmp_path: Path, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_config(document(**overrides), tmp_path)


@pytest.mark.parametrize(
    "data",
    [
        without("holder"),
        without("identity"),
        document(holder={"organisation": "org_x", "keys": []}),
        document(holder={"organisation": "org_x", "keys": ["bm90IGEga2V5"]}),
        document(identity={"key": "identity.pem"}),
    ],
    ids=["no holder", "no identity", "no holder keys", "bad holder key", "no endorsement"],
)
def test_an_agent_always_names_its_holder_and_identity(tmp_path: Path, data: Any) -> None:
    with pytest.raises(ValidationError):
        parse_config(data, tmp_path)


def test_postgres_assets_are_accepted(tmp_path: Path) -> None:
    assets = {"billing": {"postgres": {"dsn_env": "BILLING_DSN", "table": "public.billing"}}}
    config = parse_config(document(assets=assets), tmp_path)
    asset = config.assets["billing"]
    assert isinstance(asset, PostgresAsset)
    assert asset.postgres.table == "public.billing"
    assert asset.kind == "postgres"


def test_runner_config_carries_the_safety_settings(tmp_path: Path) -> None:
    config = parse_config(
        document(minimum_isolation="medium", pool_size=3, limits={"wall_seconds": 5}), tmp_path
    )
    runner = config.runner_config()
    assert runner.minimum_isolation is IsolationLevel.MEDIUM
    assert runner.pool_size == 3
    assert runner.default_limits.wall_seconds == 5
    assert not runner.unsafe_enable_test_executor


def test_fork_servers_and_idle_pools_are_set_in_site_yaml(tmp_path: Path) -> None:
    default = parse_config(document(), tmp_path).runner_config()
    assert default.fork_servers == 1
    assert default.pool_idle_seconds == 600
    tuned = parse_config(document(fork_servers=0, pool_idle_seconds=30), tmp_path)
    assert tuned.runner_config().fork_servers == 0
    assert tuned.runner_config().pool_idle_seconds == 30
    with pytest.raises(ValidationError):
        parse_config(document(pool_idle_seconds=0), tmp_path)


def test_codec_round_trips_outcomes_and_requests() -> None:
    table = ResultTable(("a", "b"), ("BIGINT", "VARCHAR"), ((2**70, None), (-3, "x"), (True, 1.5)))
    outcome = FragmentOutcome("f-1", True, table, elapsed_ms=3.5)
    assert wire.decode_outcome(wire.encode_outcome(outcome)) == outcome
    failed = FragmentOutcome.failed("f-2", "cancelled", 1.0)
    assert wire.decode_outcome(wire.encode_outcome(failed)) == failed
    refused = FragmentOutcome.failed("f-4", "refused", reasons=("policy_denied", "x"))
    assert wire.decode_outcome(wire.encode_outcome(refused)) == refused
    released = FragmentOutcome("f-5", True, table, release='{"key_release": "declared_keys"}')
    assert wire.decode_outcome(wire.encode_outcome(released)) == released
    request = FragmentRequest("f-3", b"{}", RequestedLimits(cpu_seconds=2), 500, "0" * 64)
    assert wire.decode_request(wire.encode_request(request)) == request


def test_unknown_failure_codes_do_not_exist() -> None:
    with pytest.raises(ValueError, match="unknown failure"):
        FragmentOutcome.failed("f", "disk on fire")
