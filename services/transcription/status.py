"""Transcription's part of `podbrief status`: transcripts stored, by where they came from, and the episodes that
fail, by reason (retried, then dead-lettered: the chassis adds the dead letters)."""

from __future__ import annotations

from podbrief.status import StageStatus, counts_by
from podbrief_transcription.models import FailureRow, TranscriptRow
from sqlalchemy.ext.asyncio import AsyncEngine


async def stage_status(engine: AsyncEngine) -> StageStatus:
    async with engine.connect() as conn:
        by_source = await counts_by(conn, TranscriptRow.source)
        failing = await counts_by(conn, FailureRow.reason)
    episodes = {"transcribed": sum(by_source.values()), **{f"transcribed from {k}": n for k, n in by_source.items()}}
    if failing:
        episodes["failing"] = sum(failing.values())
    return StageStatus(episodes=episodes, failures={"episodes": failing} if failing else {})
