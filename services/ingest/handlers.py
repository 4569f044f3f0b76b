"""The crawler: poll a feed, record what is new, emit EpisodeDiscovered through the outbox.

Emission is idempotent by construction: the episode's primary key is its deterministic id and its outbox row
is written in the same transaction, so whoever inserts the episode first owns its one event; the dispatcher
claims outbox rows with a conditional UPDATE, so two replicas never publish the same row at once."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from podbrief.errors import PermanentError, PipelineError, RetryableError
from podbrief.events import ids
from podbrief.events.base import Event, new_event
from podbrief.events.codec import decode, encode
from podbrief.events.models import (
    Chapter,
    EpisodeDiscovered,
    EpisodeDiscoveredPayload,
    EpisodeRef,
    PackedTranscript,
    Person,
    Transcript,
    TranscriptLink,
)
from podbrief.events.topics import EPISODE_DISCOVERED
from podbrief.netguard import FetchResult
from podbrief.transcripts import PREFERENCE, kind_of, parse_publisher_transcript
from podbrief_ingest.adapters import FEED_ACCEPT, Fetcher, IngestRepo, NewEpisode, utcnow
from podbrief_ingest.metrics import IngestMetrics
from podbrief_ingest.models import Feed
from podbrief_ingest.parser import ParsedFeed, ParsedItem, media_type, newest_first, parse_feed
from podbrief_ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Publish = Callable[[Event], Awaitable[None]]
# Writes a feed row's new state and frees its lease (at once, or batched with other feeds' outcomes).
Release = Callable[[uuid.UUID, dict[str, Any]], Awaitable[None]]


@dataclass
class PollResult:
    feed_id: uuid.UUID
    outcome: str  # ok | not_modified | error | blocked | skipped
    emitted: int = 0
    backlog: int = 0
    rejected: int = 0
    error: str | None = None
    reason: str | None = None


@dataclass
class PollReport:
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    failed: int = 0
    blocked: int = 0
    skipped: int = 0
    episodes_emitted: int = 0
    episodes_backlog: int = 0
    episodes_rejected: int = 0
    published: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, r: PollResult) -> None:
        self.feeds += 1
        if r.outcome == "ok":
            self.ok += 1
        elif r.outcome == "not_modified":
            self.not_modified += 1
        elif r.outcome == "blocked":
            self.blocked += 1
        elif r.outcome == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            self.errors[str(r.feed_id)] = r.error or "unknown error"
        self.episodes_emitted += r.emitted
        self.episodes_backlog += r.backlog
        self.episodes_rejected += r.rejected


# Pure decisions ---------------------------------------------------------------------------------------
def plan_items(
    items: Sequence[ParsedItem], known: set[uuid.UUID], *, backfilled: bool, backfill_limit: int
) -> tuple[list[ParsedItem], list[ParsedItem]]:
    """(to emit, to record as backlog) among the items not seen before. A feed's first poll emits only its
    `backfill_limit` newest items; after that every new item is emitted."""
    new = [it for it in newest_first(tuple(items)) if it.episode_id not in known]
    if backfilled or backfill_limit < 0:
        return new, []
    return new[:backfill_limit], new[backfill_limit:]


def cadence_interval(
    items: Sequence[ParsedItem], settings: IngestSettings, update_frequency: dict[str, str] | None
) -> float:
    """How often to poll, from how often the feed publishes: a quarter of the median gap between its
    recent episodes, within the configured bounds. A feed marked complete is polled as rarely as allowed."""
    lo, hi = float(settings.min_poll_interval_s), float(settings.max_poll_interval_s)
    if update_frequency and update_frequency.get("complete", "").lower() == "true":
        return hi
    dates = sorted((it.published_at for it in items if it.published_at), reverse=True)[:20]
    gaps = [(a - b).total_seconds() for a, b in itertools.pairwise(dates) if a > b]
    if len(gaps) < 2:
        return min(hi, max(lo, float(settings.poll_interval_s)))
    return min(hi, max(lo, float(statistics.median(gaps)) / 4))


def jittered(now: datetime, interval_s: float, jitter: float, rng: random.Random) -> datetime:
    return now + timedelta(seconds=interval_s * rng.uniform(1 - jitter, 1 + jitter))


def backoff_s(error_count: int, settings: IngestSettings) -> float:
    return float(min(settings.error_backoff_max_s, settings.error_backoff_base_s * 2 ** max(0, error_count - 1)))


def transcript_candidates(links: Sequence[TranscriptLink]) -> list[TranscriptLink]:
    """Links worth fetching, best format first (timed formats keep the timestamps insights link to)."""
    ranked = [(PREFERENCE.index(k), i, link) for i, link in enumerate(links) if (k := kind_of(link.type)) is not None]
    return [link for _, _, link in sorted(ranked, key=lambda t: (t[0], t[1]))]


def parse_chapters(body: bytes) -> tuple[Chapter, ...]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PermanentError("chapters JSON is malformed", reason="bad_chapters") from exc
    raw = data.get("chapters") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise PermanentError("chapters JSON has no chapters list", reason="bad_chapters")
    out = []
    for ch in raw:
        if not isinstance(ch, dict) or ch.get("toc") is False:
            continue
        try:
            start = float(ch.get("startTime", 0))
        except (TypeError, ValueError):
            continue
        title = str(ch.get("title") or "").strip()
        if title and start >= 0:
            out.append(Chapter(start_s=start, title=title[:500]))
    return tuple(sorted(out, key=lambda c: c.start_s))


def episode_people(item: ParsedItem, parsed: ParsedFeed) -> tuple[Person, ...]:
    """The episode's `podcast:person` tags, else the channel's (the Podcasting 2.0 rule); a person without a
    role is a host, as the namespace's taxonomy says."""
    out: list[Person] = []
    for raw in (item.persons or parsed.persons)[:50]:
        name = " ".join(str(raw.get("name") or "").split())[:200]
        if not name:
            continue
        href = raw.get("href")
        out.append(
            Person(
                name=name,
                role=(str(raw.get("role") or "host").strip().lower() or "host")[:100],
                group=(str(raw["group"]).strip()[:100] or None) if raw.get("group") else None,
                href=href
                if isinstance(href, str) and href.startswith(("http://", "https://")) and len(href) <= 4096
                else None,
            )
        )
    return tuple(out)


def discovered_event_id(episode: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(ids.NAMESPACE, f"episode.discovered:{episode}")


def build_event(
    feed: Feed,
    parsed: ParsedFeed,
    item: ParsedItem,
    *,
    transcript: Transcript | None,
    chapters: tuple[Chapter, ...],
) -> EpisodeDiscovered:
    ref = EpisodeRef(
        episode_id=item.episode_id,
        feed_id=feed.id,
        feed_url=feed.source_url,
        show=parsed.title[:1000],
        title=item.title[:2000],
        link=item.link if item.link and len(item.link) <= 4096 else None,
        enclosure_url=item.enclosure_url,
        published_at=item.published_at,
        language=item.language,
        people=episode_people(item, parsed),
    )
    payload = EpisodeDiscoveredPayload(
        episode=ref,
        guid=item.guid[:2000],
        description=item.description[:20_000],
        enclosure_type=media_type(item.enclosure_type, item.enclosure_url) or item.enclosure_type,
        enclosure_length=item.enclosure_length,
        duration_s=item.duration_s,
        transcripts=item.transcripts,
        chapters_url=item.chapters_url,
        chapters=chapters,
        transcript=PackedTranscript.pack(transcript) if transcript is not None else None,
    )
    # Deterministic ids: a re-emission after a crash carries the same event id, so consumers can dedupe, and
    # the episode id doubles as the correlation id that follows it down the pipeline.
    return new_event(
        EpisodeDiscovered,
        payload,
        key=str(item.episode_id),
        event_id=discovered_event_id(item.episode_id),
        correlation_id=item.episode_id,
    )


def episode_row(
    feed_id: uuid.UUID,
    item: ParsedItem,
    *,
    status: str,
    now: datetime,
    error: str | None = None,
    transcript_source: str | None = None,
    transcript_error: str | None = None,
) -> dict[str, Any]:
    return {
        "id": item.episode_id,
        "feed_id": feed_id,
        "guid": item.guid,
        "title": item.title,
        "link": item.link,
        "published_at": item.published_at,
        "sort_at": item.published_at or now,
        "enclosure_url": item.enclosure_url,
        "enclosure_type": item.enclosure_type,
        "enclosure_length": item.enclosure_length,
        "duration_s": item.duration_s,
        "transcripts": [t.model_dump(mode="json") for t in item.transcripts],
        "chapters_url": item.chapters_url,
        "persons": list(item.persons),
        "transcript_source": transcript_source,
        "transcript_error": transcript_error,
        "status": status,
        "error": error,
        "discovered_at": now,
    }


def feed_meta(parsed: ParsedFeed) -> dict[str, Any]:
    return {
        "description": parsed.description[:5000],
        "persons": list(parsed.persons)[:50],
        "locked_owner": parsed.locked_owner,
        "guid_declared": parsed.guid_declared,
        "items_in_document": len(parsed.items),
        "skipped_items": parsed.skipped,
        "warnings": list(parsed.warnings),
    }


def short(exc: BaseException) -> str:
    return str(exc)[:1000] or type(exc).__name__


# The crawler ------------------------------------------------------------------------------------------
@dataclass
class Crawler:
    repo: IngestRepo
    fetcher: Fetcher
    publish: Publish | None
    settings: IngestSettings
    metrics: IngestMetrics
    owner: str
    rng: random.Random = field(default_factory=random.Random)
    # Serialises publishing within a replica; across replicas the outbox claims do.
    _dispatch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _inflight: dict[uuid.UUID, asyncio.Future[PollResult]] = field(default_factory=dict)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.settings.max_concurrent_polls)

    # Adding feeds -------------------------------------------------------------------------------------
    async def fetch_and_parse(
        self, url: str, *, identity: str | None = None, headers: dict[str, str] | None = None
    ) -> tuple[FetchResult, ParsedFeed | None]:
        result = await self.fetcher.get(
            url, max_bytes=self.settings.max_feed_bytes, accept=FEED_ACCEPT, headers=headers
        )
        if result.not_modified:
            return result, None
        return result, parse_feed(result.body, identity or url)

    async def add_feed(self, url: str, *, validate: bool = True) -> tuple[Feed, bool, PollResult | None]:
        """Register a feed. With `validate`, fetch and parse it first (raising PipelineError when it is not a
        usable feed) and process that document as its first poll. Returns (feed, created, first poll)."""
        url = url.strip()
        existing = await self.repo.feed_by_url(url)
        if existing is not None:
            return existing, False, None
        now = utcnow()
        fid = ids.feed_id(url)
        values: dict[str, Any] = {
            "id": fid,
            "source_url": url,
            "url": url,
            "status": "active",
            "locked": False,
            "meta": {},
            "moved_from": [],
            "backfilled": False,
            "poll_interval_s": self.settings.poll_interval_s,
            "next_poll_at": now,
            "error_count": 0,
            "polls": 0,
            "not_modified_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        if not validate:
            created = await self.repo.create_feed(values)
            feed = await self.repo.get_feed(fid)
            assert feed is not None
            return feed, created, None
        result, parsed = await self.fetch_and_parse(url)
        assert parsed is not None
        if parsed.blocked:
            raise PermanentError("the publisher blocks aggregators from this feed (podcast:block)", reason="blocked")
        values.update(title=parsed.title, link=parsed.link, language=parsed.language, podcast_guid=parsed.podcast_guid)
        created = await self.repo.create_feed(values)
        feed = await self.repo.get_feed(fid)
        assert feed is not None
        if not created:
            return feed, False, None
        first = await self.poll_feed(fid, prefetched=(result, parsed))
        feed = await self.repo.get_feed(fid) or feed
        return feed, True, first

    # Polling ------------------------------------------------------------------------------------------
    async def poll_feed(
        self, feed_id: uuid.UUID, *, prefetched: tuple[FetchResult, ParsedFeed] | None = None
    ) -> PollResult:
        """Poll one feed; never raises for anything a feed can do wrong (the outcome lands on its row).
        A poll of the same feed already running in this replica is joined rather than repeated."""
        running = self._inflight.get(feed_id)
        if running is not None:
            return await running
        task = asyncio.ensure_future(self._poll_slot(feed_id, prefetched))
        self._inflight[feed_id] = task
        task.add_done_callback(self._forget(feed_id))
        return await task

    def _forget(self, feed_id: uuid.UUID) -> Callable[[asyncio.Future[PollResult]], None]:
        def done(_task: asyncio.Future[PollResult]) -> None:
            self._inflight.pop(feed_id, None)

        return done

    async def _poll_slot(self, feed_id: uuid.UUID, prefetched: tuple[FetchResult, ParsedFeed] | None) -> PollResult:
        # Bounds the polls in flight (and so database connections wanted at once), however many are due.
        async with self._slots:
            return await self._poll_once(feed_id, prefetched)

    async def _poll_once(self, feed_id: uuid.UUID, prefetched: tuple[FetchResult, ParsedFeed] | None) -> PollResult:
        now = utcnow()
        if not await self.repo.claim_feed(feed_id, self.owner, now, self.settings.lease_s):
            return PollResult(feed_id, "skipped")
        feed = await self.repo.get_feed(feed_id)
        if feed is None:
            return PollResult(feed_id, "skipped")

        async def release(fid: uuid.UUID, values: dict[str, Any]) -> None:
            await self.repo.release_feed(fid, self.owner, values)

        return await self._run_claimed(feed, now, prefetched, release)

    async def _run_claimed(
        self, feed: Feed, now: datetime, prefetched: tuple[FetchResult, ParsedFeed] | None, release: Release
    ) -> PollResult:
        started = time.perf_counter()
        try:
            result = await self._poll(feed, now, prefetched, release)
        except PipelineError as exc:
            result = await self._failed(feed, now, exc, release)
        except Exception as exc:
            # A bug must not stop the crawl of every other feed; it is recorded on the feed and logged with
            # its traceback, and the feed backs off like any failing one.
            log.exception("feed poll crashed", extra={"feed_id": str(feed.id)})
            result = await self._failed(
                feed, now, PermanentError(f"internal error: {exc!r}", reason="internal"), release
            )
        self.metrics.polls.labels(result.outcome).inc()
        self.metrics.poll_seconds.observe(time.perf_counter() - started)
        if result.outcome == "not_modified":
            self.metrics.not_modified.inc()
        return result

    async def poll_many(self, feed_ids: Sequence[uuid.UUID]) -> list[PollResult]:
        """Poll many feeds with few database round trips: leases are taken in one statement per chunk, and
        the outcomes that change only the feed row (304s, failures, blocks) are written in one transaction
        per chunk. Feeds with new episodes write their own transaction, as in `poll_feed`."""
        results: list[PollResult] = []
        joined = [self._inflight[i] for i in feed_ids if i in self._inflight]
        todo = [i for i in feed_ids if i not in self._inflight]
        for at in range(0, len(todo), 500):
            results += await self._poll_chunk(todo[at : at + 500])
        results += await asyncio.gather(*joined)
        return results

    async def _poll_chunk(self, chunk: Sequence[uuid.UUID]) -> list[PollResult]:
        now = utcnow()
        feeds = await self.repo.claim_feeds(chunk, self.owner, now, self.settings.lease_s)
        claimed = {f.id for f in feeds}
        results = [PollResult(i, "skipped") for i in chunk if i not in claimed]
        deferred: list[tuple[uuid.UUID, dict[str, Any]]] = []

        async def defer(fid: uuid.UUID, values: dict[str, Any]) -> None:
            deferred.append((fid, values))

        async def one(feed: Feed) -> PollResult:
            async with self._slots:
                return await self._run_claimed(feed, now, None, defer)

        tasks: dict[uuid.UUID, asyncio.Future[PollResult]] = {}
        for feed in feeds:
            task = asyncio.ensure_future(one(feed))
            tasks[feed.id] = self._inflight[feed.id] = task
            task.add_done_callback(self._forget(feed.id))
        try:
            results += await asyncio.gather(*tasks.values())
        finally:
            await self.repo.release_feeds(deferred, self.owner)
        return results

    async def _failed(self, feed: Feed, now: datetime, exc: PipelineError, release: Release) -> PollResult:
        count = feed.error_count + 1
        reason = exc.reason
        self.metrics.parse_failures.labels(reason).inc()
        status = "gone" if reason in ("http_410",) else "failing"
        await release(
            feed.id,
            {
                "status": status,
                "error_count": count,
                "last_error": short(exc),
                "last_error_reason": reason,
                "last_outcome": "error",
                "last_polled_at": now,
                "polls": feed.polls + 1,
                "updated_at": now,
                "next_poll_at": jittered(now, backoff_s(count, self.settings), self.settings.poll_jitter, self.rng),
            },
        )
        log.warning(
            "feed poll failed",
            extra={
                "feed_id": str(feed.id),
                "reason": reason,
                "error_count": count,
                "retryable": isinstance(exc, RetryableError),
            },
        )
        return PollResult(feed.id, "error", error=short(exc), reason=reason)

    async def _poll(
        self,
        feed: Feed,
        now: datetime,
        prefetched: tuple[FetchResult, ParsedFeed] | None,
        release: Release,
    ) -> PollResult:
        s = self.settings
        fetched: FetchResult
        parsed_or_none: ParsedFeed | None
        if prefetched is not None:
            fetched, parsed_or_none = prefetched
        else:
            cond: dict[str, str] = {}
            if feed.etag:
                cond["If-None-Match"] = feed.etag
            if feed.last_modified:
                cond["If-Modified-Since"] = feed.last_modified
            fetched, parsed_or_none = await self.fetch_and_parse(feed.url, identity=feed.source_url, headers=cond)
        base: dict[str, Any] = {
            "last_polled_at": now,
            "polls": feed.polls + 1,
            "updated_at": now,
            "error_count": 0,
            "last_error": None,
            "last_error_reason": None,
        }
        moved = list(feed.moved_from or [])
        url = feed.url
        if fetched.permanent_url and fetched.permanent_url != url:
            moved.append(url)
            url = fetched.permanent_url
        if parsed_or_none is None:
            interval = min(s.max_poll_interval_s, feed.poll_interval_s * 1.25)
            await release(
                feed.id,
                {
                    **base,
                    "status": "active",
                    "last_outcome": "not_modified",
                    "url": url,
                    "moved_from": moved,
                    "not_modified_count": feed.not_modified_count + 1,
                    "last_success_at": now,
                    "poll_interval_s": interval,
                    "next_poll_at": jittered(now, interval, s.poll_jitter, self.rng),
                },
            )
            return PollResult(feed.id, "not_modified")
        parsed = parsed_or_none
        values: dict[str, Any] = {
            **base,
            "title": parsed.title,
            "link": parsed.link,
            "language": parsed.language,
            "podcast_guid": parsed.podcast_guid,
            "locked": parsed.locked,
            "meta": feed_meta(parsed),
            "update_frequency": orjson.dumps(parsed.update_frequency).decode() if parsed.update_frequency else None,
            "etag": fetched.headers.get("etag"),
            "last_modified": fetched.headers.get("last-modified"),
            "last_success_at": now,
        }
        if (
            parsed.new_feed_url
            and parsed.new_feed_url.startswith(("http://", "https://"))
            and parsed.new_feed_url not in (url, *moved)
        ):
            # itunes:new-feed-url: the publisher moved the feed. Items keep their ids (they hash the source
            # URL), and the next poll, soon, reads the new location without stale validators.
            moved.append(url)
            url = parsed.new_feed_url
            values.update(etag=None, last_modified=None)
            log.info("feed moved", extra={"feed_id": str(feed.id), "to": url})
        values.update(url=url, moved_from=moved)
        if parsed.blocked:
            await release(
                feed.id,
                {
                    **values,
                    "status": "blocked",
                    "last_outcome": "blocked",
                    "poll_interval_s": s.max_poll_interval_s,
                    "next_poll_at": jittered(now, s.max_poll_interval_s, s.poll_jitter, self.rng),
                },
            )
            return PollResult(feed.id, "blocked")

        all_ids = [it.episode_id for it in parsed.items]
        known = await self.repo.known_episodes(feed.id, all_ids)
        emit, backlog = plan_items(parsed.items, known, backfilled=feed.backfilled, backfill_limit=s.backfill_limit)
        rows: list[NewEpisode] = [
            NewEpisode(episode_row(feed.id, it, status="backlog", now=now), None) for it in backlog
        ]
        prepared = await asyncio.gather(*(self._prepare(feed, parsed, it, now) for it in emit))
        rows.extend(prepared)
        emitted = sum(1 for r in prepared if r.outbox is not None)
        rejected = len(prepared) - emitted
        interval = cadence_interval(parsed.items, s, parsed.update_frequency)
        if not emit and moved == list(feed.moved_from or []):
            interval = min(s.max_poll_interval_s, max(interval, feed.poll_interval_s * 1.25))
        values.update(
            status="active",
            last_outcome="ok",
            backfilled=True,
            poll_interval_s=interval,
            next_poll_at=now
            if url != feed.url and parsed.new_feed_url == url
            else jittered(now, interval, s.poll_jitter, self.rng),
        )
        if emit:
            values["last_new_episode_at"] = now
        outbox_ids = await self.repo.record_episodes(rows, feed.id, self.owner, values)
        for status, n in (("emitted", len(outbox_ids)), ("backlog", len(backlog)), ("rejected", rejected)):
            if n:
                self.metrics.episodes.labels(status).inc(n)
        if outbox_ids:
            await self.dispatch(outbox_ids)
        log.info(
            "feed polled",
            extra={
                "feed_id": str(feed.id),
                "items": len(parsed.items),
                "new": len(emit),
                "emitted": len(outbox_ids),
                "backlog": len(backlog),
                "rejected": rejected,
            },
        )
        return PollResult(feed.id, "ok", emitted=len(outbox_ids), backlog=len(backlog), rejected=rejected)

    async def _prepare(self, feed: Feed, parsed: ParsedFeed, item: ParsedItem, now: datetime) -> NewEpisode:
        problem = item.media_problem()
        if problem is not None:
            return NewEpisode(episode_row(feed.id, item, status="rejected", now=now, error=problem), None)
        transcript, transcript_error = await self._transcript(item)
        chapters: tuple[Chapter, ...] = ()
        if item.chapters_url and self.settings.fetch_chapters:
            try:
                res = await self.fetcher.get(
                    item.chapters_url,
                    max_bytes=self.settings.max_chapters_bytes,
                    accept="application/json+chapters, application/json;q=0.9, */*;q=0.1",
                )
                chapters = parse_chapters(res.body)
            except PipelineError as exc:
                log.info("chapters not usable", extra={"episode_id": str(item.episode_id), "reason": exc.reason})
        event = build_event(feed, parsed, item, transcript=transcript, chapters=chapters)
        row = episode_row(
            feed.id,
            item,
            status="emitted",
            now=now,
            transcript_source="publisher" if transcript is not None else "audio",
            transcript_error=transcript_error,
        )
        outbox = {
            "event_id": event.event_id,
            "episode_id": item.episode_id,
            "topic": EPISODE_DISCOVERED,
            "event": encode(event).decode(),
            "created_at": now,
            "attempts": 0,
        }
        return NewEpisode(row, outbox)

    async def _transcript(self, item: ParsedItem) -> tuple[Transcript | None, str | None]:
        """The best publisher transcript that fetches and parses; on failure the audio path is taken."""
        if not self.settings.fetch_transcripts or not item.transcripts:
            return None, None
        errors: list[str] = []
        for link in transcript_candidates(item.transcripts):
            try:
                res = await self.fetcher.get(
                    link.url, max_bytes=self.settings.max_transcript_bytes, accept=f"{link.type}, */*;q=0.1"
                )
                # The tag's declared type wins over the server's, which is often text/plain or octet-stream.
                t = parse_publisher_transcript(
                    res.body,
                    link.type or res.content_type,
                    language=link.language or item.language,
                    duration_s=item.duration_s,
                )
                self.metrics.transcripts.labels("ok").inc()
                # Earlier candidates that failed are still worth recording for the publisher.
                return t, "; ".join(errors)[:2000] or None
            except PipelineError as exc:
                self.metrics.transcripts.labels("failed").inc()
                errors.append(f"{link.type} {exc.reason}: {short(exc)[:200]}")
        return None, "; ".join(errors)[:2000] or "no supported transcript type"

    async def poll_due(self) -> PollReport:
        report = PollReport()
        for r in await self.poll_many(await self.repo.due_feeds(utcnow(), self.settings.poll_batch)):
            report.add(r)
        return report

    async def poll_all(self) -> PollReport:
        report = PollReport()
        for r in await self.poll_many(await self.repo.all_feed_ids()):
            report.add(r)
        report.published = await self.dispatch()
        return report

    # Outbox -------------------------------------------------------------------------------------------
    async def dispatch(self, outbox_ids: Sequence[int] | None = None) -> int:
        """Publish unsent outbox rows this replica can claim (the given ones, or every unsent row); returns
        how many it published. Without a publisher (the local CLI) rows stay for the service to send."""
        if self.publish is None:
            return 0
        published = 0
        async with self._dispatch_lock:
            while True:
                batch = list(outbox_ids) if outbox_ids is not None else await self.repo.unsent_outbox(utcnow(), 500)
                sent_now = await self._publish_batch(batch, self.publish)
                published += sent_now
                if outbox_ids is not None or len(batch) < 500 or sent_now == 0:
                    break
        self.metrics.outbox_pending.set(await self.repo.pending_count())
        return published

    async def _publish_batch(self, batch: Sequence[int], publish: Publish) -> int:
        claimed = await self.repo.claim_outbox(batch, self.owner, utcnow(), self.settings.lease_s)
        sent: list[int] = []
        try:
            for oid, raw in claimed:
                try:
                    await publish(decode(raw.encode(), EpisodeDiscovered))
                except Exception as exc:
                    # Left unsent: the next sweep (here or on another replica) tries again.
                    await self.repo.release_outbox(oid, self.owner, short(exc))
                    log.warning("publish failed; will retry", extra={"outbox_id": oid, "error": short(exc)})
                    continue
                sent.append(oid)
        finally:
            # Marked in one statement; a crash before this re-publishes the same event ids after the lease,
            # which consumers dedupe (at-least-once, never lost).
            await self.repo.mark_sent(sent, self.owner, utcnow())
        return len(sent)
