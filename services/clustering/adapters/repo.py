"""Clustering's database: clusters and their members (the bookkeeping beside the vectors)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from podbrief.clock import aware
from podbrief_clustering.models import ClusterRow, MemberRow
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


@dataclass(frozen=True)
class Member:
    insight_id: uuid.UUID
    cluster_id: uuid.UUID
    episode_id: uuid.UUID
    show: str
    text: str
    duplicate_of: uuid.UUID | None
    seen_at: datetime


@dataclass
class Cluster:
    id: uuid.UUID
    centroid: np.ndarray
    size: int
    shows: list[str]
    label: str
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    updated_at: datetime

    @property
    def show_count(self) -> int:
        return len(self.shows)


def _member(row: MemberRow) -> Member:
    return Member(
        row.insight_id,
        row.cluster_id,
        row.episode_id,
        row.show,
        row.text,
        row.duplicate_of,
        aware(row.seen_at),
    )


def _cluster(row: ClusterRow) -> Cluster:
    return Cluster(
        row.id,
        np.asarray(row.centroid, dtype=np.float32),
        row.size,
        list(row.shows),
        row.label,
        aware(row.first_seen),
        aware(row.last_seen),
        aware(row.created_at),
        aware(row.updated_at),
    )


class ClusterRepo:
    """Clusters and memberships in the service's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(engine, expire_on_commit=False)

    async def members(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Member]:
        ids = list(ids)
        if not ids:
            return {}
        out: dict[uuid.UUID, Member] = {}
        async with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = await s.scalars(sa.select(MemberRow).where(MemberRow.insight_id.in_(ids[start : start + 500])))
                out.update({r.insight_id: _member(r) for r in rows})
        return out

    async def members_of(self, cluster_ids: Iterable[uuid.UUID]) -> list[Member]:
        ids = list(cluster_ids)
        if not ids:
            return []
        async with self.sessions() as s:
            rows = await s.scalars(sa.select(MemberRow).where(MemberRow.cluster_id.in_(ids)))
            return [_member(r) for r in rows]

    async def members_since(self, since: datetime) -> list[Member]:
        async with self.sessions() as s:
            rows = await s.scalars(
                sa.select(MemberRow)
                .where(MemberRow.seen_at >= since)
                .order_by(MemberRow.created_at, MemberRow.insight_id)
            )
            return [_member(r) for r in rows]

    async def all_members(self) -> list[Member]:
        async with self.sessions() as s:
            rows = await s.scalars(sa.select(MemberRow).order_by(MemberRow.created_at, MemberRow.insight_id))
            return [_member(r) for r in rows]

    async def clusters(self, ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, Cluster]:
        async with self.sessions() as s:
            q = sa.select(ClusterRow)
            if ids is not None:
                q = q.where(ClusterRow.id.in_(list(ids)))
            return {r.id: _cluster(r) for r in await s.scalars(q)}

    async def cluster_count(self) -> int:
        async with self.sessions() as s:
            return int(await s.scalar(sa.select(sa.func.count()).select_from(ClusterRow)) or 0)

    async def save(
        self,
        members: Sequence[Member],
        clusters: Sequence[Cluster],
        now: datetime,
        *,
        reassigned: Sequence[tuple[uuid.UUID, uuid.UUID]] = (),
        deleted: Sequence[uuid.UUID] = (),
    ) -> None:
        """New members, changed clusters, reassignments and deletions in one transaction."""
        async with self.sessions.begin() as s:
            for m in members:
                if await s.get(MemberRow, m.insight_id) is None:
                    s.add(
                        MemberRow(
                            insight_id=m.insight_id,
                            cluster_id=m.cluster_id,
                            episode_id=m.episode_id,
                            show=m.show,
                            text=m.text,
                            duplicate_of=m.duplicate_of,
                            seen_at=m.seen_at,
                            created_at=now,
                        )
                    )
            for insight, cluster in reassigned:
                await s.execute(sa.update(MemberRow).where(MemberRow.insight_id == insight).values(cluster_id=cluster))
            for c in clusters:
                values = {
                    "centroid": [float(x) for x in c.centroid],
                    "size": c.size,
                    "shows": sorted(c.shows),
                    "show_count": c.show_count,
                    "label": c.label,
                    "first_seen": c.first_seen,
                    "last_seen": c.last_seen,
                    "updated_at": now,
                }
                row = await s.get(ClusterRow, c.id)
                if row is None:
                    s.add(ClusterRow(id=c.id, created_at=c.created_at, **values))
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
            if deleted:
                await s.execute(sa.delete(ClusterRow).where(ClusterRow.id.in_(list(deleted))))

    async def trending(self, since: datetime, limit: int) -> list[tuple[Cluster, int]]:
        """Clusters seen since `since` with how many members they gained since then."""
        async with self.sessions() as s:
            growth = (
                sa.select(MemberRow.cluster_id, sa.func.count().label("n"))
                .where(MemberRow.seen_at >= since)
                .group_by(MemberRow.cluster_id)
                .subquery()
            )
            rows = await s.execute(sa.select(ClusterRow, growth.c.n).join(growth, growth.c.cluster_id == ClusterRow.id))
            out = [(_cluster(r[0]), int(r[1])) for r in rows]
        out.sort(key=lambda cg: (-trend_score(cg[1], cg[0].show_count), -cg[0].size, str(cg[0].id)))
        return out[:limit]


def trend_score(growth: int, shows: int) -> float:
    """Growth weighted by show diversity: one show repeating itself trends less than five shows agreeing."""
    return float(growth) * (1.0 + math.log(max(shows, 1)))
