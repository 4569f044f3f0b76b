"""Stored transcripts, one per episode, and the last failure of each episode not transcribed yet."""

from __future__ import annotations

import uuid

from podbrief.clock import utcnow
from podbrief.errors import RetryableError
from podbrief.events.models import Transcript
from podbrief.reasons import Reason
from podbrief.storage.db import session_factory
from podbrief_transcription.models import FailureRow, TranscriptRow
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine


class TranscriptRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
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
                await session.execute(delete(FailureRow).where(FailureRow.episode_id == episode_id))
        except IntegrityError:
            existing = await self.get(episode_id)
            if existing is None:
                raise
            return existing
        except OperationalError as exc:
            raise RetryableError(f"database unavailable: {exc}", reason="database") from exc
        return transcript

    async def record_failure(self, episode_id: uuid.UUID, reason: Reason, message: str) -> None:
        """Note a failed attempt: its reason and message replace the last ones, the attempts add up."""
        now = utcnow()
        async with self._sessions() as session, session.begin():
            row = await session.get(FailureRow, episode_id, with_for_update=True)
            if row is None:
                session.add(
                    FailureRow(
                        episode_id=episode_id,
                        reason=reason,
                        message=message[:2000],
                        attempts=1,
                        first_failed_at=now,
                        last_failed_at=now,
                    )
                )
            else:
                row.reason, row.message, row.attempts, row.last_failed_at = (
                    reason,
                    message[:2000],
                    row.attempts + 1,
                    now,
                )

    async def status(self, episode_id: uuid.UUID) -> tuple[TranscriptRow | None, FailureRow | None]:
        """The episode's stored transcript row, or else its last failure (or neither: never seen)."""
        try:
            async with self._sessions() as session:
                done = await session.get(TranscriptRow, episode_id)
                failed = None if done is not None else await session.get(FailureRow, episode_id)
        except OperationalError as exc:
            raise RetryableError(f"database unavailable: {exc}", reason="database") from exc
        return done, failed

    async def count(self) -> int:
        from sqlalchemy import func

        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(TranscriptRow)) or 0)
