"""Ingest's part of `podbrief status`: feeds and episodes per state, and why feeds fail and episodes are rejected."""

from __future__ import annotations

import sqlalchemy as sa
from podbrief.reasons import split_detail
from podbrief.status import StageStatus, count, counts_by
from podbrief_ingest.models import Episode, Feed
from sqlalchemy.ext.asyncio import AsyncEngine

# Episode rows by status, as operators name them: emitted ones went on to transcription.
EPISODE_STATES = {"emitted": "discovered", "backlog": "backlog", "rejected": "rejected"}


async def stage_status(engine: AsyncEngine) -> StageStatus:
    async with engine.connect() as conn:
        episodes = await counts_by(conn, Episode.status)
        feeds = await counts_by(conn, Feed.status)
        failing = await counts_by(conn, Feed.last_error_reason, Feed.last_outcome == "error")
        rejected = (await conn.execute(sa.select(Episode.error).where(Episode.status == "rejected"))).scalars()
        rejected_by = count(split_detail(e or "")[0] for e in rejected)
    states = {EPISODE_STATES.get(k, k): v for k, v in episodes.items()}
    states.update({f"feeds {k}": v for k, v in feeds.items()})
    failures = {"feeds": failing, "episodes": rejected_by}
    return StageStatus(episodes=states, failures={k: v for k, v in failures.items() if v})
