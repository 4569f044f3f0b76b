"""Extraction's part of `podbrief status`: episodes per state, and why the failing ones fail (retried by the bus
until they succeed or are dead-lettered)."""

from __future__ import annotations

from podbrief.status import StageStatus, counts_by
from podbrief_extraction.models import EpisodeRow
from sqlalchemy.ext.asyncio import AsyncEngine

STATES = {
    "done": "extracted",
    "skipped": "skipped",
    "running": "extracting",
    "pending": "extracting",
    "error": "failing",
}


async def stage_status(engine: AsyncEngine) -> StageStatus:
    async with engine.connect() as conn:
        by_status = await counts_by(conn, EpisodeRow.status)
        failing = await counts_by(conn, EpisodeRow.last_error_reason, EpisodeRow.status == "error")
    states: dict[str, int] = {}
    for status, n in by_status.items():
        states[STATES.get(status, status)] = states.get(STATES.get(status, status), 0) + n
    return StageStatus(episodes=states, failures={"episodes": failing} if failing else {})
