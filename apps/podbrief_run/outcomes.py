"""What one `podbrief run` did, feed by feed and episode by episode, read from where the pipeline records it:
the crawler's poll results, the bus (each stage's events and dead letters, keyed by episode id), and the stores
(ingest's rejected episodes, extraction's dropped insights, delivery's brief). Nothing here guesses: an episode
with no event past a stage and no dead letter is reported as unfinished."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeVar

from podbrief.bus import MemoryTransport, Record, dlq
from podbrief.clock import aware
from podbrief.errors import InvalidEventError
from podbrief.events import topics
from podbrief.events.base import Event
from podbrief.events.codec import decode
from podbrief.events.models import EpisodeRef, EpisodeTranscribed, InsightsExtracted
from podbrief.events.topics import dlq_topic
from podbrief.reasons import split_detail
from podbrief_ingest.models import Episode

from podbrief_run.layout import STAGES

FeedState = Literal["polled", "not_modified", "failed", "blocked", "skipped"]
EpisodeState = Literal["done", "failed", "rejected", "unfinished"]
Origin = Literal["new", "earlier", "replayed"]


@dataclass
class FeedOutcome:
    label: str  # what the user gave: a URL or a file
    url: str
    state: FeedState
    title: str | None = None
    reason: str | None = None
    message: str | None = None
    new: int = 0  # episodes sent on to transcription
    backlog: int = 0  # older episodes recorded but not processed (a feed's first poll takes the newest few)
    rejected: int = 0  # episodes ingest could not send on (no usable enclosure)
    stored: bool = False  # polled because of --all-feeds, not given this time
    feed_id: uuid.UUID | None = None


@dataclass
class EpisodeOutcome:
    episode_id: uuid.UUID
    feed_id: uuid.UUID | None
    show: str
    title: str
    state: EpisodeState
    origin: Origin = "new"
    stage: str | None = None  # where it failed or stopped
    reason: str | None = None
    message: str | None = None
    attempts: int | None = None
    transcript_source: str | None = None
    duration_s: float | None = None
    insights: int | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    in_brief: int = 0


@dataclass
class BriefSource:
    episode_id: uuid.UUID
    show: str
    title: str
    insights: int
    from_this_run: bool


@dataclass
class BriefOutcome:
    # composed: by this run; earlier: today's brief exists and was not composed again; none: no brief
    state: Literal["composed", "earlier", "none"]
    kind: str | None = None  # full | shorter | note
    composed_at: datetime | None = None
    subject: str = ""
    text: str = ""
    sources: list[BriefSource] = field(default_factory=list)
    html: Path | None = None
    eml: Path | None = None
    detail: str | None = None
    candidates: int | None = None  # insights of the run's feeds it was ranked from (when composed now)


@dataclass
class RunReport:
    feeds: list[FeedOutcome]
    episodes: list[EpisodeOutcome]
    brief: BriefOutcome
    timed_out: bool = False

    @property
    def processed(self) -> int:
        return sum(1 for e in self.episodes if e.state == "done")

    @property
    def brief_from_feeds(self) -> bool:
        return self.brief.state == "composed" and bool(self.brief.sources)

    def exit_code(self) -> int:
        """1 when something was tried (a feed failed, an episode came in) and nothing came of it: no episode
        processed and no brief composed from this run's feeds; else 0."""
        tried = bool(self.episodes) or any(f.state == "failed" for f in self.feeds) or self.timed_out
        if tried and self.processed == 0 and not self.brief_from_feeds:
            return 1
        return 0


# The bus at the start of the run ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BusMark:
    """Where each topic ended, and each stage's group had committed, when the run began: records past the end
    are this run's; discovered events between the commit and the end were left by an earlier run."""

    ends: Mapping[str, tuple[int, ...]]
    committed: Mapping[str, Mapping[int, int]]

    @classmethod
    def take(cls, transport: MemoryTransport) -> BusMark:
        names = [t for s in STAGES for t in (s.topic, dlq_topic(s.topic))]
        ends = {t: tuple(transport.end_offsets(t)) for t in names}
        committed = {
            s.topic: {p: off for (t, p), off in transport.committed(s.service).items() if t == s.topic} for s in STAGES
        }
        return cls(ends, committed)

    def is_new(self, r: Record) -> bool:
        ends = self.ends.get(r.topic, ())
        return r.offset >= (ends[r.partition] if r.partition < len(ends) else 0)

    def was_pending(self, r: Record) -> bool:
        return not self.is_new(r) and r.offset >= self.committed.get(r.topic, {}).get(r.partition, 0)


def _episode_of(r: Record) -> EpisodeRef | None:
    try:
        event: Event = decode(r.value)
    except InvalidEventError:
        return None
    episode = getattr(getattr(event, "payload", None), "episode", None)
    return episode if isinstance(episode, EpisodeRef) else None


def _by_key(records: Iterable[Record]) -> dict[str, Record]:
    """The last record of each key (episode id)."""
    return {r.key.decode(): r for r in records if r.key is not None}


def trace_episodes(transport: MemoryTransport, mark: BusMark) -> list[EpisodeOutcome]:
    """This run's episodes (discovered now, or left pending by an earlier run) and how far each got."""
    discovered = [r for r in transport.records(topics.EPISODE_DISCOVERED) if mark.is_new(r) or mark.was_pending(r)]
    now = {s.topic: _by_key(r for r in transport.records(s.topic) if mark.is_new(r)) for s in STAGES}
    dead = {s.topic: _by_key(r for r in transport.records(dlq_topic(s.topic)) if mark.is_new(r)) for s in STAGES}
    clustered_counts: dict[str, int] = {}
    for r in transport.records(topics.INSIGHT_CLUSTERED):
        if mark.is_new(r) and r.key is not None:
            clustered_counts[r.key.decode()] = clustered_counts.get(r.key.decode(), 0) + 1
    out: list[EpisodeOutcome] = []
    seen: set[str] = set()
    for r in discovered:
        ref = _episode_of(r)
        if ref is None or r.key is None or r.key.decode() in seen:
            continue
        key = r.key.decode()
        seen.add(key)
        origin: Origin = "new" if mark.is_new(r) else ("replayed" if r.header(dlq.REPLAYED_FROM) else "earlier")
        ep = EpisodeOutcome(ref.episode_id, ref.feed_id, ref.show, ref.title, "unfinished", origin=origin)
        out.append(ep)
        _follow(ep, key, now, dead, clustered_counts)
    return out


E = TypeVar("E", bound=Event)


def _published(now: Mapping[str, Mapping[str, Record]], topic: str, key: str, model: type[E]) -> E | None:
    """The event a stage published for episode `key` in this run, if it did."""
    rec = now[topic].get(key)
    if rec is None:
        return None
    event = decode(rec.value, model)
    assert isinstance(event, model)
    return event


def _follow(
    ep: EpisodeOutcome,
    key: str,
    now: Mapping[str, Mapping[str, Record]],
    dead: Mapping[str, Mapping[str, Record]],
    clustered: Mapping[str, int],
) -> None:
    """Walk the stages, each consuming the topic the last one published; stop at a dead letter or a gap."""
    for stage in STAGES:
        letter = dead[stage.topic].get(key)
        if letter is not None:
            d = dlq.DeadLetter(letter)
            ep.state, ep.stage, ep.reason = "failed", stage.service, d.reason
            ep.message, ep.attempts = d.message, d.attempts
            return
        if stage.service == "transcription":
            t = _published(now, topics.EPISODE_TRANSCRIBED, key, EpisodeTranscribed)
            if t is None:
                ep.stage = stage.service
                return
            ep.transcript_source, ep.duration_s = t.payload.source, t.payload.duration_s
        elif stage.service == "extraction":
            x = _published(now, topics.INSIGHTS_EXTRACTED, key, InsightsExtracted)
            if x is None:
                ep.stage = stage.service
                return
            ep.insights = len(x.payload.insights)
            if not x.payload.insights:
                break  # nothing to cluster or rank: the episode is through
        elif stage.service == "clustering" and clustered.get(key, 0) < (ep.insights or 0):
            ep.stage = stage.service
            return
        # delivery stores what clustering published; its failures are dead letters, checked above.
    ep.state, ep.stage = "done", None


def rejected_episodes(rows: Iterable[Episode], since: datetime) -> list[EpisodeOutcome]:
    """Episodes ingest recorded as rejected (no usable enclosure) during this run, from its episode rows."""
    out = []
    for row in rows:
        if row.status != "rejected" or aware(row.discovered_at) < since:
            continue
        code, detail = split_detail(row.error or "")
        out.append(
            EpisodeOutcome(
                row.id,
                row.feed_id,
                "",
                row.title,
                "rejected",
                stage="ingest",
                reason=code or "no_enclosure",
                message=detail or None,
            )
        )
    return out


def brief_sources(
    items: Iterable[tuple[uuid.UUID, str, str]], episodes: Collection[EpisodeOutcome]
) -> list[BriefSource]:
    """The episodes a brief drew on, in order of first appearance, with how many of its insights each gave."""
    mine = {e.episode_id for e in episodes}
    counts: dict[uuid.UUID, BriefSource] = {}
    for episode_id, show, title in items:
        src = counts.get(episode_id)
        if src is None:
            counts[episode_id] = BriefSource(episode_id, show, title, 1, episode_id in mine)
        else:
            src.insights += 1
    return list(counts.values())
