"""Tables owned by the transcription service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class TranscriptRow(Base):
    __tablename__ = "transcription_transcripts"

    episode_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(20))
    language: Mapped[str | None] = mapped_column(sa.String(20), nullable=True)
    duration_s: Mapped[float] = mapped_column(sa.Float)
    model: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    rtf: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    # Transcript.model_dump(mode="json")
    transcript: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class FailureRow(Base):
    """The last failure of an episode that has no transcript yet: why (a podbrief.reasons code), how often.
    Deleted when the episode is transcribed; the bus dead-letters the message after its last attempt."""

    __tablename__ = "transcription_failures"

    episode_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    reason: Mapped[str] = mapped_column(sa.String(64), index=True)
    message: Mapped[str] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer)
    first_failed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    last_failed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
