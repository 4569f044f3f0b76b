"""Ingest tables: the feed registry, the episodes seen, and the transactional outbox of events to publish."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypedDict

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Feed(Base):
    __tablename__ = "ingest_feeds"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    # The URL the feed was added with: episode ids hash it, so it never changes, even when the feed moves.
    source_url: Mapped[str] = mapped_column(sa.Text, unique=True)
    # Where the feed is fetched now (after permanent redirects and itunes:new-feed-url).
    url: Mapped[str] = mapped_column(sa.Text)
    title: Mapped[str | None] = mapped_column(sa.Text)
    link: Mapped[str | None] = mapped_column(sa.Text)
    language: Mapped[str | None] = mapped_column(sa.String(64))
    podcast_guid: Mapped[str | None] = mapped_column(sa.String(200))
    # active | failing | blocked | gone
    status: Mapped[str] = mapped_column(sa.String(32), default="active")
    locked: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    update_frequency: Mapped[str | None] = mapped_column(sa.Text)
    meta: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    etag: Mapped[str | None] = mapped_column(sa.Text)
    last_modified: Mapped[str | None] = mapped_column(sa.Text)
    moved_from: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    backfilled: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    poll_interval_s: Mapped[float] = mapped_column(sa.Float)
    next_poll_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_success_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_new_episode_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_outcome: Mapped[str | None] = mapped_column(sa.String(32))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    last_error_reason: Mapped[str | None] = mapped_column(sa.String(64))
    error_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    polls: Mapped[int] = mapped_column(sa.Integer, default=0)
    not_modified_count: Mapped[int] = mapped_column(sa.Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(64))
    lease_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class FeedUpdate(TypedDict, total=False):
    """What a poll writes on its feed's row: only the columns it names (the lease is the repository's business)."""

    url: str
    moved_from: list[str]
    title: str
    link: str | None
    language: str | None
    podcast_guid: str | None
    status: str
    locked: bool
    update_frequency: str | None
    meta: dict[str, Any]
    etag: str | None
    last_modified: str | None
    backfilled: bool
    poll_interval_s: float
    next_poll_at: datetime
    last_polled_at: datetime
    last_success_at: datetime
    last_new_episode_at: datetime
    last_outcome: str
    last_error: str | None
    last_error_reason: str | None
    error_count: int
    polls: int
    not_modified_count: int
    updated_at: datetime


class NewFeed(FeedUpdate, total=False):
    """A feed's row as it is first stored: its id, the URL it was added by and when, and what a poll writes."""

    id: uuid.UUID
    source_url: str
    created_at: datetime


class Episode(Base):
    __tablename__ = "ingest_episodes"
    __table_args__ = (sa.Index("ix_ingest_episodes_feed_sort", "feed_id", "sort_at", "id"),)

    # episode_id(feed.source_url, guid, enclosure_url): the primary key is what makes emission idempotent.
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    feed_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, sa.ForeignKey("ingest_feeds.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(sa.Text)
    title: Mapped[str] = mapped_column(sa.Text)
    link: Mapped[str | None] = mapped_column(sa.Text)
    published_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sort_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    enclosure_url: Mapped[str | None] = mapped_column(sa.Text)
    enclosure_type: Mapped[str | None] = mapped_column(sa.String(200))
    enclosure_length: Mapped[int | None] = mapped_column(sa.BigInteger)
    duration_s: Mapped[float | None] = mapped_column(sa.Float)
    transcripts: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    chapters_url: Mapped[str | None] = mapped_column(sa.Text)
    persons: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    # publisher (a fetched podcast:transcript travels with the event) | audio (transcription runs Whisper)
    transcript_source: Mapped[str | None] = mapped_column(sa.String(16))
    transcript_error: Mapped[str | None] = mapped_column(sa.Text)
    # emitted | backlog (seen while backfilling, not emitted) | rejected (bad enclosure, see error)
    status: Mapped[str] = mapped_column(sa.String(16))
    error: Mapped[str | None] = mapped_column(sa.Text)
    discovered_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class Outbox(Base):
    """Events written in the same transaction as their episode; a dispatcher claims, publishes, marks sent."""

    __tablename__ = "ingest_outbox"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, unique=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    topic: Mapped[str] = mapped_column(sa.String(200))
    event: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
