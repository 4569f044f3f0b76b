"""Delivery settings: SMTP, links, signing, ranking weights and the schedule. Env prefix DELIVERY_."""

from __future__ import annotations

import ipaddress
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podbrief.embeddings import EmbeddingSettings
from podbrief.settings import DatabaseSettings, HttpSettings, ServiceSettings
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

# The value shipped in examples; a production deploy that keeps it could have its tokens forged.
PLACEHOLDER_SECRET = "changethis"


class SmtpSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    # use_tls: implicit TLS from the first byte (port 465); starttls: upgrade a plain connection (587).
    use_tls: bool = False
    starttls: bool = False
    from_address: str = "podbrief <brief@podbrief.local>"
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    # Temporary (4xx) failures are retried this many times within one delivery run.
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_s: float = Field(default=1.0, ge=0, le=300)
    # Across scheduler runs: after this many attempts for one brief the ledger records it as failed.
    max_total_attempts: int = Field(default=15, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_tls_mode(self) -> SmtpSettings:
        if self.use_tls and self.starttls:
            raise ValueError("set smtp use_tls (implicit TLS) or starttls, not both")
        return self


class RankingSettings(BaseModel):
    """Weights of the score; see ranking.py for the formula."""

    model_config = ConfigDict(frozen=True)

    relevance: float = Field(default=1.0, ge=0)
    followed_show: float = Field(default=0.25, ge=0)
    importance: float = Field(default=0.2, ge=0)
    corroboration: float = Field(default=0.15, ge=0)
    freshness: float = Field(default=0.1, ge=0)
    # Freshness halves every this many hours.
    freshness_half_life_h: float = Field(default=36.0, gt=0)
    # MMR trade-off: 1.0 ignores redundancy, lower values push picks apart.
    mmr_lambda: float = Field(default=0.75, ge=0, le=1)
    # Candidates older than this are not considered at all.
    max_age_days: int = Field(default=7, ge=1, le=365)
    # A quiet day: fewer than `picks` candidates score at least this relevance.
    min_relevance: float = Field(default=0.2, ge=-1, le=1)


class FeedbackSettings(BaseModel):
    """Rocchio update of the interest vector: q' = normalise(alpha*q + beta*d) for a thumbs up or "more like
    this", normalise(alpha*q - gamma*d) for a thumbs down."""

    model_config = ConfigDict(frozen=True)

    alpha: float = Field(default=1.0, gt=0)
    beta: float = Field(default=0.3, ge=0)
    gamma: float = Field(default=0.15, ge=0)
    more_like_this: float = Field(default=0.5, ge=0)


class RateLimitSettings(BaseModel):
    """Sign-up and confirmation limits, per delivery replica (see ratelimit.py)."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    window_s: float = Field(default=3600.0, gt=0, le=7 * 86400)
    # Sign-ups (API and form) per client address and per email address in the window.
    signup_per_ip: int = Field(default=20, ge=1, le=1_000_000)
    signup_per_email: int = Field(default=5, ge=1, le=1_000_000)
    # Confirmation attempts per client address in the window.
    confirm_per_ip: int = Field(default=60, ge=1, le=1_000_000)
    # Searches on the public /search page per client address in the window (each one costs an embedding).
    search_per_ip: int = Field(default=120, ge=1, le=1_000_000)
    # X-Forwarded-For is believed only when the peer is one of these proxies (CIDRs or addresses). Empty: the
    # socket peer is the client, and a client cannot dodge the limit by sending the header itself.
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies entry {entry!r} is not an address or CIDR") from exc
        return tuple(e.strip() for e in value)


class DeliverySettings(ServiceSettings):
    # The rest of the configuration (nesting with `__`, .env, partial updates of nested blocks) is ServiceSettings'.
    model_config = SettingsConfigDict(env_prefix="DELIVERY_")

    db: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///.data/delivery.db"))
    http: HttpSettings = HttpSettings(port=8005)
    smtp: SmtpSettings = SmtpSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    ranking: RankingSettings = RankingSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    rate_limits: RateLimitSettings = RateLimitSettings()

    # Links in emails point here (the web pages, confirm, unsubscribe, feedback).
    public_base_url: str = "http://127.0.0.1:8005"
    # The clustering service's HTTP API, which the public /search page asks (never its internals).
    clustering_url: str = "http://127.0.0.1:8004"
    clustering_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # HMAC key for confirmation, unsubscribe, feedback and profile links.
    signing_secret: SecretStr = SecretStr(PLACEHOLDER_SECRET)
    # Only for local development: accept the placeholder secret.
    allow_insecure_dev_secret: bool = False

    picks_per_brief: int = Field(default=5, ge=1, le=20)
    related_min: int = Field(default=2, ge=0, le=5)
    related_max: int = Field(default=5, ge=0, le=5)

    scheduler_enabled: bool = True
    scheduler_interval_s: float = Field(default=60.0, gt=0, le=3600)
    # A ledger claim whose sender died (a crash or SIGKILL between claim and outcome) is taken over by a later
    # run after this long, so the day's brief is not lost. Longer than any one send (smtp timeout x attempts);
    # a sender that died after the SMTP server accepted the message makes the takeover a duplicate, which is
    # rarer and visible, where the alternative is a brief silently never sent.
    claim_lease_s: float = Field(default=900.0, ge=1, le=86400)
    # After an outage, the briefs of this many missed local days are still sent (late, and visibly so in the
    # send-lateness metric) rather than skipped in silence. 0 turns catch-up off.
    catch_up_days: int = Field(default=1, ge=0, le=7)
    default_delivery_hour: int = Field(default=7, ge=0, le=23)
    default_timezone: str = "UTC"
    confirmation_ttl_s: int = Field(default=3 * 24 * 3600, ge=60)
    # Links in a brief (unsubscribe, feedback, the web page) stay valid this long.
    link_ttl_s: int = Field(default=180 * 24 * 3600, ge=3600)
    # Default for new subscribers: a shorter brief, or a "nothing new today" note.
    quiet_day_policy: Literal["shorter", "note"] = "shorter"
    # Briefs the send loop composes at once; caps memory for very large runs.
    batch_size: int = Field(default=500, ge=1, le=100_000)
    # Open/click tracking is off unless a deploy opts in.
    tracking: bool = False

    @field_validator("default_timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_base_url must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("clustering_url")
    @classmethod
    def _clustering(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("clustering_url must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _secret(self) -> DeliverySettings:
        secret = self.signing_secret.get_secret_value()
        if secret == PLACEHOLDER_SECRET and not self.allow_insecure_dev_secret:
            raise ValueError(
                "DELIVERY_SIGNING_SECRET is the placeholder: set a random secret "
                "(or DELIVERY_ALLOW_INSECURE_DEV_SECRET=true for local development only)"
            )
        if len(secret) < 16 and not self.allow_insecure_dev_secret:
            raise ValueError("DELIVERY_SIGNING_SECRET must be at least 16 characters")
        if self.related_min > self.related_max:
            raise ValueError("related_min must not exceed related_max")
        return self
