"""The crawler: add feeds, poll them, record what is new, and hand its events to the outbox.

Emission is idempotent by construction: an episode's primary key is its deterministic id and its outbox row is
written in the same transaction, so whoever inserts the episode first owns its one event. A poll holds a lease
on its feed's row, so two replicas never poll the same feed at once.

A poll is decided (`_poll`: fetch, parse, plan, returning a typed `Polled`) and then written (`_record`): the
feed row alone for a 304, a block or a failure (batched with other feeds' outcomes by `poll_many`), or the
feed row with its new episodes and their outbox rows in one transaction."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson
from podbrief.clock import utcnow
from podbrief.errors import PermanentError, PipelineError, RetryableError
from podbrief.events import ids
from podbrief.events.codec import encode
from podbrief.events.models import Chapter, Transcript
from podbrief.events.topics import EPISODE_DISCOVERED
from podbrief.netfetch import FetchResult
from podbrief.reasons import split_detail
from podbrief.transcripts import parse_publisher_transcript
from podbrief_ingest.adapters.fetcher import FEED_ACCEPT, Fetcher
from podbrief_ingest.adapters.repo import IngestRepo, NewEpisode
from podbrief_ingest.episodes import (
    build_event,
    episode_row,
    feed_meta,
    parse_chapters,
    plan_items,
    transcript_candidates,
)
from podbrief_ingest.metrics import IngestMetrics
from podbrief_ingest.models import Feed, FeedUpdate, NewFeed
from podbrief_ingest.outbox import Outbox, short
from podbrief_ingest.parser import ParsedFeed, ParsedItem, parse_feed
from podbrief_ingest.schedule import backoff_s, cadence_interval, jittered
from podbrief_ingest.settings import IngestSettings

log = logging.getLogger(__name__)

# Writes a feed row's new state and frees its lease (at once, or batched with other feeds' outcomes).
Release = Callable[[uuid.UUID, FeedUpdate], Awaitable[None]]
Prefetched = tuple[FetchResult, ParsedFeed]
# Feeds leased (and their outcomes written) per statement by poll_many.
CHUNK = 500


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


@dataclass(frozen=True)
class Polled:
    """What one poll decided, before anything is written."""

    result: PollResult
    feed: FeedUpdate  # the feed row's new state
    # The document was read: these episodes (and their outbox rows) are written with the feed row, in one
    # transaction. None: only the feed row changes.
    episodes: tuple[NewEpisode, ...] | None = None
    items: int = 0  # items in the document
    new: int = 0  # of which not seen before


@dataclass
class Crawler:
    repo: IngestRepo
    fetcher: Fetcher
    outbox: Outbox
    settings: IngestSettings
    metrics: IngestMetrics
    owner: str
    rng: random.Random = field(default_factory=random.Random)
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
        # Relative URLs resolve against where the document came from (after redirects); the identity stays.
        parsed = parse_feed(result.body, identity or url, base_url=result.url, charset=result.charset)
        for reason, n in parsed.dropped.items():
            self.metrics.items_dropped.labels(reason).inc(n)
        for kind in {r.kind for r in parsed.repairs}:
            self.metrics.feeds_recovered.labels(kind).inc()
        return result, parsed

    async def add_feed(self, url: str, *, validate: bool = True) -> tuple[Feed, bool, PollResult | None]:
        """Register a feed. With `validate`, fetch and parse it first (raising PipelineError when it is not a
        usable feed) and process that document as its first poll. Returns (feed, created, first poll)."""
        url = url.strip()
        existing = await self.repo.feed_by_url(url)
        if existing is not None:
            return existing, False, None
        now = utcnow()
        fid = ids.feed_id(url)
        values: NewFeed = {
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
        values["title"], values["link"] = parsed.title, parsed.link
        values["language"], values["podcast_guid"] = parsed.language, parsed.podcast_guid
        created = await self.repo.create_feed(values)
        feed = await self.repo.get_feed(fid)
        assert feed is not None
        if not created:
            return feed, False, None
        first = await self.poll_feed(fid, prefetched=(result, parsed))
        feed = await self.repo.get_feed(fid) or feed
        return feed, True, first

    # Polling ------------------------------------------------------------------------------------------
    async def poll_feed(self, feed_id: uuid.UUID, *, prefetched: Prefetched | None = None) -> PollResult:
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

    async def _poll_slot(self, feed_id: uuid.UUID, prefetched: Prefetched | None) -> PollResult:
        # Bounds the polls in flight (and so database connections wanted at once), however many are due.
        async with self._slots:
            return await self._poll_once(feed_id, prefetched)

    async def _poll_once(self, feed_id: uuid.UUID, prefetched: Prefetched | None) -> PollResult:
        now = utcnow()
        if not await self.repo.claim_feed(feed_id, self.owner, now, self.settings.lease_s):
            return PollResult(feed_id, "skipped")
        feed = await self.repo.get_feed(feed_id)
        if feed is None:
            return PollResult(feed_id, "skipped")

        async def release(fid: uuid.UUID, values: FeedUpdate) -> None:
            await self.repo.release_feed(fid, self.owner, values)

        return await self._run_claimed(feed, now, prefetched, release)

    async def _run_claimed(
        self, feed: Feed, now: datetime, prefetched: Prefetched | None, release: Release
    ) -> PollResult:
        started = time.perf_counter()
        try:
            result = await self._record(feed, await self._poll(feed, now, prefetched), release)
        except PipelineError as exc:
            result = await self._record(feed, self._failed(feed, now, exc), release)
        except Exception as exc:
            # A bug must not stop the crawl of every other feed; it is recorded on the feed and logged with
            # its traceback, and the feed backs off like any failing one.
            log.exception("feed poll crashed", extra={"feed_id": str(feed.id)})
            failure = PermanentError(f"internal error: {exc!r}", reason="unexpected")
            result = await self._record(feed, self._failed(feed, now, failure), release)
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
        # Two chunks in flight: the next chunk's leases are taken while the last polls of the one before are
        # still waiting on slow hosts, so the polls in flight never drain to zero between chunks.
        window = asyncio.Semaphore(2)

        async def chunk(ids: Sequence[uuid.UUID]) -> list[PollResult]:
            async with window:
                return await self._poll_chunk(ids)

        for part in await asyncio.gather(*(chunk(todo[at : at + CHUNK]) for at in range(0, len(todo), CHUNK))):
            results += part
        results += await asyncio.gather(*joined)
        return results

    async def _poll_chunk(self, chunk: Sequence[uuid.UUID]) -> list[PollResult]:
        now = utcnow()
        feeds = await self.repo.claim_feeds(chunk, self.owner, now, self.settings.lease_s)
        claimed = {f.id for f in feeds}
        results = [PollResult(i, "skipped") for i in chunk if i not in claimed]
        deferred: list[tuple[uuid.UUID, FeedUpdate]] = []

        async def defer(fid: uuid.UUID, values: FeedUpdate) -> None:
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

    async def _record(self, feed: Feed, polled: Polled, release: Release) -> PollResult:
        """Write what a poll decided, and publish the events of the episodes it recorded."""
        if polled.episodes is None:
            await release(feed.id, polled.feed)
            if polled.result.outcome == "blocked":
                try:
                    await self.outbox.withdraw(feed.id, "blocked")
                except Exception:
                    # Not dropped: the next poll of this feed finds the block and publishes it again.
                    log.warning("feed withdrawal not published; the next poll retries", exc_info=True)
            return polled.result
        outbox_ids = await self.repo.record_episodes(polled.episodes, feed.id, self.owner, polled.feed)
        result = replace(polled.result, emitted=len(outbox_ids))
        for status, n in (("emitted", result.emitted), ("backlog", result.backlog), ("rejected", result.rejected)):
            if n:
                self.metrics.episodes.labels(status).inc(n)
        for ep in polled.episodes:
            if ep.row["status"] == "rejected":
                self.metrics.episodes_rejected.labels(split_detail(ep.row["error"] or "")[0] or "no_enclosure").inc()
        if outbox_ids:
            await self.outbox.dispatch(outbox_ids)
        log.info(
            "feed polled",
            extra={
                "feed_id": str(feed.id),
                "items": polled.items,
                "new": polled.new,
                "emitted": result.emitted,
                "backlog": result.backlog,
                "rejected": result.rejected,
            },
        )
        return result

    def _failed(self, feed: Feed, now: datetime, exc: PipelineError) -> Polled:
        count = feed.error_count + 1
        reason = exc.reason
        self.metrics.parse_failures.labels(reason).inc()
        log.warning(
            "feed poll failed",
            extra={
                "feed_id": str(feed.id),
                "reason": reason,
                "error_count": count,
                "retryable": isinstance(exc, RetryableError),
            },
        )
        update: FeedUpdate = {
            "status": "gone" if reason in ("http_410",) else "failing",
            "error_count": count,
            "last_error": short(exc),
            "last_error_reason": reason,
            "last_outcome": "error",
            "last_polled_at": now,
            "polls": feed.polls + 1,
            "updated_at": now,
            "next_poll_at": self._next(now, backoff_s(count, self.settings)),
        }
        return Polled(PollResult(feed.id, "error", error=short(exc), reason=reason), update)

    def _next(self, now: datetime, interval_s: float) -> datetime:
        return jittered(now, interval_s, self.settings.poll_jitter, self.rng)

    async def _poll(self, feed: Feed, now: datetime, prefetched: Prefetched | None) -> Polled:
        s = self.settings
        fetched: FetchResult
        parsed: ParsedFeed | None  # None: 304 Not Modified
        if prefetched is not None:
            fetched, parsed = prefetched
        else:
            cond: dict[str, str] = {}
            if feed.etag:
                cond["If-None-Match"] = feed.etag
            if feed.last_modified:
                cond["If-Modified-Since"] = feed.last_modified
            fetched, parsed = await self.fetch_and_parse(feed.url, identity=feed.source_url, headers=cond)
        update: FeedUpdate = {
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
        if parsed is None:
            interval = min(s.max_poll_interval_s, feed.poll_interval_s * 1.25)
            update.update(
                {
                    "status": "active",
                    "last_outcome": "not_modified",
                    "url": url,
                    "moved_from": moved,
                    "not_modified_count": feed.not_modified_count + 1,
                    "last_success_at": now,
                    "poll_interval_s": interval,
                    "next_poll_at": self._next(now, interval),
                }
            )
            return Polled(PollResult(feed.id, "not_modified"), update)
        update.update(
            {
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
        )
        if (
            parsed.new_feed_url
            and parsed.new_feed_url.startswith(("http://", "https://"))
            and parsed.new_feed_url not in (url, *moved)
        ):
            # itunes:new-feed-url: the publisher moved the feed. Items keep their ids (they hash the source
            # URL), and the next poll, soon, reads the new location without stale validators.
            moved.append(url)
            url = parsed.new_feed_url
            update.update({"etag": None, "last_modified": None})
            log.info("feed moved", extra={"feed_id": str(feed.id), "to": url})
        update.update({"url": url, "moved_from": moved})
        if parsed.blocked:
            update.update(
                {
                    "status": "blocked",
                    "last_outcome": "blocked",
                    "poll_interval_s": s.max_poll_interval_s,
                    "next_poll_at": self._next(now, s.max_poll_interval_s),
                }
            )
            return Polled(PollResult(feed.id, "blocked"), update)

        known = await self.repo.known_episodes(feed.id, [it.episode_id for it in parsed.items])
        emit, backlog = plan_items(parsed.items, known, backfilled=feed.backfilled, backfill_limit=s.backfill_limit)
        prepared = await asyncio.gather(*(self._prepare(feed, parsed, it, now) for it in emit))
        rows = (*(NewEpisode(episode_row(feed.id, it, status="backlog", now=now), None) for it in backlog), *prepared)
        rejected = sum(1 for r in prepared if r.outbox is None)
        interval = cadence_interval(parsed.items, s, parsed.update_frequency)
        if not emit and moved == list(feed.moved_from or []):
            interval = min(s.max_poll_interval_s, max(interval, feed.poll_interval_s * 1.25))
        moved_now = url != feed.url and parsed.new_feed_url == url
        update.update(
            {
                "status": "active",
                "last_outcome": "ok",
                "backfilled": True,
                "poll_interval_s": interval,
                "next_poll_at": now if moved_now else self._next(now, interval),
            }
        )
        if emit:
            update["last_new_episode_at"] = now
        result = PollResult(feed.id, "ok", backlog=len(backlog), rejected=rejected)
        return Polled(result, update, episodes=rows, items=len(parsed.items), new=len(emit))

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
        """Poll every registered feed once, whether due or not, and publish what that found (and anything left
        in the outbox)."""
        report = PollReport()
        for r in await self.poll_many(await self.repo.all_feed_ids()):
            report.add(r)
        report.published = await self.outbox.dispatch()
        return report
