"""The public pages' content: one insight with its related insights and topic, a topic's story across shows,
trending topics, and search results as insight cards. Built from delivery's own copy of the clustered insights
(the InsightClustered events) and, for search, the clustering service's HTTP API. Only insights of feeds that
were not withdrawn (podcast:block, removed) ever appear; nothing about subscribers does."""

from __future__ import annotations

import math
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from podbrief.clock import aware, utcnow
from podbrief_delivery.adapters.clustering import Search
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.brief import mmss, related_for, safe_http_url, timestamp_url
from podbrief_delivery.models import CandidateInsight

# A query is words: shorter than this many characters of letters or digits is not one.
MIN_QUERY_CHARS = 2
MAX_QUERY_CHARS = 300
TRENDING_DAYS = 7
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadQuery(ValueError):
    """A search query that cannot be run; the message says why, for the reader."""


@dataclass(frozen=True)
class Topic:
    cluster_id: uuid.UUID
    label: str


@dataclass(frozen=True)
class Card:
    """An insight as the public pages show it. Every string is feed- or model-supplied: templates escape it."""

    insight_id: uuid.UUID
    text: str
    quote: str
    speaker: str | None
    show: str
    episode_title: str
    episode_url: str | None
    audio_url: str | None
    timestamp_label: str
    day: date
    topic: Topic


@dataclass(frozen=True)
class Gone:
    """An insight whose feed was withdrawn: `reason` is blocked (podcast:block) or removed."""

    reason: str


@dataclass(frozen=True)
class InsightPage:
    card: Card
    related: list[Card]
    # Other insights of the topic beyond the related ones, so a reader sees the topic is wider.
    topic_size: int
    topic_shows: int


@dataclass(frozen=True)
class TopicSummary:
    topic: Topic
    new_insights: int
    shows: int
    last_seen: datetime

    @property
    def score(self) -> float:
        # New insights count, and more so when several shows carry them: one show repeating itself is not a trend.
        return self.new_insights * (1.0 + math.log2(self.shows))


@dataclass(frozen=True)
class TopicPage:
    topic: Topic
    days: list[tuple[date, list[Card]]]
    shows: list[tuple[str, int]]
    related: list[TopicSummary] = field(default_factory=list)

    @property
    def insight_count(self) -> int:
        return sum(len(cards) for _, cards in self.days)


def topic_label(label: str, rows: list[CandidateInsight] | None = None) -> str:
    """The cluster's label, or its commonest extracted topic, or the start of its newest insight."""
    label = " ".join((label or "").split())
    if label:
        return label
    if rows:
        common = Counter(t.strip() for r in rows for t in (r.topics or []) if t.strip()).most_common(1)
        if common:
            return common[0][0]
        text = rows[0].text.strip()
        return text if len(text) <= 60 else text[:59].rstrip() + "…"
    return "Untitled topic"


def card(row: CandidateInsight, label: str | None = None) -> Card:
    when = row.published_at or row.received_at
    return Card(
        insight_id=row.insight_id,
        text=row.text,
        quote=row.quote,
        speaker=row.speaker,
        show=row.show,
        episode_title=row.episode_title,
        episode_url=safe_http_url(row.episode_link) or safe_http_url(row.enclosure_url),
        audio_url=timestamp_url(row.enclosure_url, row.episode_link, row.start_s),
        timestamp_label=mmss(row.start_s),
        day=aware(when).date(),
        topic=Topic(row.cluster_id, label if label is not None else topic_label(row.cluster_label, [row])),
    )


async def insight_page(
    insight_id: uuid.UUID, *, repo: Repo, related_min: int, related_max: int
) -> InsightPage | Gone | None:
    """The page of a public insight; Gone when its feed was withdrawn (the caller answers 410); None when
    podbrief never had it."""
    row = (await repo.insights([insight_id])).get(insight_id)
    if row is None:
        return None
    withdrawn = await repo.withdrawn(row.feed_id)
    if withdrawn is not None:
        return Gone(withdrawn.reason)
    mates = await repo.cluster_insights(row.cluster_id)
    label = topic_label(row.cluster_label, mates or [row])
    pool = {m.insight_id: m for m in mates}
    # At least a few related insights from other shows when the topic has them, however few the event brought.
    items = related_for(row, pool, minimum=max(related_min, 3), maximum=max(related_max, 3))
    public = await repo.public_insights(i.insight_id for i in items)
    related = [
        card(public[i.insight_id], label if public[i.insight_id].cluster_id == row.cluster_id else None)
        for i in items
        if i.insight_id in public
    ]
    return InsightPage(
        card=card(row, label),
        related=related,
        topic_size=len(mates),
        topic_shows=len({m.show.casefold() for m in mates}),
    )


def _summaries(activity: list[tuple[uuid.UUID, str, int, int, datetime]]) -> list[TopicSummary]:
    return [TopicSummary(Topic(cid, topic_label(label)), n, shows, last) for cid, label, n, shows, last in activity]


async def trending(*, repo: Repo, now: datetime | None = None, limit: int = 30) -> list[TopicSummary]:
    """This week's topics by new insights, weighted by how many distinct shows carry them."""
    since = (now or utcnow()) - timedelta(days=TRENDING_DAYS)
    found = _summaries(await repo.topic_activity(since))
    found.sort(key=lambda t: (-t.score, -t.shows, -t.last_seen.timestamp(), str(t.topic.cluster_id)))
    return found[:limit]


async def topic_page(cluster_id: uuid.UUID, *, repo: Repo, limit: int = 200) -> TopicPage | None:
    rows = await repo.cluster_insights(cluster_id, limit)
    if not rows:
        return None
    label = topic_label(rows[0].cluster_label, rows)
    by_day: dict[date, list[Card]] = defaultdict(list)
    for r in rows:  # newest first already
        c = card(r, label)
        by_day[c.day].append(c)
    shows = Counter(r.show for r in rows).most_common()
    # Related topics: where this topic's related insights live, by how many links point there.
    linked = [uuid.UUID(str(x["insight_id"])) for r in rows for x in (r.related or []) if x.get("insight_id")]
    clusters = await repo.clusters_of(linked)
    votes = Counter(c for c in clusters.values() if c != cluster_id)
    related: list[TopicSummary] = []
    if votes:
        top = [c for c, _ in votes.most_common(5)]
        activity = await repo.topic_activity(EPOCH, cluster_ids=top)
        summaries = {s.topic.cluster_id: s for s in _summaries(activity)}
        related = [summaries[c] for c in top if c in summaries]
    return TopicPage(
        topic=Topic(cluster_id, label),
        days=sorted(by_day.items(), key=lambda kv: kv[0], reverse=True),
        shows=shows,
        related=related,
    )


def check_query(q: str | None) -> str:
    """The query to run, or BadQuery naming what is wrong with it."""
    q = " ".join((q or "").split())
    if not q:
        raise BadQuery("Type a few words to search for, such as a person, a company or an idea.")
    if len(q) > MAX_QUERY_CHARS:
        raise BadQuery(f"That search is {len(q)} characters long; keep it under {MAX_QUERY_CHARS}.")
    if sum(ch.isalnum() for ch in q) < MIN_QUERY_CHARS:
        raise BadQuery("Search for words: that query has no letters or digits to match.")
    return q


async def search(q: str, *, repo: Repo, search_api: Search, limit: int = 20) -> list[Card]:
    """Semantic search through clustering's API; the hits delivery can show publicly, best first."""
    hits = await search_api(q, limit)
    rows = await repo.public_insights(h.insight_id for h in hits)
    return [card(rows[h.insight_id]) for h in hits if h.insight_id in rows]
