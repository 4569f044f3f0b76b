"""Ingest settings (env prefix INGEST_, nested with `__`, e.g. INGEST_NET__ALLOWED_NETWORKS)."""

from __future__ import annotations

from podbrief.settings import DatabaseSettings, HttpSettings, NetSettings, ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class IngestSettings(ServiceSettings):
    # The rest of the configuration (nesting with `__`, .env, partial updates of nested blocks) is ServiceSettings'.
    model_config = SettingsConfigDict(env_prefix="INGEST_")

    db: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///.data/ingest.db"))
    http: HttpSettings = HttpSettings(port=8001)
    net: NetSettings = NetSettings()

    # The background loop: how often it looks for due feeds, and whether it runs at all (the embedded runner
    # turns it off and calls `poll_all_now` instead).
    poll_enabled: bool = True
    poll_tick_s: float = Field(default=5.0, gt=0, le=3600)
    poll_batch: int = Field(default=200, ge=1, le=10_000)
    # Adaptive schedule: a feed is polled every poll_interval_s at first, then somewhere between the min and
    # max depending on how often it publishes; each interval is jittered by +/- poll_jitter.
    poll_interval_s: float = Field(default=1800.0, ge=1, le=7 * 86400)
    min_poll_interval_s: float = Field(default=300.0, ge=1, le=86400)
    max_poll_interval_s: float = Field(default=86400.0, ge=1, le=30 * 86400)
    poll_jitter: float = Field(default=0.15, ge=0, le=0.9)
    # A failing feed waits base * 2^(failures-1), capped.
    error_backoff_base_s: float = Field(default=300.0, ge=0.1, le=86400)
    error_backoff_max_s: float = Field(default=86400.0, ge=1, le=30 * 86400)
    # Politeness: polls in flight overall and per host.
    max_concurrent_polls: int = Field(default=64, ge=1, le=4096)
    per_host_concurrency: int = Field(default=2, ge=1, le=64)
    # How long one replica owns a feed poll or an outbox row before another may take it over.
    lease_s: float = Field(default=300.0, ge=1, le=3600)
    outbox_sweep_s: float = Field(default=10.0, gt=0, le=3600)

    # Of a newly added feed's items, only this many of the newest are emitted; the rest are recorded as
    # seen. -1 emits the whole back catalogue. Later polls emit every new item.
    backfill_limit: int = Field(default=3, ge=-1)

    max_feed_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    max_transcript_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_chapters_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # Wall-clock cap on one fetch, so a server that trickles bytes cannot hold a poll forever.
    fetch_deadline_s: float = Field(default=120.0, gt=0, le=3600)
    fetch_transcripts: bool = True
    fetch_chapters: bool = True

    @model_validator(mode="after")
    def _intervals(self) -> IngestSettings:
        if self.min_poll_interval_s > self.max_poll_interval_s:
            raise ValueError("min_poll_interval_s must not exceed max_poll_interval_s")
        if self.lease_s <= self.fetch_deadline_s:
            # A poll still fetching when its lease ran out could be taken over by another replica.
            raise ValueError("lease_s must exceed fetch_deadline_s")
        if self.error_backoff_base_s > self.error_backoff_max_s:
            raise ValueError("error_backoff_base_s must not exceed error_backoff_max_s")
        return self
