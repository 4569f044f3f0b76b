"""Bus handlers: plain typed functions; the composition root binds their keyword dependencies."""

from __future__ import annotations

from podbrief.bus import Publish
from podbrief.events import InsightClustered, InsightsExtracted, new_event
from podbrief.events.ids import event_id
from podbrief.events.models import InsightClusteredPayload
from podbrief_clustering.clusterer import Clusterer, Item


async def on_insights_extracted(event: InsightsExtracted, *, clusterer: Clusterer, publish: Publish) -> None:
    """Embed, store and cluster an episode's insights, then announce each one with its cluster and related
    insights. A redelivered event upserts the same points and re-emits the stored assignment."""
    episode = event.payload.episode
    unique = list({i.insight_id: i for i in event.payload.insights}.values())
    if not unique:
        return
    outcomes = await clusterer.process([Item(episode, i) for i in unique])
    for insight, out in zip(unique, outcomes, strict=True):
        payload = InsightClusteredPayload(
            episode=episode,
            insight=insight,
            cluster_id=out.cluster_id,
            cluster_label=out.cluster_label,
            cluster_size=max(out.cluster_size, 1),
            cluster_shows=max(out.cluster_shows, 1),
            duplicate_of=out.duplicate_of,
            related=out.related,
            embedding_model=clusterer.model,
            vector=tuple(float(x) for x in out.vector),
        )
        await publish(
            new_event(
                InsightClustered,
                payload,
                key=str(episode.episode_id),
                correlation_id=event.correlation_id,
                event_id=event_id("insight.clustered", insight.insight_id),
            )
        )
