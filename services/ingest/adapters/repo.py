"""Ingest's database: the feed registry, the episodes seen, and the transactional outbox."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from podbrief.clock import aware, utcnow
from podbrief.storage.db import session_factory
from podbrief_ingest.models import Episode, Feed, FeedUpdate, NewFeed, Outbox
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


@dataclass(frozen=True)
class NewEpisode:
    """An episode row to insert, and the outbox row carrying its event (None: recorded, not emitted)."""

    row: dict[str, Any]
    outbox: dict[str, Any] | None


class IngestRepo:
    """Every statement the service runs. Writes that must agree (an episode and its outbox row) share one
    transaction; claims are conditional UPDATEs, so two replicas never own the same feed poll or event."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(engine)
        self.dialect = engine.dialect.name

    def _insert(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # Feeds ------------------------------------------------------------------------------------------
    async def get_feed(self, feed_id: uuid.UUID) -> Feed | None:
        async with self.sessions() as s:
            return await s.get(Feed, feed_id)

    async def feed_by_url(self, url: str) -> Feed | None:
        async with self.sessions() as s:
            res = await s.execute(sa.select(Feed).where(sa.or_(Feed.source_url == url, Feed.url == url)).limit(1))
            return res.scalars().first()

    async def list_feeds(self, *, limit: int = 1000, offset: int = 0) -> list[Feed]:
        async with self.sessions() as s:
            res = await s.execute(sa.select(Feed).order_by(Feed.created_at, Feed.id).limit(limit).offset(offset))
            return list(res.scalars())

    async def all_feed_ids(self) -> list[uuid.UUID]:
        async with self.sessions() as s:
            return list((await s.execute(sa.select(Feed.id).order_by(Feed.next_poll_at))).scalars())

    async def count_feeds(self) -> int:
        async with self.sessions() as s:
            return int((await s.execute(sa.select(sa.func.count()).select_from(Feed))).scalar_one())

    async def create_feed(self, values: NewFeed) -> bool:
        """Insert unless a feed with this id exists; True when inserted."""
        async with self.engine.begin() as conn:
            stmt = self._insert(Feed.__table__).values(**values).on_conflict_do_nothing()
            res = await conn.execute(stmt)
            return bool(res.rowcount)

    async def delete_feed(self, feed_id: uuid.UUID) -> bool:
        async with self.engine.begin() as conn:
            ep_ids = sa.select(Episode.id).where(Episode.feed_id == feed_id)
            # Unsent events of a removed feed are dropped with it; sent ones are history downstream.
            await conn.execute(sa.delete(Outbox).where(Outbox.episode_id.in_(ep_ids), Outbox.sent_at.is_(None)))
            await conn.execute(sa.delete(Episode).where(Episode.feed_id == feed_id))
            res = await conn.execute(sa.delete(Feed).where(Feed.id == feed_id))
            return bool(res.rowcount)

    async def due_feeds(self, now: datetime, limit: int) -> list[uuid.UUID]:
        async with self.sessions() as s:
            res = await s.execute(
                sa.select(Feed.id).where(Feed.next_poll_at <= now).order_by(Feed.next_poll_at).limit(limit)
            )
            return list(res.scalars())

    async def claim_feed(self, feed_id: uuid.UUID, owner: str, now: datetime, lease_s: float) -> bool:
        async with self.engine.begin() as conn:
            res = await conn.execute(
                sa.update(Feed)
                .where(
                    Feed.id == feed_id,
                    sa.or_(Feed.lease_until.is_(None), Feed.lease_until < now),
                )
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            )
            return bool(res.rowcount)

    async def claim_feeds(self, feed_ids: Sequence[uuid.UUID], owner: str, now: datetime, lease_s: float) -> list[Feed]:
        """Lease every free feed among `feed_ids` in one statement; returns the feeds this owner got."""
        if not feed_ids:
            return []
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(Feed)
                .where(Feed.id.in_(list(feed_ids)), sa.or_(Feed.lease_until.is_(None), Feed.lease_until < now))
                .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_s))
            )
        async with self.sessions() as s:
            res = await s.execute(sa.select(Feed).where(Feed.id.in_(list(feed_ids)), Feed.lease_owner == owner))
            return list(res.scalars())

    async def release_feeds(self, updates: Sequence[tuple[uuid.UUID, FeedUpdate]], owner: str) -> None:
        """Many feeds' new state in one transaction, each freeing its lease. Updates that set the same columns
        (every 304, every failure) share one statement run with many parameter sets, so a batch costs one
        round trip and one statement compilation per kind of outcome rather than one per feed."""
        if not updates:
            return
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for fid, values in updates:
            params: dict[str, Any] = {f"v_{k}": v for k, v in values.items()}
            params["b_id"] = fid
            groups.setdefault(tuple(sorted(values)), []).append(params)
        async with self.engine.begin() as conn:
            for columns, rows in groups.items():
                stmt = (
                    sa.update(Feed)
                    .where(Feed.id == sa.bindparam("b_id"), Feed.lease_owner == owner)
                    .values({**{c: sa.bindparam(f"v_{c}") for c in columns}, "lease_owner": None, "lease_until": None})
                )
                await conn.execute(stmt, rows)

    async def release_feed(self, feed_id: uuid.UUID, owner: str, values: FeedUpdate) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(Feed)
                .where(Feed.id == feed_id, Feed.lease_owner == owner)
                .values(**values, lease_owner=None, lease_until=None)
            )

    # Episodes ---------------------------------------------------------------------------------------
    async def known_episodes(self, feed_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        known: set[uuid.UUID] = set()
        async with self.sessions() as s:
            for i in range(0, len(ids), 500):
                res = await s.execute(sa.select(Episode.id).where(Episode.id.in_(ids[i : i + 500])))
                known.update(res.scalars())
        return known

    async def record_episodes(
        self, episodes: Sequence[NewEpisode], feed_id: uuid.UUID, owner: str, feed_values: FeedUpdate
    ) -> list[int]:
        """One transaction: the episodes (first writer wins on the primary key), an outbox row for each one
        this call inserted, and the feed's new state. Returns the outbox ids to publish."""
        outbox_ids: list[int] = []
        async with self.engine.begin() as conn:
            for ep in episodes:
                res = await conn.execute(self._insert(Episode.__table__).values(**ep.row).on_conflict_do_nothing())
                if res.rowcount and ep.outbox is not None:
                    ins = await conn.execute(
                        self._insert(Outbox.__table__).values(**ep.outbox).on_conflict_do_nothing().returning(Outbox.id)
                    )
                    new_id = ins.scalar()
                    if new_id is not None:
                        outbox_ids.append(int(new_id))
            await conn.execute(
                sa.update(Feed)
                .where(Feed.id == feed_id, Feed.lease_owner == owner)
                .values(**feed_values, lease_owner=None, lease_until=None)
            )
        return outbox_ids

    async def list_episodes(
        self, feed_id: uuid.UUID, *, limit: int, cursor: str | None
    ) -> tuple[list[Episode], str | None]:
        """Newest first, keyset-paginated on (sort_at, id); the cursor is opaque to clients."""
        q = sa.select(Episode).where(Episode.feed_id == feed_id)
        if cursor:
            at, eid = decode_cursor(cursor)
            q = q.where(sa.or_(Episode.sort_at < at, sa.and_(Episode.sort_at == at, Episode.id < eid)))
        q = q.order_by(Episode.sort_at.desc(), Episode.id.desc()).limit(limit + 1)
        async with self.sessions() as s:
            rows = list((await s.execute(q)).scalars())
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            nxt = encode_cursor(aware(last.sort_at) or utcnow(), last.id)
        return rows, nxt

    async def get_episode(self, episode_id: uuid.UUID) -> Episode | None:
        async with self.sessions() as s:
            return await s.get(Episode, episode_id)

    async def episode_count(self, feed_id: uuid.UUID) -> int:
        async with self.sessions() as s:
            return int(
                (
                    await s.execute(sa.select(sa.func.count()).select_from(Episode).where(Episode.feed_id == feed_id))
                ).scalar_one()
            )

    # Outbox -----------------------------------------------------------------------------------------
    async def unsent_outbox(self, now: datetime, limit: int) -> list[int]:
        async with self.sessions() as s:
            res = await s.execute(
                sa.select(Outbox.id)
                .where(
                    Outbox.sent_at.is_(None),
                    sa.or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now),
                )
                .order_by(Outbox.id)
                .limit(limit)
            )
            return list(res.scalars())

    async def pending_count(self) -> int:
        async with self.sessions() as s:
            return int(
                (
                    await s.execute(sa.select(sa.func.count()).select_from(Outbox).where(Outbox.sent_at.is_(None)))
                ).scalar_one()
            )

    async def claim_outbox(
        self, outbox_ids: Sequence[int], owner: str, now: datetime, lease_s: float
    ) -> list[tuple[int, str]]:
        """Take the unsent, unclaimed rows among `outbox_ids` for `lease_s` in one conditional UPDATE; returns
        (id, event JSON) for the rows this owner got. A row another replica holds is simply not returned."""
        if not outbox_ids:
            return []
        until = now + timedelta(seconds=lease_s)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(Outbox)
                .where(
                    Outbox.id.in_(list(outbox_ids)),
                    Outbox.sent_at.is_(None),
                    sa.or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now),
                )
                .values(claimed_by=owner, claimed_until=until, attempts=Outbox.attempts + 1)
            )
            rows = await conn.execute(
                sa.select(Outbox.id, Outbox.event)
                .where(Outbox.id.in_(list(outbox_ids)), Outbox.claimed_by == owner, Outbox.sent_at.is_(None))
                .order_by(Outbox.id)
            )
            return [(int(r.id), str(r.event)) for r in rows]

    async def mark_sent(self, outbox_ids: Sequence[int], owner: str, now: datetime) -> None:
        if not outbox_ids:
            return
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(Outbox)
                .where(Outbox.id.in_(list(outbox_ids)), Outbox.claimed_by == owner)
                .values(sent_at=now, claimed_until=None)
            )

    async def release_outbox(self, outbox_id: int, owner: str, error: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(Outbox)
                .where(Outbox.id == outbox_id, Outbox.claimed_by == owner)
                .values(claimed_by=None, claimed_until=None, last_error=error[:2000])
            )

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            return True
        except OperationalError:
            return False


def encode_cursor(at: datetime, eid: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{eid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, eid = raw.split("|", 1)
        parsed = datetime.fromisoformat(at)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)), uuid.UUID(eid)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError("invalid cursor") from exc
