"""Ingest test helpers: settings on a temp SQLite file, replicas on a shared in-memory bus, feed builders."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from podbrief.bus import Bus, MemoryTransport
from podbrief.events.codec import decode
from podbrief.events.models import EpisodeDiscovered, FeedWithdrawn
from podbrief.events.topics import EPISODE_DISCOVERED, FEED_WITHDRAWN
from podbrief.metrics import new_registry
from podbrief.service import ServiceContext
from podbrief.settings import BusSettings, DatabaseSettings, HttpSettings, NetSettings
from podbrief_ingest.app import build_deps
from podbrief_ingest.deps import Deps
from podbrief_ingest.settings import IngestSettings
from podbrief_testing import LoopbackServer
from pydantic import SecretStr

API_KEY = "test-admin-key"
SRT = (
    "1\n00:00:00,000 --> 00:00:04,000\nWelcome to Podcasting 2.0.\n\n"
    "2\n00:00:04,000 --> 00:00:09,500\nThe board meeting starts now.\n"
)
CHAPTERS = (
    b'{"version": "1.2.0", "chapters": [{"startTime": 0, "title": "Intro"}, '
    b'{"startTime": 95.5, "title": "Value4Value"}]}'
)
PODCAST_NS = 'xmlns:podcast="https://podcastindex.org/namespace/1.0"'
ITUNES_NS = 'xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., IngestSettings]:
    def make(**over: Any) -> IngestSettings:
        values: dict[str, Any] = {
            "db": DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/ingest.db")),
            "net": NetSettings(allowed_networks=("127.0.0.0/8",), read_timeout_s=10, connect_timeout_s=10),
            "poll_enabled": False,
            "bus": BusSettings(kind="memory"),
            "http": HttpSettings(port=8001, admin_api_key=SecretStr(API_KEY)),
            "data_dir": tmp_path,
            "fetch_deadline_s": 15,
        }
        values.update(over)
        return IngestSettings(**values)

    return make


@pytest.fixture
async def transport() -> AsyncIterator[MemoryTransport]:
    t = MemoryTransport()
    await t.start()
    yield t
    await t.stop()


@contextlib.asynccontextmanager
async def replica(settings: IngestSettings, transport: MemoryTransport) -> AsyncIterator[Deps]:
    """One ingest instance: its own engine, HTTP client and owner id, on the shared bus and database."""
    ctx = ServiceContext("ingest", settings, Bus(transport, settings.bus), new_registry())
    async with build_deps(ctx) as deps:
        yield deps


def discovered(transport: MemoryTransport) -> list[EpisodeDiscovered]:
    return [decode(r.value, EpisodeDiscovered) for r in transport.records(EPISODE_DISCOVERED)]


def withdrawals(transport: MemoryTransport) -> list[FeedWithdrawn]:
    return [decode(r.value, FeedWithdrawn) for r in transport.records(FEED_WITHDRAWN)]


def route_path(url: str) -> str:
    return httpx.URL(url).raw_path.decode().split("?", 1)[0]


def serve_pc20(loopback: LoopbackServer, shared_dir: Path, *, etag: str = '"pc20-v1"') -> str:
    """pc20rss.xml on loopback, with its enclosures, transcripts and chapters pointing at loopback too."""
    text = (shared_dir / "data/feeds/real-world/pc20rss.xml").read_text("utf-8")
    text = text.replace("https://mp3s.nashownotes.com/", loopback.url("/pc20/"))
    text = text.replace("http://34.117.70.159/", loopback.url("/chapters/"))
    for url in set(re.findall(r'<podcast:transcript url="([^"]+)"', text)):
        loopback.add(route_path(url), SRT, "application/srt")
    for url in set(re.findall(r'<podcast:chapters url="([^"]+)"', text)):
        loopback.add(route_path(url), CHAPTERS, "application/json")
    return loopback.add("/pc20rss.xml", text, "application/rss+xml", headers={"ETag": etag})


def item(
    n: int,
    *,
    enclosure_type: str = "audio/mpeg",
    enclosure_url: str | None = None,
    extra: str = "",
    guid: str | None = None,
) -> str:
    when = format_datetime(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=n))
    url = enclosure_url or f"https://cdn.example.com/ep{n}.mp3"
    return (
        f"<item><title>Episode {n}</title><guid>{guid or f'ep-{n}'}</guid><pubDate>{when}</pubDate>"
        f'<enclosure url="{url}" length="1000" type="{enclosure_type}"/>{extra}</item>'
    )


def rss(items: list[str], channel_extra: str = "", title: str = "Test Show") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" {PODCAST_NS} {ITUNES_NS}><channel>'
        f"<title>{title}</title><link>https://example.com/show</link><language>en</language>"
        f"{channel_extra}{''.join(items)}</channel></rss>"
    )
