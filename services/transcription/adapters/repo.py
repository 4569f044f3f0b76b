"""Stored transcripts, one per episode."""

from __future__ import annotations

import uuid

from podbrief.clock import utcnow
from podbrief.errors import RetryableError
from podbrief.events.models import Transcript
from podbrief.storage.db import session_factory
from podbrief_transcription.models import TranscriptRow
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine


class TranscriptRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = session_factory(engine)

    async def get(self, episode_id: uuid.UUID) -> Transcript | None:
        try:
            async with self._sessions() as session:
                row = await session.scalar(select(TranscriptRow).where(TranscriptRow.episode_id == episode_id))
        except OperationalError as exc:
            raise RetryableError(f"database unavailable: {exc}", reason="database") from exc
        return None if row is None else Transcript.model_validate(row.transcript)

    async def save(self, episode_id: uuid.UUID, transcript: Transcript) -> Transcript:
        """Store the transcript unless one exists; return the stored one (a concurrent writer may win)."""
        row = TranscriptRow(
            episode_id=episode_id,
            source=transcript.source,
            language=transcript.language,
            duration_s=transcript.duration_s,
            model=transcript.model,
            rtf=transcript.rtf,
            transcript=transcript.model_dump(mode="json"),
            created_at=utcnow(),
        )
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
        except IntegrityError:
            existing = await self.get(episode_id)
            if existing is None:
                raise
            return existing
        except OperationalError as exc:
            raise RetryableError(f"database unavailable: {exc}", reason="database") from exc
        return transcript

    async def count(self) -> int:
        from sqlalchemy import func

        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(TranscriptRow)) or 0)
