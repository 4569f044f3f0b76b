"""Delivery's tables: subscribers, candidate insights, composed briefs, the delivery ledger, what each
subscriber was already sent, feedback, and withdrawn feeds."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Subscriber(Base):
    __tablename__ = "delivery_subscribers"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(320), unique=True)
    # pending (awaiting confirmation) | active | paused | unsubscribed
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    interests: Mapped[str] = mapped_column(sa.Text, default="")
    topics: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    followed_shows: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    timezone: Mapped[str] = mapped_column(sa.String(64))
    delivery_hour: Mapped[int] = mapped_column(sa.Integer)
    quiet_day_policy: Mapped[str] = mapped_column(sa.String(16))
    # float32 bytes of the L2-normalised interest vector; moved by feedback.
    interest_vector: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    # Each interest phrase with its vector, to explain a pick ("matches your interest in X").
    interest_phrases: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    embedding_model: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    api_key_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True, nullable=True)
    paused_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    confirmed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    # Confirmation and profile tokens carry the version they were issued under and are refused once it moved:
    # confirming, unsubscribing and rotating the API key bump it (tokens.py, subscribers.py).
    token_version: Mapped[int] = mapped_column(sa.Integer, default=0, server_default="0")


class CandidateInsight(Base):
    __tablename__ = "delivery_insights"

    insight_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    feed_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    show: Mapped[str] = mapped_column(sa.Text)
    episode_title: Mapped[str] = mapped_column(sa.Text)
    episode_link: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    enclosure_url: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    text: Mapped[str] = mapped_column(sa.Text)
    quote: Mapped[str] = mapped_column(sa.Text)
    start_s: Mapped[float] = mapped_column(sa.Float)
    end_s: Mapped[float] = mapped_column(sa.Float)
    speaker: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    topics: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    importance: Mapped[float] = mapped_column(sa.Float)
    kind: Mapped[str] = mapped_column(sa.String(32))
    cluster_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    cluster_label: Mapped[str] = mapped_column(sa.Text, default="")
    cluster_size: Mapped[int] = mapped_column(sa.Integer)
    cluster_shows: Mapped[int] = mapped_column(sa.Integer)
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    related: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    embedding_model: Mapped[str] = mapped_column(sa.String(200))
    vector: Mapped[bytes] = mapped_column(sa.LargeBinary)
    # The correlation id of the events that brought the insight (its episode's, from the feed on).
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class BriefRow(Base):
    __tablename__ = "delivery_briefs"
    __table_args__ = (sa.UniqueConstraint("subscriber_id", "brief_date", name="uq_delivery_briefs_sub_date"),)

    brief_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    subscriber_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    brief_date: Mapped[date] = mapped_column(sa.Date)
    body: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class LedgerRow(Base):
    """Written (the claim) before the send; the SMTP outcome is recorded after. The unique key is what stops
    two replicas from sending the same brief."""

    __tablename__ = "delivery_ledger"
    __table_args__ = (sa.UniqueConstraint("subscriber_id", "brief_date", name="uq_delivery_ledger_sub_date"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    subscriber_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    brief_date: Mapped[date] = mapped_column(sa.Date, index=True)
    brief_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    # claimed | sent | retry (temporary failure, a later run tries again) | failed | skipped
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    claim_token: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    message_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    detail: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    scheduled_for: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)
    claimed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), nullable=True)


class SentInsight(Base):
    __tablename__ = "delivery_sent_insights"

    subscriber_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    insight_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    brief_date: Mapped[date] = mapped_column(sa.Date)
    sent_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class Feedback(Base):
    __tablename__ = "delivery_feedback"
    __table_args__ = (sa.UniqueConstraint("subscriber_id", "insight_id", "kind", name="uq_delivery_feedback"),)

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    subscriber_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, index=True)
    insight_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid)
    # up | down | more
    kind: Mapped[str] = mapped_column(sa.String(8))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class WithdrawnFeed(Base):
    """A feed whose insights no longer appear anywhere public (FeedWithdrawn from ingest): its insight pages
    answer 410 Gone, and search, topics, the sitemap and new briefs leave it out."""

    __tablename__ = "delivery_withdrawn_feeds"

    feed_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    # blocked (podcast:block) | removed
    reason: Mapped[str] = mapped_column(sa.String(16))
    withdrawn_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
