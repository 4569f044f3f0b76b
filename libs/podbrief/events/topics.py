"""Versioned topic names. A breaking change gets a new model and a `.v2` topic, with dual publishing."""

from __future__ import annotations

EPISODE_DISCOVERED = "podbrief.episode.discovered.v1"
EPISODE_TRANSCRIBED = "podbrief.episode.transcribed.v1"
INSIGHTS_EXTRACTED = "podbrief.insights.extracted.v1"
INSIGHT_CLUSTERED = "podbrief.insight.clustered.v1"
BRIEF_DELIVERED = "podbrief.brief.delivered.v1"
FEED_WITHDRAWN = "podbrief.feed.withdrawn.v1"

TOPICS: dict[str, str] = {
    "episode.discovered": EPISODE_DISCOVERED,
    "episode.transcribed": EPISODE_TRANSCRIBED,
    "insights.extracted": INSIGHTS_EXTRACTED,
    "insight.clustered": INSIGHT_CLUSTERED,
    "brief.delivered": BRIEF_DELIVERED,
    "feed.withdrawn": FEED_WITHDRAWN,
}


def topic_for(event_type: str) -> str:
    try:
        return TOPICS[event_type]
    except KeyError:
        raise ValueError(f"no topic for event type {event_type!r}") from None


def dlq_topic(topic: str) -> str:
    return topic + ".dlq"
