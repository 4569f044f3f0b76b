"""Delivery's part of `podbrief status`: episodes with candidate insights, episodes in a brief, briefs by outcome."""

from __future__ import annotations

import sqlalchemy as sa
from podbrief.status import StageStatus, counts_by
from podbrief_delivery.models import CandidateInsight, LedgerRow, SentInsight
from sqlalchemy.ext.asyncio import AsyncEngine


async def stage_status(engine: AsyncEngine) -> StageStatus:
    async with engine.connect() as conn:
        candidates = (
            await conn.execute(sa.select(sa.func.count(sa.distinct(CandidateInsight.episode_id))))
        ).scalar_one()
        in_brief = (
            await conn.execute(
                sa.select(sa.func.count(sa.distinct(CandidateInsight.episode_id))).join(
                    SentInsight, SentInsight.insight_id == CandidateInsight.insight_id
                )
            )
        ).scalar_one()
        briefs = await counts_by(conn, LedgerRow.status)
    states = {"candidates": candidates, "in a brief": in_brief}
    states.update({f"briefs {k}": v for k, v in briefs.items()})
    return StageStatus(episodes=states)
