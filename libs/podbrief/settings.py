"""Settings shared by every service. Each service defines one `BaseSettings` with its own env prefix and
nests these as plain models, so `INGEST_KAFKA__BOOTSTRAP_SERVERS` and `.env` files both work."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "podbrief"
    # Prefixes every topic and consumer group, so several deployments (staging, a test run) share one cluster
    # without seeing each other's messages. Empty in a cluster of its own.
    namespace: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9._-]*$")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # Partitions for topics this process creates; N consumer replicas share at most this many partitions.
    partitions: int = Field(default=6, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1, le=7)
    max_poll_records: int = Field(default=50, ge=1, le=10_000)
    # Long handlers (transcribing an hour of audio) must not get the member evicted from its group.
    max_poll_interval_ms: int = Field(default=1_800_000, ge=10_000)
    session_timeout_ms: int = Field(default=30_000, ge=6_000)
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)


class BusSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["kafka", "memory"] = "kafka"
    kafka: KafkaSettings = KafkaSettings()
    # Attempts per message before it goes to `<topic>.dlq`; the backoff doubles from base to max.
    max_attempts: int = Field(default=4, ge=1, le=50)
    backoff_base_s: float = Field(default=0.5, ge=0.0, le=60.0)
    backoff_max_s: float = Field(default=15.0, ge=0.0, le=600.0)
    # Messages handled at once per consumer; messages that share a key are always handled in order.
    concurrency: int = Field(default=4, ge=1, le=256)


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # sqlite+aiosqlite:///path.db (embedded) or postgresql+asyncpg://user:pass@host/db
    url: SecretStr = SecretStr("sqlite+aiosqlite:///.data/podbrief.db")
    pool_size: int = Field(default=5, ge=1, le=100)
    echo: bool = False
    migrate_on_start: bool = True

    @field_validator("url")
    @classmethod
    def _supported(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("database url must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class QdrantSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Either a server URL (http://qdrant:6333) or a local-mode directory.
    url: str | None = None
    path: Path | None = Path(".data/qdrant")
    api_key: SecretStr | None = None
    collection: str = "insights"
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> QdrantSettings:
        if self.url is None and self.path is None:
            raise ValueError("set qdrant url (server) or path (local mode)")
        return self


class NetSettings(BaseModel):
    """Outbound fetches of untrusted URLs (feeds, enclosures, transcripts, chapters)."""

    model_config = ConfigDict(frozen=True)

    user_agent: str = "podbrief/0.1 (+https://github.com/podbrief/podbrief; podcast brief crawler)"
    connect_timeout_s: float = Field(default=10.0, gt=0, le=120)
    read_timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_redirects: int = Field(default=5, ge=0, le=20)
    # SSRF guard: loopback, private, link-local and metadata addresses are refused unless listed here
    # (CIDRs such as "127.0.0.0/8", or hostnames). Tests allow loopback this way.
    allowed_networks: tuple[str, ...] = ()


class HttpSettings(BaseModel):
    """The service's own HTTP server."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # Admin endpoints (feeds, sends, re-clustering) need this key; unset means admin endpoints are closed.
    admin_api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=1_000_000, ge=1024)


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set `model_config` with their own `env_prefix`."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", env_file=".env", extra="ignore", frozen=True)

    log_level: str = "INFO"
    data_dir: Path = Path(".data")
    bus: BusSettings = BusSettings()
    http: HttpSettings = HttpSettings()

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return value.upper()

    def secrets(self) -> tuple[str, ...]:
        """Every secret value in these settings, so the log formatter can mask them."""
        found: list[str] = []

        def walk(value: object) -> None:
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, BaseModel):
                for name in type(value).model_fields:
                    walk(getattr(value, name))

        walk(self)
        # A database URL carries its password inside; mask the password part on its own too.
        for s in list(found):
            if "://" in s and "@" in s:
                creds = s.split("://", 1)[1].split("@", 1)[0]
                if ":" in creds:
                    found.append(creds.split(":", 1)[1])
        return tuple(s for s in found if len(s) >= 4)
