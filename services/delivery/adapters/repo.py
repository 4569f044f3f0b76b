"""Delivery's database: candidate insights, subscribers, the delivery ledger, stored briefs, feedback."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from podbrief.clock import aware, utcnow
from podbrief_delivery.models import (
    BriefRow,
    CandidateInsight,
    Feedback,
    LedgerRow,
    SentInsight,
    Subscriber,
    WithdrawnFeed,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker


class Repo:
    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.engine = engine
        self.sessions = sessions

    def _insert(self, table: Any) -> Any:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    # --- candidate insights -------------------------------------------------------------------------------
    async def upsert_insight(self, values: dict[str, Any]) -> None:
        now = utcnow()
        row = {**values, "received_at": now, "updated_at": now}
        update = {k: v for k, v in row.items() if k not in ("insight_id", "received_at")}
        stmt = self._insert(CandidateInsight.__table__).values(**row)
        stmt = stmt.on_conflict_do_update(index_elements=["insight_id"], set_=update)
        async with self.sessions.begin() as s:
            await s.execute(stmt)

    async def candidates(
        self, since: datetime, feed_ids: Collection[uuid.UUID] | None = None
    ) -> list[CandidateInsight]:
        async with self.sessions() as s:
            # The window is when podbrief learned of an insight, not when the episode aired: a back-catalogue
            # episode ingested today is news to the subscriber. Freshness still decays by publication date.
            q = sa.select(CandidateInsight).where(CandidateInsight.received_at >= since, _public())
            if feed_ids is not None:
                q = q.where(CandidateInsight.feed_id.in_(list(feed_ids)))
            return list((await s.scalars(q)).all())

    async def insights(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CandidateInsight]:
        ids = list(ids)
        if not ids:
            return {}
        async with self.sessions() as s:
            rows = (await s.scalars(sa.select(CandidateInsight).where(CandidateInsight.insight_id.in_(ids)))).all()
            return {r.insight_id: r for r in rows}

    # --- the public pages: only insights whose feed was not withdrawn --------------------------------------
    async def public_insights(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, CandidateInsight]:
        ids = list(ids)
        if not ids:
            return {}
        async with self.sessions() as s:
            q = sa.select(CandidateInsight).where(CandidateInsight.insight_id.in_(ids), _public())
            return {r.insight_id: r for r in (await s.scalars(q)).all()}

    async def cluster_insights(self, cluster_id: uuid.UUID, limit: int = 200) -> list[CandidateInsight]:
        """A topic's public insights, newest first (by publication, else by when podbrief learned of them)."""
        async with self.sessions() as s:
            q = (
                sa.select(CandidateInsight)
                .where(CandidateInsight.cluster_id == cluster_id, _public())
                .order_by(_newest_first(), CandidateInsight.insight_id)
                .limit(limit)
            )
            return list((await s.scalars(q)).all())

    async def clusters_of(self, insight_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
        ids = list(insight_ids)
        if not ids:
            return {}
        async with self.sessions() as s:
            q = sa.select(CandidateInsight.insight_id, CandidateInsight.cluster_id).where(
                CandidateInsight.insight_id.in_(ids), _public()
            )
            return {i: c for i, c in (await s.execute(q)).all()}

    async def topic_activity(
        self, since: datetime, *, cluster_ids: Collection[uuid.UUID] | None = None
    ) -> list[tuple[uuid.UUID, str, int, int, datetime]]:
        """Per topic, over the public insights received since `since`: (cluster, label, insights, distinct
        shows, latest received_at)."""
        async with self.sessions() as s:
            q = sa.select(
                CandidateInsight.cluster_id,
                sa.func.max(CandidateInsight.cluster_label),
                sa.func.count(),
                sa.func.count(sa.distinct(sa.func.lower(CandidateInsight.show))),
                sa.func.max(CandidateInsight.received_at),
            ).where(CandidateInsight.received_at >= since, _public())
            if cluster_ids is not None:
                q = q.where(CandidateInsight.cluster_id.in_(list(cluster_ids)))
            q = q.group_by(CandidateInsight.cluster_id)
            return [
                (c, lbl or "", int(n), int(shows), aware(at)) for c, lbl, n, shows, at in (await s.execute(q)).all()
            ]

    async def sitemap_entries(self, limit: int) -> list[tuple[uuid.UUID, uuid.UUID, datetime]]:
        """(insight, cluster, updated_at) of the newest public insights."""
        async with self.sessions() as s:
            q = (
                sa.select(CandidateInsight.insight_id, CandidateInsight.cluster_id, CandidateInsight.updated_at)
                .where(_public())
                .order_by(CandidateInsight.updated_at.desc())
                .limit(limit)
            )
            return [(i, c, aware(at)) for i, c, at in (await s.execute(q)).all()]

    async def withdraw_feed(self, feed_id: uuid.UUID, reason: str, withdrawn_at: datetime) -> None:
        row = {"feed_id": feed_id, "reason": reason, "withdrawn_at": withdrawn_at, "received_at": utcnow()}
        stmt = self._insert(WithdrawnFeed.__table__).values(**row)
        stmt = stmt.on_conflict_do_update(
            index_elements=["feed_id"], set_={"reason": reason, "withdrawn_at": withdrawn_at}
        )
        async with self.sessions.begin() as s:
            await s.execute(stmt)

    async def withdrawn(self, feed_id: uuid.UUID) -> WithdrawnFeed | None:
        async with self.sessions() as s:
            return await s.get(WithdrawnFeed, feed_id)

    async def count_insights(self) -> int:
        async with self.sessions() as s:
            return int(await s.scalar(sa.select(sa.func.count()).select_from(CandidateInsight)) or 0)

    # --- subscribers --------------------------------------------------------------------------------------
    async def subscriber(self, sub_id: uuid.UUID) -> Subscriber | None:
        async with self.sessions() as s:
            return await s.get(Subscriber, sub_id)

    async def subscriber_by_email(self, email: str) -> Subscriber | None:
        async with self.sessions() as s:
            return (await s.scalars(sa.select(Subscriber).where(Subscriber.email == email.lower()))).first()

    async def subscriber_by_key(self, key_hash: str) -> Subscriber | None:
        async with self.sessions() as s:
            return (await s.scalars(sa.select(Subscriber).where(Subscriber.api_key_hash == key_hash))).first()

    async def subscribers(self, statuses: Sequence[str] | None = None) -> list[Subscriber]:
        async with self.sessions() as s:
            q = sa.select(Subscriber).order_by(Subscriber.created_at)
            if statuses:
                q = q.where(Subscriber.status.in_(list(statuses)))
            return list((await s.scalars(q)).all())

    async def add_subscriber(self, sub: Subscriber) -> bool:
        try:
            async with self.sessions.begin() as s:
                s.add(sub)
            return True
        except IntegrityError:
            return False

    async def update_subscriber(
        self, sub_id: uuid.UUID, *, bump_tokens: bool = False, **values: Any
    ) -> Subscriber | None:
        """Change a subscriber; `bump_tokens` also moves their token version, revoking every confirmation and
        profile token issued before."""
        return await self.update_subscriber_if(sub_id, {}, bump_tokens=bump_tokens, **values)

    async def update_subscriber_if(
        self, sub_id: uuid.UUID, expect: dict[str, Any], *, bump_tokens: bool = False, **values: Any
    ) -> Subscriber | None:
        """Change a subscriber only while their row still holds `expect` (column: value), in one statement, so
        two requests racing on the same token cannot both win. None when no row matched."""
        values["updated_at"] = utcnow()
        if bump_tokens:
            values["token_version"] = Subscriber.token_version + 1
        cond = [Subscriber.id == sub_id] + [getattr(Subscriber, k) == v for k, v in expect.items()]
        async with self.sessions.begin() as s:
            res = await s.execute(sa.update(Subscriber).where(*cond).values(**values))
            if not getattr(res, "rowcount", 0):
                return None
        return await self.subscriber(sub_id)

    async def counts_by_status(self) -> dict[str, int]:
        async with self.sessions() as s:
            rows = (await s.execute(sa.select(Subscriber.status, sa.func.count()).group_by(Subscriber.status))).all()
            return {str(st): int(n) for st, n in rows}

    async def delete_subscriber(self, sub_id: uuid.UUID) -> bool:
        async with self.sessions.begin() as s:
            for model in (Feedback, SentInsight, BriefRow, LedgerRow):
                await s.execute(sa.delete(model).where(model.subscriber_id == sub_id))  # type: ignore[attr-defined]
            res = await s.execute(sa.delete(Subscriber).where(Subscriber.id == sub_id))
            return bool(getattr(res, "rowcount", 0))

    # --- ledger: the claim is the unique-key insert -------------------------------------------------------
    async def ledger_keys(
        self, dates: Iterable[date], stale_before: datetime | None = None
    ) -> set[tuple[uuid.UUID, date]]:
        dates = list(set(dates))
        if not dates:
            return set()
        async with self.sessions() as s:
            rows = (
                await s.execute(
                    sa.select(
                        LedgerRow.subscriber_id, LedgerRow.brief_date, LedgerRow.status, LedgerRow.claimed_at
                    ).where(LedgerRow.brief_date.in_(dates))
                )
            ).all()
            # A temporary failure stays due: the next run reclaims it. So does a claim whose sender died.
            return {
                (sid, d)
                for sid, d, st, at in rows
                if st != "retry" and not (st == "claimed" and stale_before is not None and aware(at) < stale_before)
            }

    async def claim(
        self,
        sub_id: uuid.UUID,
        day: date,
        brief_id: uuid.UUID,
        scheduled_for: datetime | None,
        lease_s: float | None = None,
    ) -> uuid.UUID | None:
        """Insert the ledger row for (subscriber, day); only the replica whose insert lands may send. A row
        left in `retry`, or `claimed` more than `lease_s` ago (its sender died), is taken over with a
        conditional update, which is just as exclusive."""
        token = uuid.uuid4()
        now = utcnow()
        stmt = (
            self._insert(LedgerRow.__table__)
            .values(
                id=uuid.uuid4(),
                subscriber_id=sub_id,
                brief_date=day,
                brief_id=brief_id,
                status="claimed",
                claim_token=token,
                attempts=0,
                scheduled_for=scheduled_for,
                claimed_at=now,
            )
            .on_conflict_do_nothing(index_elements=["subscriber_id", "brief_date"])
            .returning(LedgerRow.__table__.c.id)
        )
        async with self.sessions.begin() as s:
            got = (await s.execute(stmt)).first()
            if got is not None:
                return token
            takeover = LedgerRow.status == "retry"
            if lease_s is not None:
                stale = sa.and_(LedgerRow.status == "claimed", LedgerRow.claimed_at < now - timedelta(seconds=lease_s))
                takeover = sa.or_(takeover, stale)
            res = await s.execute(
                sa.update(LedgerRow)
                .where(LedgerRow.subscriber_id == sub_id, LedgerRow.brief_date == day, takeover)
                .values(status="claimed", claim_token=token, claimed_at=now)
            )
            return token if getattr(res, "rowcount", 0) == 1 else None

    async def finish(
        self,
        sub_id: uuid.UUID,
        day: date,
        token: uuid.UUID,
        *,
        status: str,
        attempts: int,
        message_id: str | None = None,
        detail: str | None = None,
    ) -> int:
        """Record the outcome of this claim; returns the brief's attempts so far."""
        async with self.sessions.begin() as s:
            await s.execute(
                sa.update(LedgerRow)
                .where(
                    LedgerRow.subscriber_id == sub_id,
                    LedgerRow.brief_date == day,
                    LedgerRow.claim_token == token,
                )
                .values(
                    status=status,
                    attempts=LedgerRow.attempts + attempts,
                    message_id=message_id,
                    detail=(detail or "")[:2000] or None,
                    finished_at=utcnow(),
                )
            )
            total = await s.scalar(
                sa.select(LedgerRow.attempts).where(LedgerRow.subscriber_id == sub_id, LedgerRow.brief_date == day)
            )
            return int(total or 0)

    async def ledger(self, sub_id: uuid.UUID) -> list[LedgerRow]:
        async with self.sessions() as s:
            q = sa.select(LedgerRow).where(LedgerRow.subscriber_id == sub_id).order_by(LedgerRow.brief_date)
            return list((await s.scalars(q)).all())

    # --- briefs and what was sent -------------------------------------------------------------------------
    async def save_brief(self, brief_id: uuid.UUID, sub_id: uuid.UUID, day: date, body: dict[str, Any]) -> None:
        stmt = self._insert(BriefRow.__table__).values(
            brief_id=brief_id, subscriber_id=sub_id, brief_date=day, body=body, created_at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(index_elements=["brief_id"], set_={"body": body})
        async with self.sessions.begin() as s:
            await s.execute(stmt)

    async def brief(self, brief_id: uuid.UUID) -> BriefRow | None:
        async with self.sessions() as s:
            return await s.get(BriefRow, brief_id)

    async def brief_on(self, sub_id: uuid.UUID, day: date) -> BriefRow | None:
        async with self.sessions() as s:
            return (
                await s.scalars(sa.select(BriefRow).where(BriefRow.subscriber_id == sub_id, BriefRow.brief_date == day))
            ).first()

    async def briefs(self, sub_id: uuid.UUID, limit: int = 366) -> list[BriefRow]:
        async with self.sessions() as s:
            q = (
                sa.select(BriefRow)
                .where(BriefRow.subscriber_id == sub_id)
                .order_by(BriefRow.brief_date.desc())
                .limit(limit)
            )
            return list((await s.scalars(q)).all())

    async def sent_map(
        self,
        sub_ids: Sequence[uuid.UUID],
        *,
        excluding_day: date | None = None,
    ) -> dict[uuid.UUID, set[uuid.UUID]]:
        out: dict[uuid.UUID, set[uuid.UUID]] = {sid: set() for sid in sub_ids}
        if not sub_ids:
            return out
        async with self.sessions() as s:
            for i in range(0, len(sub_ids), 500):
                q = sa.select(SentInsight.subscriber_id, SentInsight.insight_id).where(
                    SentInsight.subscriber_id.in_(list(sub_ids[i : i + 500]))
                )
                if excluding_day is not None:
                    q = q.where(SentInsight.brief_date != excluding_day)
                for sid, iid in (await s.execute(q)).all():
                    out[sid].add(iid)
        return out

    async def reopen_day(self, sub_id: uuid.UUID, day: date) -> bool:
        """Forget the brief of (subscriber, day): its ledger row, the stored brief and what it marked as sent, so
        the day is composed again. True if there was one."""
        async with self.sessions.begin() as s:
            res = await s.execute(
                sa.delete(LedgerRow).where(LedgerRow.subscriber_id == sub_id, LedgerRow.brief_date == day)
            )
            await s.execute(sa.delete(BriefRow).where(BriefRow.subscriber_id == sub_id, BriefRow.brief_date == day))
            await s.execute(
                sa.delete(SentInsight).where(SentInsight.subscriber_id == sub_id, SentInsight.brief_date == day)
            )
            return bool(getattr(res, "rowcount", 0))

    async def mark_sent(self, sub_id: uuid.UUID, insight_ids: Sequence[uuid.UUID], day: date) -> None:
        if not insight_ids:
            return
        now = utcnow()
        stmt = self._insert(SentInsight.__table__).values(
            [{"subscriber_id": sub_id, "insight_id": i, "brief_date": day, "sent_at": now} for i in insight_ids]
        )
        stmt = stmt.on_conflict_do_nothing(index_elements=["subscriber_id", "insight_id"])
        async with self.sessions.begin() as s:
            await s.execute(stmt)

    # --- feedback -----------------------------------------------------------------------------------------
    async def add_feedback(self, sub_id: uuid.UUID, insight_id: uuid.UUID, kind: str) -> bool:
        stmt = (
            self._insert(Feedback.__table__)
            .values(
                id=uuid.uuid4(),
                subscriber_id=sub_id,
                insight_id=insight_id,
                kind=kind,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["subscriber_id", "insight_id", "kind"])
            .returning(Feedback.__table__.c.id)
        )
        async with self.sessions.begin() as s:
            return (await s.execute(stmt)).first() is not None

    async def feedback(self, sub_id: uuid.UUID) -> list[Feedback]:
        async with self.sessions() as s:
            q = sa.select(Feedback).where(Feedback.subscriber_id == sub_id).order_by(Feedback.created_at)
            return list((await s.scalars(q)).all())

    async def sent(self, sub_id: uuid.UUID) -> list[SentInsight]:
        async with self.sessions() as s:
            q = sa.select(SentInsight).where(SentInsight.subscriber_id == sub_id).order_by(SentInsight.brief_date)
            return list((await s.scalars(q)).all())


def _public() -> sa.ColumnElement[bool]:
    """Insights of feeds that were not withdrawn (podcast:block or removed)."""
    return CandidateInsight.feed_id.not_in(sa.select(WithdrawnFeed.feed_id))


def _newest_first() -> sa.ColumnElement[Any]:
    return sa.func.coalesce(CandidateInsight.published_at, CandidateInsight.received_at).desc()
