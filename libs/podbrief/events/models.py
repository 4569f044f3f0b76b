"""The five events of the pipeline and their payloads.

ingest --EpisodeDiscovered--> transcription --EpisodeTranscribed--> extraction --InsightsExtracted-->
clustering --InsightClustered (one per insight)--> delivery --BriefDelivered--> (analytics, audit)

Each event carries everything the next stage needs (the transcript travels inside, zstd-compressed), so any
topic can be replayed without reaching back into another service's store.
"""

from __future__ import annotations

import base64
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

import orjson
import zstandard
from pydantic import AnyHttpUrl, AwareDatetime, Field

from podbrief.events.base import Event, Frozen

Url = Annotated[str, Field(max_length=4096)]


class Word(Frozen):
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str
    probability: float | None = Field(default=None, ge=0, le=1)


class Segment(Frozen):
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    text: str
    speaker: str | None = None
    words: tuple[Word, ...] = ()


class Transcript(Frozen):
    """The transcript format every stage shares, whether from Whisper or from the publisher."""

    text: str
    language: str | None = None
    language_probability: float | None = None
    duration_s: float = Field(ge=0)
    segments: tuple[Segment, ...] = ()
    source: Literal["whisper", "publisher"] = "whisper"
    model: str | None = None
    rtf: float | None = Field(default=None, description="processing seconds per audio second")


class PackedTranscript(Frozen):
    """A transcript as it travels on the bus: zstd-compressed JSON, base64 in the event's JSON."""

    codec: Literal["zstd+json"] = "zstd+json"
    data: str = Field(description="base64 of the zstd-compressed transcript JSON")

    @classmethod
    def pack(cls, transcript: Transcript) -> PackedTranscript:
        raw = zstandard.ZstdCompressor(level=6).compress(orjson.dumps(transcript.model_dump(mode="json")))
        return cls(data=base64.b64encode(raw).decode("ascii"))

    def unpack(self) -> Transcript:
        raw = zstandard.ZstdDecompressor().decompress(base64.b64decode(self.data), max_output_size=256 << 20)
        return Transcript.model_validate(orjson.loads(raw))


class TranscriptLink(Frozen):
    """A `podcast:transcript` tag."""

    url: Url
    type: str = Field(max_length=200, description="MIME type, e.g. text/vtt, application/srt")
    language: str | None = None
    rel: str | None = None


class Chapter(Frozen):
    start_s: float = Field(ge=0)
    title: str


class Person(Frozen):
    """A `podcast:person` of the feed or the episode: who hosts it, who is a guest."""

    name: str = Field(min_length=1, max_length=200)
    role: str | None = Field(default=None, max_length=100, description="host, guest, ... (Podcasting 2.0 taxonomy)")
    group: str | None = Field(default=None, max_length=100)
    href: Url | None = None


class EpisodeRef(Frozen):
    """What every downstream stage needs to show and link an episode."""

    episode_id: uuid.UUID
    feed_id: uuid.UUID
    feed_url: Url
    show: str = Field(max_length=1000)
    title: str = Field(max_length=2000)
    link: Url | None = Field(default=None, description="the episode's web page")
    enclosure_url: Url | None = None
    published_at: AwareDatetime | None = None
    language: str | None = None
    # Hosts and guests named by the feed: extraction names who said what even when the transcript cannot.
    people: tuple[Person, ...] = Field(default=(), max_length=50)


class EpisodeDiscoveredPayload(Frozen):
    episode: EpisodeRef
    guid: str = Field(max_length=2000)
    description: str = Field(default="", max_length=20_000)
    enclosure_type: str | None = None
    enclosure_length: int | None = Field(default=None, ge=0)
    duration_s: float | None = Field(default=None, ge=0)
    transcripts: tuple[TranscriptLink, ...] = ()
    chapters_url: Url | None = None
    chapters: tuple[Chapter, ...] = ()
    # A publisher transcript fetched by ingest; when present transcription skips the model.
    transcript: PackedTranscript | None = None


class EpisodeDiscovered(Event):
    event_type: Literal["episode.discovered"] = "episode.discovered"
    payload: EpisodeDiscoveredPayload


class EpisodeTranscribedPayload(Frozen):
    episode: EpisodeRef
    transcript: PackedTranscript
    source: Literal["whisper", "publisher"]
    duration_s: float = Field(ge=0)
    language: str | None = None
    chapters: tuple[Chapter, ...] = ()


class EpisodeTranscribed(Event):
    event_type: Literal["episode.transcribed"] = "episode.transcribed"
    payload: EpisodeTranscribedPayload


class InsightKind(StrEnum):
    CLAIM = "claim"
    PREDICTION = "prediction"
    ADVICE = "advice"
    DATA_POINT = "data_point"
    STORY = "story"


class Insight(Frozen):
    insight_id: uuid.UUID
    text: str = Field(min_length=1, max_length=1000)
    quote: str = Field(min_length=1, max_length=2000, description="verbatim from the transcript")
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    speaker: str | None = Field(default=None, max_length=200)
    topics: tuple[str, ...] = Field(default=(), max_length=10)
    importance: float = Field(default=0.5, ge=0, le=1)
    kind: InsightKind = InsightKind.CLAIM
    grounding_score: float = Field(default=1.0, ge=0, le=1)
    prompt_version: str = "unknown"
    model: str | None = None


class InsightsExtractedPayload(Frozen):
    episode: EpisodeRef
    insights: tuple[Insight, ...]
    chunks_total: int = Field(ge=0)
    chunks_failed: int = Field(ge=0)
    model: str
    prompt_version: str


class InsightsExtracted(Event):
    event_type: Literal["insights.extracted"] = "insights.extracted"
    payload: InsightsExtractedPayload


class RelatedInsight(Frozen):
    insight_id: uuid.UUID
    text: str
    quote: str | None = None
    show: str
    episode_title: str
    episode_id: uuid.UUID
    start_s: float | None = None
    link: Url | None = None
    score: float = Field(ge=-1, le=1)


class InsightClusteredPayload(Frozen):
    episode: EpisodeRef
    insight: Insight
    cluster_id: uuid.UUID
    cluster_label: str = ""
    cluster_size: int = Field(ge=1)
    cluster_shows: int = Field(ge=1, description="distinct shows in the cluster")
    duplicate_of: uuid.UUID | None = None
    related: tuple[RelatedInsight, ...] = ()
    embedding_model: str
    # The insight's vector, so delivery ranks without a round trip to the vector store.
    vector: tuple[float, ...] = Field(default=(), max_length=8192)


class InsightClustered(Event):
    event_type: Literal["insight.clustered"] = "insight.clustered"
    payload: InsightClusteredPayload


class BriefDeliveredPayload(Frozen):
    brief_id: uuid.UUID
    subscriber_id: uuid.UUID
    brief_date: date
    insight_ids: tuple[uuid.UUID, ...]
    channel: Literal["email", "web", "api"] = "email"
    status: Literal["sent", "failed", "skipped"]
    message_id: str | None = None
    scheduled_for: datetime | None = None
    detail: str | None = None


class BriefDelivered(Event):
    event_type: Literal["brief.delivered"] = "brief.delivered"
    payload: BriefDeliveredPayload


class FeedWithdrawnPayload(Frozen):
    feed_id: uuid.UUID
    # blocked: the publisher asked aggregators to stop (podcast:block); removed: an operator deleted the feed.
    reason: Literal["blocked", "removed"]
    withdrawn_at: AwareDatetime


class FeedWithdrawn(Event):
    """A feed whose episodes must no longer be shown. Published again on every poll that still finds the
    block, so a lost message is repaired by the next one; consumers treat it as an idempotent upsert."""

    event_type: Literal["feed.withdrawn"] = "feed.withdrawn"
    payload: FeedWithdrawnPayload


ALL_EVENTS: tuple[type[Event], ...] = (
    EpisodeDiscovered,
    EpisodeTranscribed,
    InsightsExtracted,
    InsightClustered,
    BriefDelivered,
    FeedWithdrawn,
)

__all__ = ["ALL_EVENTS", "AnyHttpUrl"]
