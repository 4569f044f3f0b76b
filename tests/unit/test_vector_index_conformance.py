"""The `VectorIndex` conformance suite, written once and run on both implementations: Qdrant Edge (the embedded
default) and qdrant-client (production, against a Qdrant server). No server runs here, so the client
implementation runs against qdrant-client's local mode, and only in this suite.

Results are checked against brute-force numpy over the same points, so every property holds on any machine."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from podbrief.errors import ConfigurationError, PermanentError
from podbrief.storage.vectors import CollectionSpec, Filter, HasId, Match, Point, Range, VectorIndex

pytestmark = pytest.mark.unit

DIM = 32
SPEC = CollectionSpec(
    name="insights",
    model="test-model",
    dim=DIM,
    payload_indexes={"show": "keyword", "published_ts": "float", "episode_id": "keyword"},
    build_index_min_points=0,
    # Small enough that a build gives these few thousand points a real HNSW graph.
    indexing_threshold_kb=64,
)
Factory = Callable[[CollectionSpec], Awaitable[VectorIndex]]


@pytest.fixture(params=["edge", "client-local-mode"])
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """Opens the collection of `spec` in this test's store; each call is a fresh handle (a new process would see
    the same)."""

    async def factory(spec: CollectionSpec = SPEC) -> VectorIndex:
        index: VectorIndex
        if request.param == "edge":
            from podbrief.storage.vectors.edge import EdgeIndex

            index = EdgeIndex(tmp_path / "store", spec)
        else:
            from podbrief.storage.vectors.client import QdrantClientIndex
            from qdrant_client import AsyncQdrantClient

            index = QdrantClientIndex(AsyncQdrantClient(path=str(tmp_path / "store")), spec)
        await index.open()
        return index

    return factory


def _points(n: int, seed: int = 7) -> list[Point]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    return [
        Point(
            uuid.uuid5(uuid.NAMESPACE_URL, f"point-{seed}-{i}"),
            vecs[i],
            {
                "show": f"show {i % 5}",
                "episode_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"episode-{i // 4}")),
                "published_ts": 1_764_000_000.0 + i,
                "text": f"insight number {i}",
                "speaker": None if i % 3 else "Ada",
                "importance": i % 4,
            },
        )
        for i in range(n)
    ]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _exact(points: list[Point], query: np.ndarray, keep: Callable[[Point], bool], k: int) -> list[uuid.UUID]:
    chosen = [p for p in points if keep(p)]
    scores = np.array([float(_unit(p.vector) @ _unit(query)) for p in chosen])
    return [chosen[i].id for i in np.argsort(-scores, kind="stable")[:k]]


async def test_an_empty_collection_answers_every_call(open_index: Factory) -> None:
    index = await open_index()
    try:
        assert await index.count() == 0
        assert await index.search(np.ones(DIM, np.float32), limit=5) == []
        assert await index.retrieve([uuid.uuid4()]) == {}
        assert [batch async for batch in index.scan()] == []
        assert await index.healthy()
        assert (await index.info()).points == 0
    finally:
        await index.close()


async def test_search_matches_brute_force_and_returns_uuids(open_index: Factory) -> None:
    points = _points(200)
    index = await open_index()
    try:
        await index.upsert(points)
        assert await index.count() == 200
        rng = np.random.default_rng(1)
        for query in rng.standard_normal((5, DIM)).astype(np.float32):
            hits = await index.search(query, limit=10, exact=True)
            assert [h.id for h in hits] == _exact(points, query, lambda p: True, 10)
            assert all(isinstance(h.id, uuid.UUID) for h in hits)
            scores = [h.score for h in hits]
            assert scores == sorted(scores, reverse=True)
            best = hits[0]
            want = next(p for p in points if p.id == best.id)
            assert best.score == pytest.approx(float(_unit(want.vector) @ _unit(query)), abs=1e-4)
            assert best.payload == dict(want.payload)
        # A stored vector finds itself first, at cosine 1.
        top = await index.search(points[17].vector, limit=1)
        assert top[0].id == points[17].id and top[0].score == pytest.approx(1.0, abs=1e-4)
    finally:
        await index.close()


async def test_filters_and_thresholds(open_index: Factory) -> None:
    points = _points(120)
    index = await open_index()
    query = np.random.default_rng(2).standard_normal(DIM).astype(np.float32)
    episode = str(points[0].payload["episode_id"])
    excluded = frozenset(p.id for p in points[:30])
    cases: list[tuple[Filter, Callable[[Point], bool]]] = [
        (Filter(must=(Match("show", "show 3"),)), lambda p: p.payload["show"] == "show 3"),
        (
            Filter(must=(Range("published_ts", gte=1_764_000_050.0, lt=1_764_000_090.0),)),
            lambda p: 1_764_000_050.0 <= p.payload["published_ts"] < 1_764_000_090.0,
        ),
        (Filter(must_not=(Match("episode_id", episode),)), lambda p: p.payload["episode_id"] != episode),
        (Filter(must_not=(HasId(excluded),)), lambda p: p.id not in excluded),
        (
            Filter(
                must=(Match("show", "show 1"), Range("published_ts", gte=1_764_000_040.0)), must_not=(HasId(excluded),)
            ),
            lambda p: (
                p.payload["show"] == "show 1" and p.payload["published_ts"] >= 1_764_000_040.0 and p.id not in excluded
            ),
        ),
        (Filter(must=(Match("show", "no such show"),)), lambda p: False),
        (Filter(must_not=(HasId(frozenset()),)), lambda p: True),
    ]
    try:
        await index.upsert(points)
        for flt, keep in cases:
            hits = await index.search(query, limit=7, filter=flt, exact=True)
            assert [h.id for h in hits] == _exact(points, query, keep, 7), flt
        everything = await index.search(query, limit=120, exact=True)
        floor = (everything[10].score + everything[11].score) / 2
        above = await index.search(query, limit=120, score_threshold=floor, exact=True)
        assert [h.id for h in above] == [h.id for h in everything[:11]]
    finally:
        await index.close()


async def test_upsert_is_idempotent_and_replaces_the_point(open_index: Factory) -> None:
    points = _points(20)
    index = await open_index()
    try:
        await index.upsert(points)
        await index.upsert(points)
        assert await index.count() == 20
        changed = Point(points[3].id, points[4].vector, {"show": "moved", "published_ts": 1.0})
        await index.upsert([changed])
        assert await index.count() == 20
        got = (await index.retrieve([changed.id]))[changed.id]
        assert got.payload == {"show": "moved", "published_ts": 1.0}
        assert got.vector is not None and np.allclose(_unit(got.vector), _unit(points[4].vector), atol=1e-5)
    finally:
        await index.close()


async def test_retrieve_set_payload_and_scan(open_index: Factory) -> None:
    points = _points(1300)
    index = await open_index()
    try:
        await index.upsert(points)
        missing = uuid.uuid4()
        ids = [p.id for p in points[:700]] + [missing]
        found = await index.retrieve(ids)
        assert set(found) == set(ids) - {missing}
        for p in points[:700]:
            r = found[p.id]
            assert isinstance(r.id, uuid.UUID) and r.payload == dict(p.payload)
            assert r.vector is not None and r.vector.dtype == np.float32
            assert np.allclose(_unit(r.vector), _unit(p.vector), atol=1e-5)
        bare = await index.retrieve([points[0].id], with_vectors=False)
        assert bare[points[0].id].vector is None and bare[points[0].id].payload == dict(points[0].payload)

        cluster = str(uuid.uuid4())
        await index.set_payload([p.id for p in points[:3]], {"cluster_id": cluster})
        await index.set_payload([], {"cluster_id": "nothing"})
        after = await index.retrieve([p.id for p in points[:4]], with_vectors=False)
        assert [after[p.id].payload.get("cluster_id") for p in points[:4]] == [cluster] * 3 + [None]
        assert after[points[0].id].payload["text"] == points[0].payload["text"], "other keys are kept"
        # An indexed key and a plain one at once; filters see the new value.
        await index.set_payload([points[5].id], {"show": "show 77", "importance": 9})
        moved = (await index.retrieve([points[5].id], with_vectors=False))[points[5].id].payload
        assert moved == {**points[5].payload, "show": "show 77", "importance": 9}
        found = await index.search(points[5].vector, limit=5, filter=Filter(must=(Match("show", "show 77"),)))
        assert [h.id for h in found] == [points[5].id] and found[0].payload == moved

        seen: list[uuid.UUID] = []
        async for batch in index.scan(batch=500):
            assert 0 < len(batch) <= 500
            seen.extend(r.id for r in batch)
            assert all(r.vector is not None for r in batch)
        assert sorted(seen) == sorted(p.id for p in points)
    finally:
        await index.close()


async def test_the_state_survives_reopening(open_index: Factory) -> None:
    points = _points(150)
    query = np.random.default_rng(3).standard_normal(DIM).astype(np.float32)
    index = await open_index()
    try:
        await index.upsert(points)
        before = [(h.id, round(h.score, 5)) for h in await index.search(query, limit=10, exact=True)]
    finally:
        await index.close()
    index = await open_index()
    try:
        assert await index.count() == 150
        assert [(h.id, round(h.score, 5)) for h in await index.search(query, limit=10, exact=True)] == before
    finally:
        await index.close()


async def test_another_model_or_dimension_is_refused(open_index: Factory) -> None:
    index = await open_index()
    await index.upsert(_points(3))
    await index.close()
    with pytest.raises(ConfigurationError, match=r"test-model.*32-d.*other-model.*32-d.*never mixed"):
        await open_index(replace(SPEC, model="other-model"))
    with pytest.raises(ConfigurationError, match=r"test-model.*32-d.*test-model.*16-d"):
        await open_index(replace(SPEC, dim=16))
    index = await open_index()
    try:
        assert await index.count() == 3, "a refused open leaves the store as it was"
    finally:
        await index.close()


async def test_bad_requests_are_refused_with_what_was_wrong(open_index: Factory) -> None:
    index = await open_index()
    try:
        await index.upsert(_points(5))
        with pytest.raises((PermanentError, ValueError)):
            await index.search(np.ones(DIM + 3, np.float32), limit=3)
        # Filters name indexed keys only: on a server anything else scans every point.
        with pytest.raises(ValueError, match=r"filter on 'text'.*indexes only episode_id, published_ts, show"):
            await index.search(np.ones(DIM, np.float32), limit=3, filter=Filter(must=(Match("text", "x"),)))
        assert await index.count() == 5
    finally:
        await index.close()


async def test_approximate_search_agrees_with_exact_search(open_index: Factory) -> None:
    """After the HNSW graph is built (Edge) or whatever the engine does (local mode is exact), the default search
    finds nearly what exact search finds."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((40, DIM)).astype(np.float32)
    vecs = centres[rng.integers(0, 40, 3000)] + 0.5 * rng.standard_normal((3000, DIM)).astype(np.float32)
    points = [Point(uuid.uuid4(), v, {"show": f"show {i % 7}"}) for i, v in enumerate(vecs)]
    index = await open_index()
    try:
        await index.upsert(points)
    finally:
        await index.close()
    index = await open_index(replace(SPEC, build_index_min_points=1))
    try:
        found = 0
        queries = centres[rng.integers(0, 40, 30)] + 0.5 * rng.standard_normal((30, DIM)).astype(np.float32)
        for q in queries:
            approx = {h.id for h in await index.search(q, limit=10)}
            exact = {h.id for h in await index.search(q, limit=10, exact=True)}
            found += len(approx & exact)
        assert found / (10 * len(queries)) >= 0.95
    finally:
        await index.close()
