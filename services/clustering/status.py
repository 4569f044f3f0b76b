"""Clustering's part of `podbrief status`: episodes whose insights are clustered, insights and clusters."""

from __future__ import annotations

import sqlalchemy as sa
from podbrief.status import StageStatus
from podbrief_clustering.models import ClusterRow, MemberRow
from sqlalchemy.ext.asyncio import AsyncEngine


async def stage_status(engine: AsyncEngine) -> StageStatus:
    async with engine.connect() as conn:
        episodes = (await conn.execute(sa.select(sa.func.count(sa.distinct(MemberRow.episode_id))))).scalar_one()
        insights = (await conn.execute(sa.select(sa.func.count()).select_from(MemberRow))).scalar_one()
        clusters = (await conn.execute(sa.select(sa.func.count()).select_from(ClusterRow))).scalar_one()
    return StageStatus(episodes={"clustered": episodes, "insights": insights, "clusters": clusters})
