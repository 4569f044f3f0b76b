"""Clustering benchmark (`python -m podbrief_clustering.bench`): insights per second through the service's
code path (embed + upsert + assign), then search p50/p99 in Qdrant local mode at the given sizes next to a
brute-force numpy baseline over the same vectors and queries.

Filling 100,000 points through the real embedder would take hours on a laptop CPU, so the search part
stores synthetic points: real MiniLM vectors of the labelled set plus small Gaussian noise, renormalised."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "tests" / "data" / "labelled_insights.jsonl"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


async def throughput(n: int, root: Path) -> dict[str, Any]:
    from podbrief.embeddings import Embedder
    from podbrief.events import EpisodeRef, Insight
    from podbrief.settings import DatabaseSettings, QdrantSettings
    from podbrief_clustering.app import open_clusterer
    from podbrief_clustering.core import Item
    from podbrief_clustering.settings import ClusteringSettings
    from pydantic import SecretStr

    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line]
    texts = [f"{rows[i % len(rows)]['text']} (variant {i // len(rows)})" for i in range(n)]
    settings = ClusteringSettings(
        _env_file=None,  # type: ignore[call-arg]
        qdrant=QdrantSettings(path=root / "qdrant-throughput"),
        db=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{root / 'bench.db'}")),
        recluster_interval_s=0,
    )
    embedder = Embedder(settings.embedding)
    t0 = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - t0
    async with open_clusterer(settings, embedder=embedder) as clusterer:
        t0 = time.perf_counter()
        for start in range(0, n, 16):
            ep = EpisodeRef(
                episode_id=uuid.uuid4(),
                feed_id=uuid.uuid4(),
                feed_url="https://bench.example/feed",
                show=f"show {start % 7}",
                title=f"episode {start}",
            )
            await clusterer.process(
                [
                    Item(ep, Insight(insight_id=uuid.uuid4(), text=t, quote=t, start_s=0, end_s=1))
                    for t in texts[start : start + 16]
                ]
            )
        total_s = time.perf_counter() - t0
    return {
        "insights": n,
        "embed_per_s": round(n / embed_s, 1),
        "pipeline_per_s": round(n / total_s, 1),
        "embedding_model": embedder.name,
    }


async def search_latency(size: int, queries: int, root: Path, base: np.ndarray) -> dict[str, Any]:
    from qdrant_client import AsyncQdrantClient, models

    rng = np.random.default_rng(size)
    vecs = base[rng.integers(0, len(base), size)] + rng.normal(0, 0.03, (size, base.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    qs = base[rng.integers(0, len(base), queries)] + rng.normal(0, 0.03, (queries, base.shape[1])).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    client = AsyncQdrantClient(path=str(root / f"qdrant-{size}"))
    await client.create_collection(
        "bench", vectors_config=models.VectorParams(size=base.shape[1], distance=models.Distance.COSINE)
    )
    t0 = time.perf_counter()
    for start in range(0, size, 2000):
        chunk = vecs[start : start + 2000]
        await client.upsert(
            "bench",
            points=models.Batch(ids=list(range(start, start + len(chunk))), vectors=chunk.tolist()),
            wait=True,
        )
    fill_s = time.perf_counter() - t0
    qdrant_t: list[float] = []
    agree = 0
    for q in qs:
        t = time.perf_counter()
        res = await client.query_points("bench", query=q.tolist(), limit=10)
        qdrant_t.append(time.perf_counter() - t)
        exact = np.argsort(-(vecs @ q))[:10]
        agree += len({p.id for p in res.points} & set(exact.tolist()))
    await client.close()
    numpy_t: list[float] = []
    for q in qs:
        t = time.perf_counter()
        scores = vecs @ q
        top = np.argpartition(-scores, 10)[:10]
        top[np.argsort(-scores[top])]
        numpy_t.append(time.perf_counter() - t)
    return {
        "stored": size,
        "fill_s": round(fill_s, 1),
        "qdrant_local_p50_ms": round(_pct(qdrant_t, 50), 2),
        "qdrant_local_p99_ms": round(_pct(qdrant_t, 99), 2),
        "numpy_p50_ms": round(_pct(numpy_t, 50), 2),
        "numpy_p99_ms": round(_pct(numpy_t, 99), 2),
        "recall_at_10_vs_exact": round(agree / (10 * len(qs)), 3),
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    from podbrief.embeddings import Embedder

    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="podbrief-bench-") as tmp:
        root = Path(tmp)
        out.append({"throughput": await throughput(args.insights, root)})
        rows = [json.loads(line) for line in DATA.read_text().splitlines() if line]
        base = Embedder().embed([r["text"] for r in rows])
        for size in args.sizes:
            out.append({"search": await search_latency(size, args.queries, root, base)})
            sys.stderr.write(json.dumps(out[-1]) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--insights", type=int, default=256, help="insights for the throughput run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    results = asyncio.run(main_async(parser.parse_args()))
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
