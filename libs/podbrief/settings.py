"""Settings shared by every service. Each service defines one `BaseSettings` with its own env prefix and
nests these as plain models, so `INGEST_KAFKA__BOOTSTRAP_SERVERS` and `.env` files both work."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

# A directory of secret files named like the variables they stand for (DELIVERY_SMTP__PASSWORD), as Docker and
# Kubernetes mount them. Unset means none is read.
SECRETS_DIR_ENV = "PODBRIEF_SECRETS_DIR"
FILE_SUFFIX = "_FILE"


def _read_secret(path: Path, variable: str) -> str:
    try:
        # Editors and `echo > file` add a final newline that is never part of the secret.
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        # The path is not secret; the file's content never appears in an error.
        raise ValueError(f"{variable}: cannot read secret file {path}: {exc.strerror}") from None


class SecretFilesSource(EnvSettingsSource):
    """Values read from files: `<VARIABLE>_FILE=/run/secrets/x` and, when PODBRIEF_SECRETS_DIR is set, every
    file in that directory named after a variable. Nested names (`DELIVERY_SMTP__PASSWORD`) work as in the
    environment. A variable set both directly and as `_FILE` is refused rather than silently picking one."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        values: dict[str, str] = {}
        # Only this service's variables: another program's *_FILE variable is none of its business.
        prefix = (self.env_prefix or "").upper()
        directory = os.environ.get(SECRETS_DIR_ENV)
        if directory:
            root = Path(directory)
            if root.is_dir():
                for entry in sorted(root.iterdir()):
                    # Kubernetes mounts keys as symlinks into a ..data dir; the dot-entries are its plumbing.
                    if entry.name.upper().startswith(prefix) and not entry.name.startswith(".") and entry.is_file():
                        values[entry.name] = _read_secret(entry, entry.name)
        for key, path in os.environ.items():
            if not key.upper().startswith(prefix) or not key.upper().endswith(FILE_SUFFIX) or not path:
                continue
            variable = key[: -len(FILE_SUFFIX)]
            if variable in os.environ:
                raise ValueError(f"both {variable} and {key} are set; set one")
            values[variable] = _read_secret(Path(path), key)
        return parse_env_vars(values, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


DEFAULT_DATA_DIR = Path(".data")
_SQLITE_DEFAULT = "sqlite+aiosqlite:///.data/"


def under_data_dir(value: Any, data_dir: Path) -> Any:
    """A default location under .data/ (a relative path, or a SQLite URL) moved under `data_dir`; any other value
    is returned as it is (the same object)."""
    if isinstance(value, Path) and not value.is_absolute() and value.parts[:1] == DEFAULT_DATA_DIR.parts:
        return data_dir.joinpath(*value.parts[1:])
    if isinstance(value, SecretStr) and value.get_secret_value().startswith(_SQLITE_DEFAULT):
        return SecretStr(f"sqlite+aiosqlite:///{data_dir / value.get_secret_value()[len(_SQLITE_DEFAULT) :]}")
    return value


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
    # Messages fetched and not yet finished per consumer (running, or queued behind an earlier one of their
    # key): the back-pressure bound. The consumer fetches again as soon as one finishes; the backlog beyond it
    # waits in the broker.
    max_in_flight: int = Field(default=50, ge=1, le=10_000)


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

    # Either a Qdrant server URL (http://qdrant:6333), or the directory of the embedded store (Qdrant Edge).
    url: str | None = None
    path: Path | None = Path(".data/qdrant")
    api_key: SecretStr | None = None
    collection: str = "insights"
    timeout_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> QdrantSettings:
        if self.url is None and self.path is None:
            raise ValueError("set qdrant url (server) or path (embedded Qdrant Edge store)")
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


class LoopSettings(BaseModel):
    """The one failure policy of every background loop (feed polling, the outbox sweep, the delivery scheduler,
    re-clustering): a step that fails is tried again after a backoff that doubles from base to max (never
    longer than the loop's own interval), and after `unhealthy_after` failures in a row /healthz fails (so the
    orchestrator restarts the process) until a step succeeds again."""

    model_config = ConfigDict(frozen=True)

    backoff_base_s: float = Field(default=1.0, gt=0, le=3600)
    backoff_max_s: float = Field(default=60.0, gt=0, le=86400)
    unhealthy_after: int = Field(default=5, ge=1, le=1000)


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set `model_config` with their own `env_prefix`."""

    # hide_input_in_errors: a validation error must not echo a DSN or a key back into the logs.
    # nested_model_default_partial_update: setting one field of a nested block (INGEST_HTTP__HOST) keeps the rest
    # of that block's defaults as this class declares them (port 8001), instead of rebuilding the block from the
    # nested model's own defaults (port 8000). Subclasses inherit it; their model_config merges with this one.
    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
        nested_model_default_partial_update=True,
    )

    log_level: str = "INFO"
    # Where the service keeps what it writes: every location whose default is under .data/ (a SQLite database,
    # the embedded Qdrant store, model caches) follows it unless set on its own. A container mounts its volume
    # here (<SVC>_DATA_DIR=/data), since everything else in the image is read-only.
    data_dir: Path = DEFAULT_DATA_DIR
    bus: BusSettings = BusSettings()
    http: HttpSettings = HttpSettings()
    loops: LoopSettings = LoopSettings()
    # What a SIGTERM grants in-flight work, twice over: open HTTP requests get this long, then the consumer's
    # in-flight handlers get this long (what does not finish stays uncommitted and is redelivered). A process
    # exits within about 2x this plus the producer flush; set the pod's terminationGracePeriodSeconds above it.
    shutdown_timeout_s: float = Field(default=30.0, gt=0, le=3600)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Secrets come from the environment or from files, never from code: the environment wins, then secret
        files (`<VARIABLE>_FILE`, PODBRIEF_SECRETS_DIR), then `.env`."""
        config = settings_cls.model_config
        files = SecretFilesSource(
            settings_cls,
            case_sensitive=config.get("case_sensitive"),
            env_prefix=config.get("env_prefix"),
            env_nested_delimiter=config.get("env_nested_delimiter"),
            env_ignore_empty=config.get("env_ignore_empty"),
        )
        return init_settings, env_settings, files, dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _defaults_follow_data_dir(cls, data: Any) -> Any:
        """Moves every default location under .data/ to `data_dir`; a location set explicitly stays."""
        if not isinstance(data, dict) or data.get("data_dir") in (None, "", DEFAULT_DATA_DIR, str(DEFAULT_DATA_DIR)):
            return data
        data_dir = Path(data["data_dir"])
        out = dict(data)
        for name, field in cls.model_fields.items():
            default = field.get_default(call_default_factory=True)
            if not isinstance(default, BaseModel):
                moved = under_data_dir(default, data_dir)
                if moved is not default and out.get(name, default) == default:
                    out[name] = moved
                continue
            for sub in type(default).model_fields:
                declared = getattr(default, sub)
                moved = under_data_dir(declared, data_dir)
                if moved is declared:
                    continue
                given = out.get(name, default)
                if isinstance(given, BaseModel) and getattr(given, sub) == declared:
                    out[name] = given.model_copy(update={sub: moved})
                elif isinstance(given, dict) and given.get(sub, declared) == declared:
                    out[name] = {**given, sub: moved}
        return out

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
                    password = creds.split(":", 1)[1]
                    # As written in the URL (percent-encoded) and as the driver sees it (decoded).
                    found += [password, unquote(password)]
        return tuple(dict.fromkeys(s for s in found if len(s) >= 4))
