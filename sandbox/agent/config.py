"""Site agent configuration, loaded from YAML (``site.yaml``).

Example::

    listen: 0.0.0.0:7443
    tls:
      cert: tls/site.crt          # this agent's server certificate (PEM)
      key: tls/site.key
      ca: tls/ca.crt              # the CA that issued the gateway's client certificate
    gateway_fingerprints:         # SHA-256 (DER) of the gateway client certificate(s)
      - 3f1c...e0
    assets:
      admissions: {path: data/admissions.parquet, format: parquet}
      billing: {postgres: {dsn_env: BILLING_DSN, table: public.billing}}
    cache_dir: cache
    minimum_isolation: strong
    pool_size: 2                  # pre-started sandboxes (HE contexts)
    fork_servers: 1               # per asset version; 0 turns fork servers off
    pool_idle_seconds: 600
    limits: {memory_bytes: 1073741824, wall_seconds: 60}
    holder:                       # the organisation this agent belongs to, and its keys
      organisation: org_01...
      keys: [MCowBQYDK2Vw...]     # Ed25519 public keys (base64 raw), current first
    identity:                     # this agent's key and the holder's endorsement of it
      key: identity.pem           # blindgate site init
      endorsement: endorsement.json  # blindgate site endorse
    state_dir: state              # the site's own budget ledger, log and held outputs
    python:                       # Python jobs: packages the site vouches for
      dependencies: [numpy]

``holder`` and ``identity`` are required: an agent belongs to exactly one holder, which
endorses its key (see :mod:`sandbox.agent.identity`).

Relative paths are resolved against the directory of the YAML file.  Assets in
PostgreSQL are served from snapshots exported into ``cache_dir`` (see
:mod:`sandbox.agent.postgres`); ``Health`` reports them as ready when their
connection string's environment variable is set.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from contracts.endorsement import EndorsementError, decode_agent_key
from sandbox.config import Backend, IsolationLevel, RunnerConfig
from sandbox.plans import asset_format
from sandbox.spec import MIB, Limits

_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
ASSET_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_DEFAULTS = Limits()


def normalise_fingerprint(value: str) -> str:
    """Lowercase hex without separators; raises ``ValueError`` unless it is SHA-256."""
    text = value.strip().lower().replace(":", "")
    if not _FINGERPRINT.match(text):
        raise ValueError("a fingerprint is the 64-hex-digit SHA-256 of a DER certificate")
    return text


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = info.context.get("base") if isinstance(info.context, dict) else None
    path = value.expanduser()
    if not path.is_absolute() and isinstance(base, Path):
        path = base / path
    return path


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(_Model):
    """The agent's server certificate and key, and the CA for client certificates."""

    cert: Path
    key: Path
    ca: Path

    @field_validator("cert", "key", "ca")
    @classmethod
    def _paths(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class FileAsset(_Model):
    """A CSV or Parquet file; the format must agree with the file name."""

    path: Path
    format: Literal["csv", "parquet"] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @model_validator(mode="after")
    def _format_matches(self) -> FileAsset:
        detected = asset_format(self.path)
        if detected is None:
            raise ValueError("asset files must end in .csv, .tsv, .csv.gz, .parquet or .pq")
        if self.format is not None and self.format != detected:
            raise ValueError(f"format {self.format} does not match the file name ({detected})")
        return self

    @property
    def kind(self) -> str:
        return "file"

    @property
    def resolved_format(self) -> str:
        return self.format or asset_format(self.path) or "unknown"


class PostgresSource(_Model):
    """A table in the holder's PostgreSQL; the DSN is read from an environment variable.

    Fragments run on a CSV snapshot of the table (see :mod:`sandbox.agent.postgres`),
    refreshed when older than ``refresh_seconds``.
    """

    dsn_env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
    refresh_seconds: float = Field(default=300.0, ge=0)
    timeout_seconds: float = Field(default=300.0, gt=0)
    max_bytes: int = Field(default=4096 * MIB, ge=1024)
    pushdown: bool = Field(
        default=False,
        description="Run fragments inside PostgreSQL (read-only, with a statement timeout) "
        "instead of on an exported snapshot in the sandbox. Give the agent a role that can "
        "read only this table.",
    )
    max_rows: int = Field(default=100_000, ge=1, description="Push-down result row cap")


class PostgresAsset(_Model):
    """An asset kept in the holder's PostgreSQL."""

    postgres: PostgresSource

    @property
    def kind(self) -> str:
        return "postgres"

    @property
    def resolved_format(self) -> str:
        return ""


AssetConfig = FileAsset | PostgresAsset


class LimitsConfig(_Model):
    """Default and maximum resources of one fragment (see :class:`sandbox.spec.Limits`)."""

    memory_bytes: int = _DEFAULTS.memory_bytes
    pids: int = _DEFAULTS.pids
    cpu_seconds: int = _DEFAULTS.cpu_seconds
    wall_seconds: float = _DEFAULTS.wall_seconds
    output_bytes: int = _DEFAULTS.output_bytes
    tmpfs_bytes: int = _DEFAULTS.tmpfs_bytes
    open_files: int = _DEFAULTS.open_files
    file_size_bytes: int = _DEFAULTS.file_size_bytes
    threads: int = _DEFAULTS.threads

    @model_validator(mode="after")
    def _valid(self) -> LimitsConfig:
        self.to_limits()
        return self

    def to_limits(self) -> Limits:
        return Limits(**self.model_dump())


class HolderConfig(_Model):
    """Whom the agent belongs to: its holder organisation and the keys it trusts.

    ``keys`` are the organisation's Ed25519 public keys (standard base64 of the raw 32
    bytes), pinned here and nowhere else: the agent accepts a policy, a licence offer, an
    approval or an endorsement only if one of them signed it.  List the current key first;
    a replaced key may stay listed while old signatures are being renewed.
    """

    organisation: str = Field(min_length=1, max_length=200)
    keys: tuple[str, ...] = Field(min_length=1, max_length=8)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            try:
                decode_agent_key(text)
            except EndorsementError:
                raise ValueError(f"{text[:12]!r}… is not a base64 raw Ed25519 public key") from None
        return value


class IdentityConfig(_Model):
    """The agent's own identity: its Ed25519 key (``blindgate site init``) and its
    holder's endorsement of it (``blindgate site endorse``)."""

    key: Path
    endorsement: Path

    @field_validator("key", "endorsement")
    @classmethod
    def _paths(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)


class PythonSiteConfig(_Model):
    """How this site runs Python jobs (syft-rds job folders).

    Nothing is ever installed in the sandbox: a job's declared dependencies must be
    syft itself (a small stand-in provides its job helpers) or named in
    ``dependencies``, packages the site vouches for that are already importable from
    the agent's installation.  ``datasite`` is the SyftBox e-mail jobs see as
    ``SYFTBOX_EMAIL`` (their dataset's owner).
    """

    dependencies: tuple[str, ...] = ()
    datasite: str = Field(
        default="datasite@blindgate.invalid", pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$"
    )

    @field_validator("dependencies")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(re.sub(r"[-_.]+", "-", name.strip()).lower() for name in value)


class SiteConfig(_Model):
    """Everything a site agent needs to start."""

    listen: str = Field(default="127.0.0.1:7443", pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^:\s]+):\d+$")
    tls: TlsConfig
    gateway_fingerprints: tuple[str, ...] = Field(min_length=1)
    assets: dict[str, FileAsset | PostgresAsset] = Field(default_factory=dict)
    cache_dir: Path
    backend: Backend = "auto"
    minimum_isolation: IsolationLevel = IsolationLevel.STRONG
    unsafe_allow_weak_isolation: bool = False
    unsafe_enable_test_executor: bool = False
    pool_size: int = Field(default=1, ge=0, le=16)
    fork_servers: int = Field(default=1, ge=0, le=16)
    """Fork servers per (asset version, executor, bound): each prepares the engine and the
    asset once and forks a fresh child per fragment (0: a sandbox of its own each)."""
    pool_idle_seconds: float = Field(default=600.0, gt=0)
    """How long a fork server or a pre-started sandbox waits for a fragment before it
    stops (pools start on first use and shrink when idle)."""
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    max_concurrent_fragments: int = Field(default=2, ge=1, le=64)
    max_queued_fragments: int = Field(default=8, ge=0, le=1024)
    max_concurrent_uploads: int = Field(default=2, ge=1, le=64)
    max_input_bytes: int = Field(default=256 * MIB, ge=1024)
    max_cache_bytes: int = Field(default=4096 * MIB, ge=1024)
    result_cache_entries: int = Field(default=1024, ge=1)
    result_cache_bytes: int = Field(default=64 * MIB, ge=1024)
    work_dir: Path | None = None
    holder: HolderConfig
    identity: IdentityConfig
    state_dir: Path | None = None
    """Where the site keeps its own budget ledger and log (default ``<cache_dir>/state``)."""
    python: PythonSiteConfig = Field(default_factory=PythonSiteConfig)

    @field_validator("gateway_fingerprints", mode="before")
    @classmethod
    def _fingerprints(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple):
            return tuple(normalise_fingerprint(str(item)) for item in value)
        return value

    @field_validator("assets")
    @classmethod
    def _asset_ids(cls, value: dict[str, AssetConfig]) -> dict[str, AssetConfig]:
        for asset_id in value:
            if not ASSET_ID.match(asset_id):
                raise ValueError(f"asset id {asset_id!r} must be 1-128 of [A-Za-z0-9._-]")
        return value

    @field_validator("cache_dir", "work_dir", "state_dir")
    @classmethod
    def _dirs(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _resolve(value, info)

    @property
    def state(self) -> Path:
        """The directory of the site's ledger and log."""
        return self.state_dir or self.cache_dir / "state"

    def runner_config(self) -> RunnerConfig:
        """The sandbox runner's settings."""
        files = sum(isinstance(asset, FileAsset) for asset in self.assets.values())
        extra: dict[str, Any] = {}
        if self.work_dir is not None:
            extra["work_dir"] = self.work_dir
        return RunnerConfig(
            backend=self.backend,
            minimum_isolation=self.minimum_isolation,
            unsafe_allow_weak_isolation=self.unsafe_allow_weak_isolation,
            unsafe_enable_test_executor=self.unsafe_enable_test_executor,
            default_limits=self.limits.to_limits(),
            pool_size=self.pool_size,
            pool_max_keys=max(8, files),
            fork_servers=self.fork_servers,
            pool_idle_seconds=self.pool_idle_seconds,
            **extra,
        )


def parse_config(data: object, base: Path) -> SiteConfig:
    """Validate a configuration document; relative paths are taken from ``base``."""
    return SiteConfig.model_validate(data, context={"base": base})


def load_config(path: Path) -> SiteConfig:
    """Read and validate ``site.yaml``."""
    with path.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    return parse_config(data or {}, path.resolve().parent)
