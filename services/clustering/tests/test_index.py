"""The vector index and the clusterer's bookkeeping, with a fast hashing embedder: upsert idempotency under
redelivery, the model/dimension guard on the collection, labels and settings validation."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from podbrief.errors import ConfigurationError
from podbrief.storage.vectors.edge import EdgeIndex
from podbrief_clustering.app import open_clusterer
from podbrief_clustering.clusterer import Item
from podbrief_clustering.labels import ctfidf_labels, terms
from podbrief_clustering.models import ClusterRow, MemberRow
from pydantic import ValidationError

from .conftest import HashEmbedder, episode_for, insight_for, make_settings

pytestmark = pytest.mark.unit

ROWS = [
    {"id": "a1", "text": "Solar panels and home batteries cut the electricity bill for households"},
    {"id": "a2", "text": "Home batteries with solar panels cut household electricity bills"},
    {"id": "a3", "text": "The central bank will cut interest rates as inflation cools"},
    {"id": "a4", "text": "Sleep deprivation raises the risk of heart disease"},
]


def _batch(show: str, title: str, rows: list[dict[str, Any]]) -> list[Item]:
    ep = episode_for(show, title)
    return [Item(ep, insight_for(r, i)) for i, r in enumerate(rows)]


async def _counts(clusterer: Any) -> tuple[int, int, int]:
    async with clusterer.repo.sessions() as s:
        members = await s.scalar(sa.select(sa.func.count()).select_from(MemberRow))
        clusters = await s.scalar(sa.select(sa.func.count()).select_from(ClusterRow))
    return await clusterer.index.count(), int(members or 0), int(clusters or 0)


async def test_redelivery_is_an_upsert_with_the_same_clusters(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    settings = make_settings(tmp_path)
    first_batch = _batch("Volts", "Batteries", ROWS[:2])
    second_batch = _batch("Odd Lots", "Rates", ROWS[2:])
    async with open_clusterer(settings, embedder=hash_embedder) as clusterer:
        first = await clusterer.process(first_batch)
        await clusterer.process(second_batch)
        before = await _counts(clusterer)
        again = await clusterer.process(first_batch)
        after = await _counts(clusterer)
    assert before == after == (4, 4, before[2])
    assert [o.cluster_id for o in again] == [o.cluster_id for o in first]
    assert [o.duplicate_of for o in again] == [o.duplicate_of for o in first]
    assert all(o.redelivered for o in again) and not any(o.redelivered for o in first)
    # The second insight says the first one's claim again: a corroboration in the same cluster.
    assert first[1].duplicate_of == first[0].insight_id and first[0].duplicate_of is None
    assert first[1].cluster_id == first[0].cluster_id


async def test_state_survives_a_restart(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    settings = make_settings(tmp_path)
    batch = _batch("Volts", "Batteries", ROWS)
    async with open_clusterer(settings, embedder=hash_embedder) as clusterer:
        first = await clusterer.process(batch)
    async with open_clusterer(settings, embedder=hash_embedder) as clusterer:
        again = await clusterer.process(batch)
        assert await clusterer.index.count() == len(ROWS)
    assert [o.cluster_id for o in again] == [o.cluster_id for o in first]


async def test_a_collection_of_another_dimension_is_refused(tmp_path: Path) -> None:
    async with open_clusterer(make_settings(tmp_path), embedder=HashEmbedder(dim=384, name="model-a")) as c:
        await c.process(_batch("Volts", "Batteries", ROWS[:1]))
    other = make_settings(tmp_path, embedding={"name": "model-b", "dim": 256})
    with pytest.raises(ConfigurationError, match=r"model-a.*384-d.*model-b.*256-d"):
        async with open_clusterer(other, embedder=HashEmbedder(dim=256, name="model-b")):
            pass


async def test_a_collection_of_another_model_with_the_same_dimension_is_refused(tmp_path: Path) -> None:
    async with open_clusterer(make_settings(tmp_path), embedder=HashEmbedder(name="model-a")):
        pass
    with pytest.raises(ConfigurationError, match="never mixed"):
        async with open_clusterer(make_settings(tmp_path), embedder=HashEmbedder(name="model-b")):
            pass


async def test_collection_creation_is_idempotent(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    settings = make_settings(tmp_path)
    async with open_clusterer(settings, embedder=hash_embedder) as clusterer:
        await clusterer.process(_batch("Volts", "Batteries", ROWS[:1]))
        store = clusterer.index.store
        assert isinstance(store, EdgeIndex)
        await store.open()  # already open: a no-op
        schema = store.shard.info().payload_schema
        assert set(schema) == {"published_ts", "show", "episode_id"}
        assert await clusterer.index.count() == 1
    async with open_clusterer(settings, embedder=hash_embedder) as clusterer:
        assert await clusterer.index.count() == 1
    record = json.loads((tmp_path / "qdrant" / "insights" / "podbrief.json").read_text())
    assert (record["model"], record["dim"], record["distance"]) == ("test-hash-bow", 384, "cosine")


async def test_search_filters_by_show(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    async with open_clusterer(make_settings(tmp_path), embedder=hash_embedder) as clusterer:
        await clusterer.process(_batch("Volts", "Batteries", ROWS[:1]))
        await clusterer.process(_batch("Odd Lots", "Rates", ROWS[1:]))
        everything = await clusterer.search("home batteries solar electricity", limit=5)
        volts = await clusterer.search("home batteries solar electricity", show="Volts", limit=5)
        future = await clusterer.search(
            "home batteries",
            since=__import__("datetime").datetime(2100, 1, 1, tzinfo=__import__("datetime").UTC),
        )
    assert len(everything) == 4
    assert [r.payload["show"] for r in volts] == ["Volts"]
    assert future == []


def test_labels_prefer_terms_distinctive_of_a_cluster() -> None:
    docs = {
        uuid.UUID(int=1): ["Home batteries store solar power", "Batteries cut the power bill at home"],
        uuid.UUID(int=2): ["The Fed will cut rates", "Rates stay high while inflation persists"],
    }
    labels = ctfidf_labels(docs, top=2)
    assert labels[uuid.UUID(int=1)].split(" · ")[0] in {"battery", "home", "power"}
    assert "rate" in labels[uuid.UUID(int=2)]
    assert "the" not in terms("The Fed's rate and the bank's")
    assert terms("The Fed's rate") == ["fed", "rate"]


def test_settings_fail_fast(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="duplicate_threshold must be above"):
        make_settings(tmp_path, duplicate_threshold=0.3, cluster_threshold=0.5)
    with pytest.raises(ValidationError):
        make_settings(tmp_path, related_count=7)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from podbrief_clustering.settings import ClusteringSettings

    monkeypatch.setenv("CLUSTERING_QDRANT__URL", "http://qdrant:6333")
    monkeypatch.setenv("CLUSTERING_DUPLICATE_THRESHOLD", "0.8")
    monkeypatch.setenv("CLUSTERING_QUANTIZATION", "int8")
    s = ClusteringSettings(_env_file=None)  # type: ignore[call-arg]
    assert s.qdrant.url == "http://qdrant:6333" and s.duplicate_threshold == 0.8 and s.quantization == "int8"
    assert s.http.port == 8004


async def test_migrations_upgrade_and_downgrade(tmp_path: Path) -> None:
    from podbrief.storage import create_engine, migrate
    from podbrief_clustering.app import MIGRATIONS

    engine = create_engine(make_settings(tmp_path).db)
    try:
        await migrate(engine, MIGRATIONS, "clustering")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert {"clustering_clusters", "clustering_members"} <= tables
        await migrate(engine, MIGRATIONS, "clustering", "base")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert not {"clustering_clusters", "clustering_members"} & tables
        await migrate(engine, MIGRATIONS, "clustering")
    finally:
        await engine.dispose()
