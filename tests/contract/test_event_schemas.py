"""The event contracts: snapshots, round trips, forward compatibility and validation."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import jsonschema
import pytest
from podbrief.errors import InvalidEventError
from podbrief.events import (
    ALL_EVENTS,
    BriefDelivered,
    BriefDeliveredPayload,
    EpisodeDiscovered,
    EpisodeDiscoveredPayload,
    EpisodeRef,
    EpisodeTranscribed,
    EpisodeTranscribedPayload,
    Insight,
    InsightClustered,
    InsightClusteredPayload,
    InsightsExtracted,
    InsightsExtractedPayload,
    PackedTranscript,
    RelatedInsight,
    Segment,
    Transcript,
    Word,
    decode,
    encode,
    episode_id,
    feed_id,
    insight_id,
    new_event,
    topic_for,
)
from podbrief.events.base import Event
from podbrief.events.schemas import event_schema, render, snapshot_path

pytestmark = pytest.mark.contract

FEED = "https://mp3s.nashownotes.com/pc20rss.xml"
EP = episode_id(FEED, "guid-1")
REF = EpisodeRef(
    episode_id=EP,
    feed_id=feed_id(FEED),
    feed_url=FEED,
    show="Podcasting 2.0",
    title="Episode 1",
    link="https://example.org/ep1",
    enclosure_url="https://example.org/ep1.mp3",
    published_at=datetime(2026, 11, 1, tzinfo=UTC),
)
TRANSCRIPT = Transcript(
    text="ask not what your country can do for you",
    language="en",
    duration_s=11.0,
    segments=(
        Segment(
            start_s=0.0,
            end_s=10.5,
            text="ask not what your country can do for you",
            words=(Word(start_s=0.0, end_s=0.4, text="ask"),),
        ),
    ),
)
INSIGHT = Insight(
    insight_id=insight_id(EP, "ask not", 3.0),
    text="JFK asked citizens to serve their country.",
    quote="ask not what your country can do for you",
    start_s=3.0,
    end_s=6.0,
    topics=("civics",),
    importance=0.7,
    prompt_version="insights-v1",
)


def examples() -> list[Event]:
    """One example per event, as a producer would build it."""
    return [
        new_event(
            EpisodeDiscovered,
            EpisodeDiscoveredPayload(episode=REF, guid="guid-1", transcript=PackedTranscript.pack(TRANSCRIPT)),
            key=str(EP),
            correlation_id=EP,
        ),
        new_event(
            EpisodeTranscribed,
            EpisodeTranscribedPayload(
                episode=REF,
                transcript=PackedTranscript.pack(TRANSCRIPT),
                source="whisper",
                duration_s=11.0,
                language="en",
            ),
            key=str(EP),
            correlation_id=EP,
        ),
        new_event(
            InsightsExtracted,
            InsightsExtractedPayload(
                episode=REF,
                insights=(INSIGHT,),
                chunks_total=1,
                chunks_failed=0,
                model="smollm2",
                prompt_version="insights-v1",
            ),
            key=str(EP),
            correlation_id=EP,
        ),
        new_event(
            InsightClustered,
            InsightClusteredPayload(
                episode=REF,
                insight=INSIGHT,
                cluster_id=uuid.uuid4(),
                cluster_label="civics",
                cluster_size=2,
                cluster_shows=2,
                related=(
                    RelatedInsight(
                        insight_id=uuid.uuid4(),
                        text="t",
                        show="Other",
                        episode_title="E",
                        episode_id=uuid.uuid4(),
                        score=0.8,
                    ),
                ),
                embedding_model="minilm",
                vector=(0.1, 0.2),
            ),
            key=str(EP),
            correlation_id=EP,
        ),
        new_event(
            BriefDelivered,
            BriefDeliveredPayload(
                brief_id=uuid.uuid4(),
                subscriber_id=uuid.uuid4(),
                brief_date=datetime(2026, 11, 2).date(),
                insight_ids=(INSIGHT.insight_id,),
                status="sent",
            ),
            key="sub",
            correlation_id=uuid.uuid4(),
        ),
    ]


@pytest.mark.parametrize("model", ALL_EVENTS, ids=lambda m: m.__name__)
def test_schema_matches_committed_snapshot(model: type[Event]) -> None:
    path = snapshot_path(model)
    assert path.exists(), f"no snapshot for {model.__name__}: run `make schemas` and commit {path.name}"
    assert render(event_schema(model)) == path.read_text(), (
        f"{model.__name__} drifted from {path.name}. An additive optional field keeps the version: refresh the "
        "snapshot with `make schemas`. A breaking change needs a new model and a .v2 topic."
    )


@pytest.mark.parametrize("event", examples(), ids=lambda e: e.event_type)
def test_examples_round_trip_and_conform_to_the_snapshot(event: Event) -> None:
    raw = encode(event)
    schema = json.loads(snapshot_path(type(event)).read_text())
    jsonschema.validate(json.loads(raw), schema)
    assert decode(raw) == event
    assert decode(raw, type(event)) == event
    assert schema["x-topic"] == topic_for(event.event_type)


def test_events_are_frozen() -> None:
    event = examples()[0]
    with pytest.raises(Exception, match="frozen"):
        event.key = "other"  # type: ignore[misc]


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    event = examples()[2]
    data = json.loads(encode(event))
    data["added_in_a_later_version"] = {"x": 1}
    data["payload"]["another_new_field"] = 3
    assert decode(json.dumps(data).encode()) == event


@pytest.mark.parametrize(
    "raw", [b"not json", b"{}", b'{"event_type": "episode.discovered"}', b'{"event_type": "no.such.event"}']
)
def test_malformed_messages_are_invalid_events(raw: bytes) -> None:
    with pytest.raises(InvalidEventError):
        decode(raw)


def test_occurred_at_must_be_timezone_aware() -> None:
    data = json.loads(encode(examples()[4]))
    data["occurred_at"] = "2026-11-02T10:00:00"
    with pytest.raises(InvalidEventError):
        decode(json.dumps(data).encode())


def test_ids_are_deterministic() -> None:
    assert episode_id(FEED, "guid-1") == episode_id(FEED, " guid-1 ")
    assert episode_id(FEED, "guid-1") != episode_id(FEED, "guid-2")
    assert episode_id(FEED, None, "https://x/a.mp3") == episode_id(FEED, "", "https://x/a.mp3")
    assert insight_id(EP, "Ask not, what!", 3.2) == insight_id(EP, "ask not what", 3.9)
    with pytest.raises(ValueError):
        episode_id(FEED, None, None)


def test_packed_transcript_round_trips_and_is_compressed() -> None:
    long = Transcript(
        text="word " * 5000,
        duration_s=3600,
        segments=tuple(Segment(start_s=i, end_s=i + 1, text="word " * 5) for i in range(1000)),
    )
    packed = PackedTranscript.pack(long)
    assert packed.unpack() == long
    assert len(packed.data) < len(long.model_dump_json()) / 5
