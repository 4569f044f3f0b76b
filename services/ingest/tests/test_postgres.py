"""The same exactly-once guarantees on PostgreSQL (asyncpg), each test in a database of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from podbrief.bus import MemoryTransport
from podbrief.settings import DatabaseSettings
from podbrief_ingest.settings import IngestSettings
from podbrief_testing import LoopbackServer
from podbrief_testing.postgres import create_database_async, drop_database
from pydantic import SecretStr

from .conftest import discovered, item, replica, rss, serve_pc20

pytestmark = pytest.mark.integration


@pytest.fixture
async def pg_db(pg_url: str, unique: str) -> AsyncIterator[str]:
    name = f"ingest_{unique}"
    yield await create_database_async(pg_url, name)
    await drop_database(pg_url, name)


async def test_two_replicas_on_postgres_emit_once(
    loopback: LoopbackServer,
    shared_dir: Path,
    make_settings: Callable[..., IngestSettings],
    transport: MemoryTransport,
    pg_db: str,
) -> None:
    url = serve_pc20(loopback, shared_dir)
    other = loopback.add("/other.xml", rss([item(n) for n in range(1, 8)]), "application/rss+xml")
    settings = make_settings(db=DatabaseSettings(url=SecretStr(pg_db)), backfill_limit=5)
    async with replica(settings, transport) as a, replica(settings, transport) as b:
        await a.crawler.add_feed(url, validate=False)
        await b.crawler.add_feed(other, validate=False)
        reports = await asyncio.gather(a.crawler.poll_all(), b.crawler.poll_all())
        assert reports[0].episodes_emitted + reports[1].episodes_emitted == 10
        feed = await a.repo.feed_by_url(url)
        assert feed is not None and feed.etag == '"pc20-v1"'
        rows, cursor = await b.repo.list_episodes(feed.id, limit=50, cursor=None)
        assert len(rows) == 50 and cursor is not None
        rest, end = await b.repo.list_episodes(feed.id, limit=50, cursor=cursor)
        assert len(rest) == 6 and end is None
    loopback.routes["/pc20rss.xml"].headers["ETag"] = '"pc20-v2"'
    async with replica(settings, transport) as a2, replica(settings, transport) as b2:
        again = await asyncio.gather(a2.crawler.poll_all(), b2.crawler.poll_all())
        assert sum(r.episodes_emitted for r in again) == 0
    events = discovered(transport)
    assert len(events) == 10 and len({e.event_id for e in events}) == 10
