"""Composing briefs: the pool of candidate insights, each subscriber's picks ranked from it (excluding what
earlier days sent), the brief built from them (full, shorter on a quiet day, or a note), and a stored brief
rendered back as its web page and email."""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import numpy as np
from podbrief.clock import aware, utcnow
from podbrief.embeddings import TextEmbedder
from podbrief.events.ids import brief_id
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.brief import Brief, build_item
from podbrief_delivery.interests import from_bytes
from podbrief_delivery.metrics import DeliveryMetrics
from podbrief_delivery.models import CandidateInsight, Subscriber
from podbrief_delivery.ranking import Candidates, Pick, Profile, rank
from podbrief_delivery.render import Links, Renderer
from podbrief_delivery.settings import DeliverySettings, RankingSettings


@dataclass
class Pool:
    """The candidate insights of a run: their rows, and their vectors and features for ranking."""

    rows: dict[uuid.UUID, CandidateInsight]
    cands: Candidates


async def load_pool(
    now: datetime,
    *,
    repo: Repo,
    embedder: TextEmbedder,
    ranking: RankingSettings,
    feed_ids: Collection[uuid.UUID] | None = None,
) -> Pool:
    """The candidates of the ranking window (of those feeds only, when given)."""
    since = now - timedelta(days=ranking.max_age_days)
    rows = await repo.candidates(since, feed_ids)
    # Vectors of another model (or width) cannot be ranked against this one's interest vectors.
    usable = [r for r in rows if r.vector and len(r.vector) == 4 * embedder.dim]
    vectors = (
        np.frombuffer(b"".join(r.vector for r in usable), dtype=np.float32).reshape(len(usable), -1)
        if usable
        else np.zeros((0, 1), dtype=np.float32)
    )
    cands = Candidates.build(
        ids=[r.insight_id for r in usable],
        vectors=vectors,
        importance=[r.importance for r in usable],
        cluster_ids=[r.cluster_id for r in usable],
        cluster_sizes=[r.cluster_size for r in usable],
        cluster_shows=[r.cluster_shows for r in usable],
        shows=[r.show for r in usable],
        times=[aware(r.published_at) or aware(r.received_at) or now for r in usable],
        now=now,
        settings=ranking,
    )
    return Pool({r.insight_id: r for r in usable}, cands)


def profile_of(sub: Subscriber, sent: set[uuid.UUID]) -> Profile:
    return Profile(
        sub.id,
        from_bytes(sub.interest_vector),
        frozenset(s.casefold() for s in (sub.followed_shows or [])),
        frozenset(sent),
    )


async def compose(
    pool: Pool,
    subs: Sequence[Subscriber],
    days: dict[uuid.UUID, date],
    now: datetime,
    *,
    repo: Repo,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
) -> dict[uuid.UUID, Brief]:
    """Rank and build the brief of each subscriber for their day, excluding what earlier days sent."""
    s = settings
    out: dict[uuid.UUID, Brief] = {}
    for i in range(0, len(subs), s.batch_size):
        batch = list(subs[i : i + s.batch_size])
        sent: dict[uuid.UUID, set[uuid.UUID]] = {}
        for day in {days[x.id] for x in batch}:
            ids = [x.id for x in batch if days[x.id] == day]
            sent.update(await repo.sent_map(ids, excluding_day=day))
        t0 = time.perf_counter()
        ranked = rank(pool.cands, [profile_of(x, sent.get(x.id, set())) for x in batch], s.ranking, s.picks_per_brief)
        metrics.ranking_seconds.observe(time.perf_counter() - t0)
        for sub, r in zip(batch, ranked, strict=True):
            out[sub.id] = build_brief(pool, sub, r.picks, days[sub.id], now, settings=s, metrics=metrics)
    return out


def build_brief(
    pool: Pool,
    sub: Subscriber,
    picks: Sequence[Pick],
    day: date,
    now: datetime,
    *,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
) -> Brief:
    s = settings
    k = s.picks_per_brief
    vector_default = np.zeros(pool.cands.vectors.shape[1] if len(pool.cands) else 1, dtype=np.float32)
    items = []
    for n, p in enumerate(picks, start=1):
        row = pool.rows[pool.cands.ids[p.index]]
        vec = pool.cands.vectors[p.index] if len(pool.cands) else vector_default
        items.append(
            build_item(
                n,
                p,
                row,
                pool.rows,
                phrases=list(sub.interest_phrases or []),
                vector=vec,
                min_relevance=s.ranking.min_relevance,
                related_min=s.related_min,
                related_max=s.related_max,
            )
        )
    note: str | None = None
    kind: Literal["full", "shorter", "note"] = "full"
    if len(items) < k:
        if items and sub.quiet_day_policy == "shorter":
            kind = "shorter"
            note = (
                f"A quiet day: {len(items)} new insight{'s' if len(items) != 1 else ''} "
                "matched your interests, "
                "so this brief is shorter than usual."
            )
        else:
            kind, items = "note", []
            note = (
                "Nothing new today that matches your interests closely enough to be worth your time. "
                "We will be back tomorrow; you can broaden your interests at any time."
            )
    metrics.composed.labels(kind).inc()
    return Brief(
        brief_id=brief_id(sub.id, day),
        subscriber_id=sub.id,
        brief_date=day,
        generated_at=now,
        kind=kind,
        note=note,
        items=items,
    )


async def compose_one(
    sub: Subscriber,
    day: date,
    now: datetime | None = None,
    *,
    repo: Repo,
    embedder: TextEmbedder,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
) -> Brief:
    now = now or utcnow()
    pool = await load_pool(now, repo=repo, embedder=embedder, ranking=settings.ranking)
    briefs = await compose(pool, [sub], {sub.id: day}, now, repo=repo, settings=settings, metrics=metrics)
    return briefs[sub.id]


async def brief_files(
    sub: Subscriber, day: date, *, repo: Repo, links: Links, renderer: Renderer, sender: str
) -> tuple[str, bytes] | None:
    """The stored brief of `day` as a standalone HTML page and as the .eml that was sent (for the embedded
    runner, which writes both under its data directory)."""
    row = await repo.brief_on(sub.id, day)
    if row is None:
        return None
    brief = Brief.model_validate(row.body)
    brief_links = links.for_brief(brief)
    msg = renderer.brief_email(brief, brief_links, to=sub.email, sender=sender)
    page = renderer.page("page.html.j2", title=f"Your podcast brief, {day.isoformat()}", brief=brief, links=brief_links)
    return page, bytes(msg)
