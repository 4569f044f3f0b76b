"""The backup procedure of deploy/BACKUP.md, run for real with scripts/backup.sh: a PostgreSQL database written by
the services goes through pg_dump -Fc, is dropped, recreated and pg_restored row for row, and a service starts on
it; the embedded vector store (Qdrant Edge) is snapshotted (refused while the writer has it open), overwritten,
restored, and gives back the same points and search results; and a local-mode backup from before Qdrant Edge is
restored and migrated."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from podbrief.bus import MemoryTransport
from podbrief.settings import BusSettings, DatabaseSettings, HttpSettings, NetSettings, QdrantSettings
from podbrief.storage.db import alembic_config, create_engine, migrate
from podbrief.storage.vectors import CollectionSpec, Filter, Match, Point, VectorIndex, make_vector_index
from podbrief_ingest.app import create_app
from podbrief_ingest.settings import IngestSettings
from podbrief_testing import LoopbackServer
from podbrief_testing.postgres import create_database_async, drop_database
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).parent))
from dbtools import (
    REPO,
    SERVICES,
    all_rows,
    insert_one_row_per_table,
    metadata,
    migrations_dir,
)

pytestmark = pytest.mark.integration

BACKUP = REPO / "scripts" / "backup.sh"
ADMIN = "backup-test-admin-key"


def backup(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BACKUP), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def feed_xml(loopback: LoopbackServer, episodes: int) -> str:
    items = []
    for n in range(episodes):
        when = format_datetime(datetime(2026, 11, 1, 6, tzinfo=UTC) + timedelta(days=n))
        audio = loopback.add(f"/audio/ep{n}.mp3", b"ID3" + bytes(64), "audio/mpeg")
        items.append(
            f"<item><title>Épisode {n}: Grüße</title><guid>ep-{n}</guid><pubDate>{when}</pubDate>"
            f'<enclosure url="{audio}" length="67" type="audio/mpeg"/></item>'
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Backup Show</title>'
        f"<link>https://example.org/</link>{''.join(items)}</channel></rss>"
    )


def ingest_settings(db_url: str, tmp_path: Path) -> IngestSettings:
    return IngestSettings(
        db=DatabaseSettings(url=SecretStr(db_url)),
        net=NetSettings(allowed_networks=("127.0.0.0/8",)),
        bus=BusSettings(kind="memory"),
        http=HttpSettings(admin_api_key=SecretStr(ADMIN)),
        poll_enabled=False,
        backfill_limit=3,
        data_dir=tmp_path,
    )


async def test_postgres_dump_drop_restore_row_for_row_and_the_service_starts_on_it(
    pg_url: str, unique: str, tmp_path: Path, loopback: LoopbackServer
) -> None:
    name = f"backup_{unique}"
    db_url = await create_database_async(pg_url, name)
    dump = tmp_path / "podbrief.dump"
    try:
        # Ingest writes its feed, episodes and outbox through its own API; the other four services share the
        # database with one full row in each of their tables.
        feed = loopback.add("/feed.xml", feed_xml(loopback, 12), "application/rss+xml")
        settings = ingest_settings(db_url, tmp_path)
        transport = MemoryTransport()
        await transport.start()
        app = create_app(settings, transport=transport)
        async with app.router.lifespan_context(app):
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            r = await client.post("/v1/feeds", json={"url": feed}, headers={"X-API-Key": ADMIN})
            assert r.status_code == 201, r.text
            feed_id = r.json()["feed"]["id"]
            before_api = (await client.get(f"/v1/feeds/{feed_id}/episodes", params={"limit": 50})).json()
        engine = create_engine(DatabaseSettings(url=SecretStr(db_url)))
        try:
            for service in SERVICES[1:]:
                await migrate(engine, migrations_dir(service), service)
                await insert_one_row_per_table(engine, metadata(service))
            before = await all_rows(engine)
        finally:
            await engine.dispose()
        assert len(before["ingest_episodes"]) == 12 and len(before["ingest_outbox"]) == 3
        assert {f"alembic_version_{s}" for s in SERVICES} <= set(before)

        done = backup("pg-dump", db_url, str(dump))
        assert done.returncode == 0, done.stderr
        # The DSN's password is handed to pg_dump through the environment, never printed.
        assert "podbrief@" not in done.stderr and ":podbrief" not in done.stderr
        assert dump.stat().st_size > 0 and (tmp_path / "podbrief.dump.sha256").exists()

        await drop_database(pg_url, name)
        await create_database_async(pg_url, name)
        done = backup("pg-restore", db_url, str(dump))
        assert done.returncode == 0, done.stderr

        engine = create_engine(DatabaseSettings(url=SecretStr(db_url)))
        try:
            assert await all_rows(engine) == before
            async with engine.connect() as conn:
                for service in SERVICES:
                    head = ScriptDirectory.from_config(alembic_config(migrations_dir(service), service)).get_heads()
                    version = (await conn.execute(sa.text(f"SELECT version_num FROM alembic_version_{service}"))).all()
                    assert [v for (v,) in version] == head, service
        finally:
            await engine.dispose()

        # The service starts on the restored database (its migrations find nothing to do) and serves the data.
        app = create_app(settings, transport=transport)
        async with app.router.lifespan_context(app):
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
            assert (await client.get("/readyz")).status_code == 200
            after_api = (await client.get(f"/v1/feeds/{feed_id}/episodes", params={"limit": 50})).json()
            assert after_api == before_api
            r = await client.post("/v1/feeds", json={"url": feed}, headers={"X-API-Key": ADMIN})
            assert r.status_code == 200 and not r.json()["created"]
    finally:
        await drop_database(pg_url, name)


async def test_a_restore_into_a_database_that_is_not_empty_changes_nothing(
    pg_url: str, unique: str, tmp_path: Path
) -> None:
    """--single-transaction --exit-on-error: a failed restore leaves the target as it was, not half written."""
    source, target = f"bk_src_{unique}", f"bk_dst_{unique}"
    src_url, dst_url = await create_database_async(pg_url, source), await create_database_async(pg_url, target)
    try:
        for url in (src_url, dst_url):
            engine = create_engine(DatabaseSettings(url=SecretStr(url)))
            try:
                await migrate(engine, migrations_dir("delivery"), "delivery")
                await insert_one_row_per_table(engine, metadata("delivery"))
            finally:
                await engine.dispose()
        engine = create_engine(DatabaseSettings(url=SecretStr(dst_url)))
        try:
            untouched = await all_rows(engine)
            assert backup("pg-dump", src_url, str(tmp_path / "d.dump")).returncode == 0
            failed = backup("pg-restore", dst_url, str(tmp_path / "d.dump"))
            assert failed.returncode != 0 and "already exists" in failed.stderr
            assert await all_rows(engine) == untouched
            # A dump that does not match its checksum is refused before anything is touched.
            data = bytearray((tmp_path / "d.dump").read_bytes())
            data[len(data) // 2] ^= 0xFF
            (tmp_path / "d.dump").write_bytes(bytes(data))
            corrupt = backup("pg-restore", dst_url, str(tmp_path / "d.dump"))
            assert corrupt.returncode != 0 and "checksum mismatch" in corrupt.stderr
        finally:
            await engine.dispose()
    finally:
        await drop_database(pg_url, source)
        await drop_database(pg_url, target)


SPEC = CollectionSpec(
    name="insights",
    model="test-model",
    dim=32,
    payload_indexes={"show": "keyword"},
    build_index_min_points=100,
    indexing_threshold_kb=8,
)


def _vector_points(rng: np.random.Generator, n: int) -> list[Point]:
    return [
        Point(
            uuid.uuid4(),
            rng.standard_normal(32).astype(np.float32),
            {"show": f"show {i % 5}", "episode_id": str(uuid.uuid4()), "published_ts": 1_764_000_000.0 + i},
        )
        for i in range(n)
    ]


@dataclass(frozen=True)
class VectorState:
    """What a store holds and answers: its count, every point (vector as a unit vector: stores may keep cosine
    vectors normalised) with its payload, and the ids and scores of a few searches."""

    count: int
    points: dict[Any, tuple[np.ndarray, Any]]
    hits: list[list[tuple[Any, float]]]

    def assert_same(self, other: VectorState) -> None:
        """Equal, floats within float32 rounding: engines (and one engine on CPUs with other SIMD paths)
        normalise and score in their own order of operations, so the last digits may differ."""
        assert self.count == other.count
        assert self.points.keys() == other.points.keys()
        for key, (vector, payload) in self.points.items():
            theirs, their_payload = other.points[key]
            assert payload == their_payload, key
            np.testing.assert_allclose(vector, theirs, atol=1e-5, err_msg=str(key))
        assert [[i for i, _ in row] for row in self.hits] == [[i for i, _ in row] for row in other.hits]
        for mine, theirs in zip(self.hits, other.hits, strict=True):
            np.testing.assert_allclose([s for _, s in mine], [s for _, s in theirs], atol=1e-4)


async def _vector_state(index: VectorIndex, points: list[Point], queries: list[np.ndarray]) -> VectorState:
    stored = await index.retrieve([p.id for p in points])
    as_arrays = {
        k: (np.asarray(r.vector, dtype=np.float64) / np.linalg.norm(r.vector), r.payload)
        for k, r in stored.items()
        if r.vector is not None
    }
    hits = [[(h.id, float(h.score)) for h in await index.search(q, limit=10)] for q in queries]
    hits += [[(h.id, float(h.score)) for h in await index.search(queries[0], limit=10, filter=SHOW_3)]]
    return VectorState(await index.count(), as_arrays, hits)


SHOW_3 = Filter(must=(Match("show", "show 3"),))


async def test_vector_store_snapshot_and_restore(tmp_path: Path) -> None:
    """The embedded store (Qdrant Edge) with its HNSW graph built: snapshotted (refused while the writer has it
    open), overwritten, restored, and the same points, graph and search results come back."""
    path = tmp_path / "vectors"
    snapshot = tmp_path / "vectors.tar.gz"
    rng = np.random.default_rng(7)
    points = _vector_points(rng, 300)
    queries = [rng.standard_normal(32).astype(np.float32) for _ in range(5)]
    settings = QdrantSettings(path=path)

    index = make_vector_index(settings, SPEC)
    await index.open()
    try:
        await index.upsert(points)
    finally:
        await index.close()
    index = make_vector_index(settings, SPEC)
    await index.open()  # 300 points outside the graph: it is built first
    try:
        assert (await index.info()).indexed == 300
        before = await _vector_state(index, points, queries)
        assert before.count == 300 and len(before.points) == 300
        # While the writer has the store open, the snapshot is refused rather than copying a moving target.
        busy = backup("vectors-snapshot", str(path), str(snapshot))
        assert busy.returncode != 0 and "in use" in busy.stderr
        assert not [n for n in os.listdir(tmp_path) if n.startswith("vectors.tar.gz")], "no partial snapshot left"
    finally:
        await index.close()

    done = backup("vectors-snapshot", str(path), str(snapshot))
    assert done.returncode == 0, done.stderr
    assert snapshot.stat().st_size < 5_000_000, "the WAL's preallocated holes are not written out"

    # Lose the data: another write after the snapshot.
    index = make_vector_index(settings, SPEC)
    await index.open()
    try:
        await index.upsert(_vector_points(rng, 1))
        assert await index.count() == 301
    finally:
        await index.close()
    # A restore over a store in use is refused too.
    index = make_vector_index(settings, SPEC)
    await index.open()
    try:
        busy = backup("vectors-restore", str(snapshot), str(path))
        assert busy.returncode != 0 and "in use" in busy.stderr
    finally:
        await index.close()
    done = backup("vectors-restore", str(snapshot), str(path))
    assert done.returncode == 0, done.stderr
    assert any(n.startswith("vectors.old-") for n in os.listdir(tmp_path)), "the replaced directory is kept"

    index = make_vector_index(settings, SPEC)
    await index.open()
    try:
        assert (await index.info()).indexed == 300
        (await _vector_state(index, points, queries)).assert_same(before)
    finally:
        await index.close()


async def test_a_local_mode_backup_restores_and_migrates_to_qdrant_edge(tmp_path: Path) -> None:
    """A backup taken before Qdrant Edge (qdrant-client local mode, with the script's old command name) is
    restored, then moved into Qdrant Edge by `podbrief vectors migrate`, with every point and result intact."""
    from podbrief.storage.vectors.client import QdrantClientIndex
    from qdrant_client import AsyncQdrantClient

    path = tmp_path / "qdrant"
    snapshot = tmp_path / "qdrant.tar.gz"
    rng = np.random.default_rng(8)
    points = _vector_points(rng, 250)
    queries = [rng.standard_normal(32).astype(np.float32) for _ in range(5)]
    legacy = QdrantClientIndex(AsyncQdrantClient(path=str(path)), SPEC)
    await legacy.open()
    try:
        await legacy.upsert(points)
    finally:
        await legacy.close()
    done = backup("qdrant-local-snapshot", str(path), str(snapshot))
    assert done.returncode == 0, done.stderr
    shutil.rmtree(path)
    done = backup("vectors-restore", str(snapshot), str(path))
    assert done.returncode == 0, done.stderr
    legacy = QdrantClientIndex(AsyncQdrantClient(path=str(path)), SPEC)
    await legacy.open()
    try:
        before = await _vector_state(legacy, points, queries)
    finally:
        await legacy.close()

    env = {**os.environ, "CLUSTERING_QDRANT__PATH": str(path)}
    podbrief = str(Path(sys.executable).parent / "podbrief")
    migrated = await asyncio.to_thread(
        subprocess.run, [podbrief, "vectors", "migrate"], capture_output=True, text=True, timeout=300, env=env
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "250 points (test-model, 32-d) now in Qdrant Edge" in migrated.stderr
    info = await asyncio.to_thread(
        subprocess.run, [podbrief, "vectors", "info"], capture_output=True, text=True, timeout=120, env=env
    )
    assert info.returncode == 0, info.stderr
    assert "Qdrant Edge" in info.stdout and re.search(r"points\s+250\b", info.stdout), info.stdout

    index = make_vector_index(QdrantSettings(path=path), SPEC)
    await index.open()
    try:
        (await _vector_state(index, points, queries)).assert_same(before)
    finally:
        await index.close()
