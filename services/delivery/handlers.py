"""Bus handlers: InsightClustered events become candidate insights for tomorrow's briefs; FeedWithdrawn takes a
feed's insights off the public pages and out of new briefs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
from podbrief.embeddings import TextEmbedder
from podbrief.events import FeedWithdrawn, InsightClustered
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.metrics import DeliveryMetrics

log = logging.getLogger(__name__)


async def on_insight_clustered(
    event: InsightClustered, *, repo: Repo, embedder: TextEmbedder, metrics: DeliveryMetrics | None = None
) -> None:
    """Upsert the candidate (idempotent on insight_id: a later event for the same insight updates its cluster
    and related list). The event's vector is used when it comes from our embedding model;
    otherwise the text is embedded here, so relevance is always measured in one vector space."""
    p = event.payload
    ins, ep = p.insight, p.episode
    vec: np.ndarray | None = None
    if p.vector and p.embedding_model == embedder.name and len(p.vector) == embedder.dim:
        vec = np.asarray(p.vector, dtype=np.float32)
    if vec is None:
        vec = (await asyncio.to_thread(embedder.embed, [ins.text]))[0]
        log.info("insight re-embedded", extra={"insight_id": str(ins.insight_id), "event_model": p.embedding_model})
    norm = float(np.linalg.norm(vec))
    if norm > 0:
        vec = vec / norm
    related: list[dict[str, Any]] = [r.model_dump(mode="json") for r in p.related]
    await repo.upsert_insight(
        {
            "insight_id": ins.insight_id,
            "episode_id": ep.episode_id,
            "feed_id": ep.feed_id,
            "show": ep.show,
            "episode_title": ep.title,
            "episode_link": ep.link,
            "enclosure_url": ep.enclosure_url,
            "published_at": ep.published_at,
            "text": ins.text,
            "quote": ins.quote,
            "start_s": ins.start_s,
            "end_s": ins.end_s,
            "speaker": ins.speaker,
            "topics": list(ins.topics),
            "importance": ins.importance,
            "kind": str(ins.kind),
            "cluster_id": p.cluster_id,
            "cluster_label": p.cluster_label,
            "cluster_size": p.cluster_size,
            "cluster_shows": p.cluster_shows,
            "duplicate_of": p.duplicate_of,
            "related": related,
            "embedding_model": embedder.name,
            "vector": np.asarray(vec, np.float32).tobytes(),
            "correlation_id": event.correlation_id,
        }
    )
    if metrics is not None:
        metrics.insights.inc()


async def on_feed_withdrawn(event: FeedWithdrawn, *, repo: Repo) -> None:
    """Record the withdrawal (an upsert: the repeats ingest sends for a still-blocked feed change nothing). From
    then on the feed's insight pages answer 410 Gone, and search, topics, the sitemap and briefs leave it out."""
    p = event.payload
    await repo.withdraw_feed(p.feed_id, p.reason, p.withdrawn_at)
    log.info("feed withdrawn from the public pages", extra={"feed_id": str(p.feed_id), "reason": p.reason})
