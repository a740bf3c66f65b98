"""Gateway configuration: one settings object, built once and passed down.

Values come from arguments, then ``BLINDGATE_*`` environment variables, then defaults.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.config import IsolationLevel


class Settings(BaseSettings):
    """Everything the gateway needs to start."""

    model_config = SettingsConfigDict(env_prefix="BLINDGATE_", extra="forbid")

    data_dir: Path = Field(default=Path(".blindgate"), description="State directory.")
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL; SQLite in the data directory when unset. "
        "PostgreSQL: postgresql+psycopg://user:pass@host:port/db",
    )
    host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    grpc_tls_cert: Path | None = Field(default=None, description="PEM certificate for gRPC")
    grpc_tls_key: Path | None = Field(default=None, description="PEM private key for gRPC")
    trace_key_file: Path | None = Field(
        default=None,
        description="Ed25519 PEM key that signs trace checkpoints "
        "(default: <data_dir>/keys/trace-ed25519.pem, created on first use)",
    )
    trace_origin: str | None = Field(default=None, description="Name of the trace log")
    checkpoint_interval_seconds: float = Field(default=60.0, gt=0)
    site_ca_file: Path | None = Field(
        default=None,
        description="CA of the site agents' certificates (default: <data_dir>/pki/ca/ca.crt)",
    )
    site_client_cert_file: Path | None = Field(
        default=None,
        description="The gateway's client certificate for site agents "
        "(default: <data_dir>/pki/gateway.crt)",
    )
    site_client_key_file: Path | None = Field(
        default=None, description="Its private key (default: <data_dir>/pki/gateway.key)"
    )
    site_check_interval_seconds: float = Field(default=30.0, gt=0)
    job_lease_seconds: float = Field(
        default=10.0,
        ge=1.0,
        description="Lease on a running job, renewed every quarter of it while the job runs; "
        "a job whose gateway died is taken over once its lease lapses",
    )
    auth_failure_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Failed authentications are traced per source and interval of this length",
    )
    auth_failures_per_source: int = Field(
        default=30,
        ge=1,
        description="Failed authentications a source may make per interval before 429",
    )
    dev_mode: bool = False
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=4096,
        description="Longest request head (request line and headers); longer ones get 431",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Time a client has to send a request's head before its connection closes",
    )
    keep_alive_seconds: float = Field(
        default=5.0, gt=0, description="Idle time after which a kept-alive connection closes"
    )
    he_minimum_isolation: IsolationLevel = Field(
        default=IsolationLevel.MEDIUM,
        description="Least isolation of the sandbox that checks HE contexts and combines "
        "ciphertexts at the gateway",
    )
    page_size_default: int = Field(default=50, ge=1, le=1000)
    page_size_max: int = Field(default=200, ge=1, le=1000)
    log_level: str = "info"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        return value.lower()

    def resolved_database_url(self) -> str:
        """The database URL in force (secret-bearing: never log it)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'blindgate.db').resolve()}"

    def resolved_trace_key_file(self) -> Path:
        return self.trace_key_file or self.data_dir / "keys" / "trace-ed25519.pem"

    def site_tls_files(self) -> tuple[Path, Path, Path]:
        """(CA, client certificate, client key) for mutual TLS with site agents."""
        pki = self.data_dir / "pki"
        return (
            self.site_ca_file or pki / "ca" / "ca.crt",
            self.site_client_cert_file or pki / "gateway.crt",
            self.site_client_key_file or pki / "gateway.key",
        )

    def checkpoint_file(self) -> Path:
        """Signed checkpoints are also appended here, outside the database."""
        return self.data_dir / "trace" / "checkpoints.txt"

    def database_kind(self) -> str:
        """``sqlite`` or ``postgresql``: safe to log."""
        return "postgresql" if self.resolved_database_url().startswith("postgresql") else "sqlite"
