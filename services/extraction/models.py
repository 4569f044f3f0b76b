"""The extraction service's tables: one row per episode (status and counters) and its kept insights."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class EpisodeRow(Base):
    __tablename__ = "extraction_episodes"

    episode_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    # pending -> running -> done | skipped; error while the bus retries (last_error says why)
    status: Mapped[str] = mapped_column(sa.String(16), nullable=False, index=True)
    episode: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)
    correlation_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    # server_default as in migration 0001, so the models and the migrated schema stay identical.
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    chunks_total: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    chunks_failed: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    insights_kept: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    dropped: Mapped[dict[str, int]] = mapped_column(sa.JSON, nullable=False, default=dict)
    tokens_in: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    tokens_out: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    model: Mapped[str | None] = mapped_column(sa.String(200), nullable=True)
    prompt_version: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    detail: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # The code of last_error in podbrief.reasons.
    last_error_reason: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)


class InsightRow(Base):
    __tablename__ = "extraction_insights"

    insight_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid,
        sa.ForeignKey("extraction_episodes.episode_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    position: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    start_s: Mapped[float] = mapped_column(sa.Float, nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
