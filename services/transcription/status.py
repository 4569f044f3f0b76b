"""Transcription's part of `podbrief status`: transcripts stored, by where they came from. Its failures are its
dead letters (the chassis adds them)."""

from __future__ import annotations

from podbrief.status import StageStatus, counts_by
from podbrief_transcription.models import TranscriptRow
from sqlalchemy.ext.asyncio import AsyncEngine


async def stage_status(engine: AsyncEngine) -> StageStatus:
    async with engine.connect() as conn:
        by_source = await counts_by(conn, TranscriptRow.source)
    return StageStatus(
        episodes={"transcribed": sum(by_source.values()), **{f"transcribed from {k}": n for k, n in by_source.items()}}
    )
