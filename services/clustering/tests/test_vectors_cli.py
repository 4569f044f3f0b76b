"""`podbrief vectors info | build-index | migrate` on the embedded store: what they print, and a clear error (exit
2) for a missing store, an old local-mode store, and a store another process has open."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path

import numpy as np
import pytest
import typer
from podbrief.storage.vectors import CollectionSpec, Point
from podbrief.storage.vectors.edge import EdgeIndex
from podbrief_clustering.adapters.index import PAYLOAD_INDEXES
from podbrief_clustering.vectors_cli import vectors
from typer.testing import CliRunner

pytestmark = pytest.mark.unit

MODEL = "all-MiniLM-L6-v2-onnx-int8"  # the configured default: the store records it
SPEC = CollectionSpec("insights", MODEL, 384, payload_indexes=PAYLOAD_INDEXES, build_index_min_points=0)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    for name in ("CLUSTERING_QDRANT__URL", "CLUSTERING_QDRANT__PATH", "CLUSTERING_QDRANT__COLLECTION"):
        monkeypatch.delenv(name, raising=False)
    app = typer.Typer()
    app.add_typer(vectors, name="vectors")
    return app


def _points(n: int) -> list[Point]:
    rng = np.random.default_rng(3)
    return [Point(uuid.uuid4(), v, {"show": "a", "text": f"t{i}"}) for i, v in enumerate(rng.standard_normal((n, 384)))]


def _fill(root: Path, n: int) -> None:
    async def run() -> None:
        index = EdgeIndex(root, SPEC)
        await index.open()
        try:
            await index.upsert(_points(n))
        finally:
            await index.close()

    asyncio.run(run())


def test_info_and_build_index(cli: typer.Typer, tmp_path: Path) -> None:
    store = tmp_path / "vectors"
    _fill(store, 40)
    info = CliRunner().invoke(cli, ["vectors", "info", "--path", str(store)])
    assert info.exit_code == 0, info.output
    assert re.search(r"points\s+40\b", info.stdout) and re.search(r"model\s+" + re.escape(MODEL), info.stdout)
    assert re.search(r"unindexed\s+40\b", info.stdout) and "disk" in info.stdout
    built = CliRunner().invoke(cli, ["vectors", "build-index", "--path", str(store)])
    assert built.exit_code == 0, built.output
    # 40 points are far below the size at which a segment gets a graph: said, not hidden.
    assert "0 of 40 points in the HNSW graph" in built.stderr and "searched exactly" in built.stderr


def test_errors_name_the_store_and_the_way_out(cli: typer.Typer, tmp_path: Path) -> None:
    missing = CliRunner().invoke(cli, ["vectors", "info", "--path", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "no collection 'insights' in" in missing.stderr

    store = tmp_path / "vectors"
    _fill(store, 3)

    async def hold_and_build() -> tuple[int, str]:
        index = EdgeIndex(store, SPEC)
        await index.open()
        try:
            result = await asyncio.to_thread(CliRunner().invoke, cli, ["vectors", "build-index", "--path", str(store)])
        finally:
            await index.close()
        return result.exit_code, result.stderr

    code, err = asyncio.run(hold_and_build())
    assert code == 2 and "open in another process" in err


def test_migrate_a_local_mode_store_in_place(cli: typer.Typer, tmp_path: Path) -> None:
    from podbrief.storage.vectors.client import QdrantClientIndex
    from qdrant_client import AsyncQdrantClient

    store = tmp_path / "qdrant"
    points = _points(25)

    async def legacy() -> None:
        index = QdrantClientIndex(AsyncQdrantClient(path=str(store)), SPEC)
        await index.open()
        try:
            await index.upsert(points)
        finally:
            await index.close()

    asyncio.run(legacy())
    refused = CliRunner().invoke(cli, ["vectors", "info", "--path", str(store)])
    assert refused.exit_code == 2 and f"podbrief vectors migrate {store}" in refused.stderr

    moved = CliRunner().invoke(cli, ["vectors", "migrate", str(store)])
    assert moved.exit_code == 0, moved.output
    assert f"insights: 25 points ({MODEL}, 384-d) now in Qdrant Edge at {store}" in moved.stderr
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("qdrant.local-mode-")]
    assert len(kept) == 1 and str(kept[0]) in moved.stderr

    info = CliRunner().invoke(cli, ["vectors", "info", "--path", str(store)])
    assert info.exit_code == 0 and re.search(r"points\s+25\b", info.stdout), info.output
    again = CliRunner().invoke(cli, ["vectors", "migrate", str(store)])
    assert again.exit_code == 2 and "not a qdrant-client local-mode store" in again.stderr
