"""What a feed's items become: which new items are emitted (the first poll's backfill limit), the episode row
each one is recorded as, its EpisodeDiscovered event (with the publisher transcript and chapters fetched), and
what the feed document says about the feed itself. Pure functions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from podbrief.errors import PermanentError
from podbrief.events.base import new_event
from podbrief.events.ids import event_id
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
from podbrief.transcripts import PREFERENCE, kind_of
from podbrief_ingest.models import Feed
from podbrief_ingest.parser import ParsedFeed, ParsedItem, media_type, newest_first


def plan_items(
    items: Sequence[ParsedItem], known: set[uuid.UUID], *, backfilled: bool, backfill_limit: int
) -> tuple[list[ParsedItem], list[ParsedItem]]:
    """(to emit, to record as backlog) among the items not seen before. A feed's first poll emits only its
    `backfill_limit` newest items; after that every new item is emitted."""
    new = [it for it in newest_first(tuple(items)) if it.episode_id not in known]
    if backfilled or backfill_limit < 0:
        return new, []
    return new[:backfill_limit], new[backfill_limit:]


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
        safe_href = href if isinstance(href, str) and href.startswith(("http://", "https://")) else None
        out.append(
            Person(
                name=name,
                role=(str(raw.get("role") or "host").strip().lower() or "host")[:100],
                group=(str(raw["group"]).strip()[:100] or None) if raw.get("group") else None,
                href=safe_href if safe_href and len(safe_href) <= 4096 else None,
            )
        )
    return tuple(out)


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
        event_id=event_id("episode.discovered", item.episode_id),
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
