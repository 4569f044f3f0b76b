"""What only the embedded store (Qdrant Edge) does: one process per store, the embedding record kept beside the
shard, a killed writer losing nothing, the HNSW graph built in a child process only when due, its errors mapped
onto `podbrief.errors`, and the one-off migration from qdrant-client's local mode."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from podbrief.errors import ConfigurationError, PermanentError, RetryableError, UnavailableError
from podbrief.storage.vectors import CollectionSpec, Filter, IndexInfo, Match, Point
from podbrief.storage.vectors.edge import EdgeIndex, build_index_in_child, edge_errors

pytestmark = pytest.mark.unit

DIM = 16
SPEC = CollectionSpec(
    name="insights",
    model="test-model",
    dim=DIM,
    payload_indexes={"show": "keyword"},
    build_index_min_points=0,
    indexing_threshold_kb=16,
)


def _points(n: int, seed: int = 5) -> list[Point]:
    rng = np.random.default_rng(seed)
    return [
        Point(uuid.uuid4(), v, {"show": f"show {i % 3}", "n": i})
        for i, v in enumerate(rng.standard_normal((n, DIM)).astype(np.float32))
    ]


async def _filled(root: Path, n: int, spec: CollectionSpec = SPEC) -> list[Point]:
    points = _points(n)
    index = EdgeIndex(root, spec)
    await index.open()
    try:
        await index.upsert(points)
    finally:
        await index.close()
    return points


async def test_a_store_serves_one_process_at_a_time(tmp_path: Path) -> None:
    first = EdgeIndex(tmp_path, SPEC)
    await first.open()
    try:
        with pytest.raises(ConfigurationError, match="open in another process"):
            await EdgeIndex(tmp_path, SPEC).open()
        probe = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-c",
                textwrap.dedent(
                    f"""
                    import asyncio, sys
                    from pathlib import Path
                    from podbrief.errors import ConfigurationError
                    from podbrief.storage.vectors import CollectionSpec
                    from podbrief.storage.vectors.edge import EdgeIndex
                    index = EdgeIndex(Path({str(tmp_path)!r}), CollectionSpec("insights", "test-model", {DIM}))
                    try:
                        asyncio.run(index.open())
                    except ConfigurationError as exc:
                        print(exc)
                        sys.exit(3)
                    """
                ),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probe.returncode == 3 and "open in another process" in probe.stdout, probe.stderr
    finally:
        await first.close()
    again = EdgeIndex(tmp_path, SPEC)
    await again.open()
    await again.close()


async def test_the_embedding_record_lives_beside_the_shard(tmp_path: Path) -> None:
    await _filled(tmp_path, 5)
    meta = json.loads((tmp_path / "insights" / "podbrief.json").read_text())
    assert meta | {"created_at": None} == {
        "engine": "qdrant-edge",
        "format": 1,
        "collection": "insights",
        "model": "test-model",
        "dim": DIM,
        "distance": "cosine",
        "created_at": None,
    }
    # Lost (a shard copied by hand): the shard is claimed again when its vectors fit.
    (tmp_path / "insights" / "podbrief.json").unlink()
    index = EdgeIndex(tmp_path, SPEC)
    await index.open()
    try:
        assert await index.count() == 5
    finally:
        await index.close()
    assert json.loads((tmp_path / "insights" / "podbrief.json").read_text())["model"] == "test-model"
    # ...and refused when they do not, without touching the shard.
    (tmp_path / "insights" / "podbrief.json").unlink()
    with pytest.raises(ConfigurationError, match="does not fit collection"):
        await EdgeIndex(tmp_path, replace(SPEC, dim=DIM * 2)).open()
    assert not (tmp_path / "insights" / "podbrief.json").exists(), "a shard that does not fit is not claimed"
    (tmp_path / "insights" / "podbrief.json").write_text("{not json")
    with pytest.raises(ConfigurationError, match="unreadable"):
        await EdgeIndex(tmp_path, SPEC).open()
    (tmp_path / "insights" / "podbrief.json").write_text(json.dumps({"engine": "qdrant-edge", "format": 99}))
    with pytest.raises(ConfigurationError, match="format 99"):
        await EdgeIndex(tmp_path, SPEC).open()


async def test_a_killed_writer_loses_nothing(tmp_path: Path) -> None:
    """Upserts are in the WAL when the call returns: a SIGKILL right after them loses none, and the lock dies
    with the process."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, uuid
        from pathlib import Path
        import numpy as np
        from podbrief.storage.vectors import CollectionSpec, Point
        from podbrief.storage.vectors.edge import EdgeIndex

        async def main():
            index = EdgeIndex(Path({str(tmp_path)!r}), CollectionSpec("insights", "test-model", {DIM}))
            await index.open()
            rng = np.random.default_rng(1)
            vecs = rng.standard_normal((500, {DIM}))
            await index.upsert([Point(uuid.UUID(int=i + 1), v, {{"n": i}}) for i, v in enumerate(vecs)])
            await index.set_payload([uuid.UUID(int=1)], {{"mark": "set"}})
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr
    index = EdgeIndex(tmp_path, SPEC)
    await index.open()
    try:
        assert await index.count() == 500
        got = await index.retrieve([uuid.UUID(int=1)], with_vectors=False)
        assert got[uuid.UUID(int=1)].payload == {"n": 0, "mark": "set"}
    finally:
        await index.close()


async def test_open_builds_the_hnsw_graph_only_when_due(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    points = await _filled(tmp_path, 2000)
    query = np.random.default_rng(9).standard_normal(DIM).astype(np.float32)
    # Below the limit: nothing is built, every point is searched exactly.
    index = EdgeIndex(tmp_path, replace(SPEC, build_index_min_points=5000))
    await index.open()
    try:
        info = await index.info()
        assert info == IndexInfo(points=2000, indexed=0, segments=info.segments) and info.unindexed == 2000
        exact = [h.id for h in await index.search(query, limit=10, exact=True)]
        assert [h.id for h in await index.search(query, limit=10)] == exact
    finally:
        await index.close()
    # At the limit: the graph is built (in a child process) before the store serves.
    caplog.set_level(logging.INFO, logger="podbrief.storage.vectors.edge")
    index = EdgeIndex(tmp_path, replace(SPEC, build_index_min_points=2000))
    await index.open()
    try:
        info = await index.info()
        assert info.points == 2000 and info.indexed == 2000 and info.unindexed == 0
        built = [r for r in caplog.records if r.getMessage() == "HNSW index built"]
        assert len(built) == 1 and built[0].__dict__["indexed"] == 2000 and built[0].__dict__["indexed_before"] == 0
        approx = {h.id for h in await index.search(query, limit=10)}
        assert len(approx & set(exact)) >= 9
        # New points go to an appendable segment and are searched exactly beside the graph.
        fresh = Point(uuid.uuid4(), query, {"show": "show 9"})
        await index.upsert([fresh])
        assert (await index.info()).unindexed == 1
        assert (await index.search(query, limit=1))[0].id == fresh.id
        shown = await index.search(query, limit=50, filter=Filter(must=(Match("show", "show 1"),)), exact=True)
        assert {h.id for h in shown} <= {p.id for p in points if p.payload["show"] == "show 1"}
    finally:
        await index.close()


async def test_a_failed_build_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigurationError, match=r"building the HNSW index of .* failed"):
        await build_index_in_child(tmp_path / "no-such-shard", SPEC, IndexInfo(points=1, indexed=0, segments=1))
    # At start the store still serves (exactly) when the build fails; asked for explicitly, the failure is the answer.
    await _filled(tmp_path, 50)

    async def failing(*args: object) -> None:
        raise ConfigurationError("building the HNSW index of x failed: out of memory")

    monkeypatch.setattr("podbrief.storage.vectors.edge.build_index_in_child", failing)
    index = EdgeIndex(tmp_path, replace(SPEC, build_index_min_points=10))
    await index.open()
    try:
        assert await index.count() == 50 and (await index.info()).unindexed == 50
        assert any("HNSW index build failed" in r.getMessage() for r in caplog.records)
    finally:
        await index.close()
    with pytest.raises(ConfigurationError, match="out of memory"):
        await EdgeIndex(tmp_path, SPEC).open(build_index=True)
    again = EdgeIndex(tmp_path, SPEC)
    await again.open()  # the failed explicit build left the store closed and unlocked
    await again.close()


def test_engine_errors_are_mapped_by_their_message() -> None:
    cases = [
        ("Wrong input: bad filter", PermanentError),
        ("Vector dimension error: expected dim: 384, got 3", PermanentError),
        ("Service runtime error: No space left on device (os error 28)", UnavailableError),
        ("Service internal error: something odd", RetryableError),
    ]
    for message, kind in cases:
        with pytest.raises(kind) as caught, edge_errors("search"):
            raise Exception(message)  # the binding raises exactly this
        assert type(caught.value) is kind and message in str(caught.value)
    with pytest.raises(TypeError), edge_errors("search"):
        raise TypeError("a bug of ours stays a bug")


async def test_a_local_mode_store_is_refused_with_the_way_out(tmp_path: Path) -> None:
    from podbrief.storage.vectors.client import QdrantClientIndex
    from qdrant_client import AsyncQdrantClient

    legacy = QdrantClientIndex(AsyncQdrantClient(path=str(tmp_path)), SPEC)
    await legacy.open()
    await legacy.close()
    with pytest.raises(ConfigurationError, match=rf"local-mode store.*podbrief vectors migrate {tmp_path}"):
        await EdgeIndex(tmp_path, SPEC).open()


async def test_local_mode_migrates_in_place_keeping_the_old_store(tmp_path: Path) -> None:
    from podbrief.storage.vectors.client import QdrantClientIndex
    from podbrief.storage.vectors.migrate import migrate_local_mode
    from qdrant_client import AsyncQdrantClient

    store = tmp_path / "qdrant"
    points = _points(1500)
    legacy = QdrantClientIndex(AsyncQdrantClient(path=str(store)), SPEC)
    await legacy.open()
    await legacy.upsert(points)
    queries = np.random.default_rng(4).standard_normal((5, DIM)).astype(np.float32)
    before = [[h.id for h in await legacy.search(q, limit=10)] for q in queries]
    await legacy.close()

    seen: list[tuple[str, int, int]] = []
    specs: list[tuple[str, str | None, int]] = []

    def spec_for(name: str, model: str | None, dim: int) -> CollectionSpec:
        specs.append((name, model, dim))
        return replace(SPEC, name=name, model=model or "configured-model", dim=dim)

    result = await migrate_local_mode(store, spec_for=spec_for, progress=lambda *a: seen.append(a))
    assert specs == [("insights", "test-model", DIM)]
    assert [c.points for c in result.collections] == [1500]
    assert seen[-1] == ("insights", 1500, 1500)
    assert result.target == store and result.kept is not None and result.kept.name.startswith("qdrant.local-mode-")
    assert not [n for n in os.listdir(tmp_path) if "edge-migration" in n], "no staging directory left"

    index = EdgeIndex(store, SPEC)
    await index.open()
    try:
        assert await index.count() == 1500
        assert (await index.info()).indexed == 1500, "the graph is built during the migration"
        got = await index.retrieve([p.id for p in points])
        assert all(got[p.id].payload == p.payload for p in points)
        after = [[h.id for h in await index.search(q, limit=10, exact=True)] for q in queries]
        assert after == before
    finally:
        await index.close()
    # The old store is intact and still readable by the client.
    kept = QdrantClientIndex(AsyncQdrantClient(path=str(result.kept)), SPEC)
    await kept.open()
    try:
        assert await kept.count() == 1500
    finally:
        await kept.close()


async def test_a_migration_that_cannot_run_leaves_the_source_alone(tmp_path: Path) -> None:
    from podbrief.storage.vectors.client import QdrantClientIndex
    from podbrief.storage.vectors.migrate import migrate_local_mode
    from qdrant_client import AsyncQdrantClient

    store = tmp_path / "qdrant"
    legacy = QdrantClientIndex(AsyncQdrantClient(path=str(store)), SPEC)
    await legacy.open()
    await legacy.upsert(_points(10))

    def spec_for(name: str, model: str | None, dim: int) -> CollectionSpec:
        return replace(SPEC, name=name, model=model or "m", dim=dim)

    try:
        # The old store is open (a clustering service still running).
        with pytest.raises(ConfigurationError, match="open in another process"):
            await migrate_local_mode(store, spec_for=spec_for)
    finally:
        await legacy.close()
    # Not a local-mode store at all.
    with pytest.raises(ConfigurationError, match="not a qdrant-client local-mode store"):
        await migrate_local_mode(tmp_path / "elsewhere", spec_for=spec_for)
    # A target that already holds something.
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(ConfigurationError, match="not empty"):
        await migrate_local_mode(store, target=tmp_path / "busy", spec_for=spec_for)
    assert sorted(os.listdir(tmp_path)) == ["busy", "qdrant"]
    # Out of place into a new directory: the source stays where it is, untouched.
    result = await migrate_local_mode(store, target=tmp_path / "edge", spec_for=spec_for, build_index=False)
    assert result.kept is None and result.target == tmp_path / "edge" and [c.points for c in result.collections] == [10]
    assert (store / "meta.json").is_file()


async def test_unindexed_payload_keys_travel_packed_and_come_back_as_written(tmp_path: Path) -> None:
    index = EdgeIndex(tmp_path, SPEC)
    await index.open()
    try:
        payload = {"show": "show 1", "text": "a claim", "n": 3, "score": 0.5, "tags": ["a", "b"], "none": None}
        point = Point(uuid.uuid4(), np.ones(DIM, np.float32), payload)
        await index.upsert([point])
        raw = index.shard.retrieve([point.id], True, False)[0].payload
        assert raw is not None and raw["show"] == "show 1" and set(raw) == {"show", "_doc"}
        assert (await index.retrieve([point.id]))[point.id].payload == payload
        with pytest.raises(ValueError, match="'_doc' is reserved"):
            await index.upsert([Point(uuid.uuid4(), np.ones(DIM, np.float32), {"_doc": "x"})])
    finally:
        await index.close()
