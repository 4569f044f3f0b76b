"""Clustering benchmark (`python -m bench.clustering`): insights per second through the service's
code path (embed + upsert + assign), then search p50/p99 in Qdrant local mode at the given sizes next to a
brute-force numpy baseline over the same vectors and queries.

Filling 100,000 points through the real embedder would take hours on a laptop CPU, so the search part
stores synthetic points: real MiniLM vectors of the labelled set plus small Gaussian noise, renormalised.
Writes the "clustering" section of bench/results.json and RESULTS.md (`--out-dir`; `--smoke`: tiny sizes)."""

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

DATA = Path(__file__).resolve().parents[1] / "services" / "clustering" / "tests" / "data" / "labelled_insights.jsonl"


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


# all-MiniLM-L6-v2: layers, width, feed-forward width.
MINILM = {"layers": 6, "d": 384, "ffn": 1536}


def _token_counts(texts: list[str]) -> list[int]:
    from podbrief.embeddings import default_paths
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(default_paths()[1]))
    return [sum(e.attention_mask) for e in tok.encode_batch(texts)]


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    from podbrief.embeddings import Embedder

    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="podbrief-bench-") as tmp:
        root = Path(tmp)
        out.append({"throughput": await throughput(args.insights, root)})
        sys.stderr.write(json.dumps(out[-1]) + "\n")
        rows = [json.loads(line) for line in DATA.read_text().splitlines() if line]
        base = Embedder().embed([r["text"] for r in rows])
        for size in args.sizes:
            out.append({"search": await search_latency(size, args.queries, root, base)})
            sys.stderr.write(json.dumps(out[-1]) + "\n")
    return out


def _publish(args: argparse.Namespace, results: list[dict[str, Any]], command: str) -> None:
    from bench.floors import int8_gemm_gops, memory_read_gbps, transformer_layer_flops
    from bench.report import Comparison, Floor, update_section

    tp = next(r["throughput"] for r in results if "throughput" in r)
    searches = [r["search"] for r in results if "search" in r]
    peer = "brute-force numpy (exact)"
    comparisons = []
    for s in searches:
        for q in (50, 99):
            comparisons.append(
                Comparison(
                    "clustering",
                    f"search p{q}, {s['stored']:,} points, top-10",
                    "ms",
                    s[f"qdrant_local_p{q}_ms"],
                    peer,
                    s[f"numpy_p{q}_ms"],
                    "lower",
                    note=f"Qdrant local mode; recall@10 vs exact {s['recall_at_10_vs_exact']}" if q == 50 else "",
                )
            )
    # Floors. Search: one pass over every stored vector (float32) at the measured memory read bandwidth.
    gbps = memory_read_gbps()
    largest = max(searches, key=lambda s: s["stored"])
    scan_bytes = largest["stored"] * 384 * 4
    floors = [
        Floor(
            "clustering",
            f"search p50, {largest['stored']:,} points",
            "ms",
            largest["qdrant_local_p50_ms"],
            scan_bytes / (gbps * 1e9) * 1e3,
            f"brute force reads {largest['stored']:,} x 384 float32 = {scan_bytes / 1e6:.3g} MB per query at the "
            f"measured {gbps:.1f} GB/s memory read bandwidth (an index reads less: this bounds exact search)",
        )
    ]
    # Embedding: MiniLM's arithmetic per insight (unpadded tokens) at one core's int8 GEMM rate.
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line]
    counts = _token_counts([r["text"] for r in rows])
    mean_tokens = sum(counts) / len(counts)
    flops = MINILM["layers"] * transformer_layer_flops(MINILM["d"], MINILM["ffn"], round(mean_tokens))
    gops = int8_gemm_gops(threads=1) or 0.0
    if gops:
        floors.append(
            Floor(
                "clustering",
                "embedding time per insight",
                "ms",
                1e3 / tp["embed_per_s"],
                flops / (gops * 1e9) * 1e3,
                f"all-MiniLM-L6-v2: 6 layers x d 384 (FFN 1536) over {mean_tokens:.0f} tokens per insight (mean of "
                f"the labelled set) = {flops / 1e6:.0f} MFLOP, at this CPU's measured {gops:.0f} GOP/s int8 GEMM "
                "(onnxruntime MatMulInteger, 1 thread, as the embedder runs); padding, tokenisation and pooling "
                "ignored",
            )
        )
    update_section(
        "clustering",
        title="Clustering: embedding, assignment and vector search",
        command=command,
        comparisons=comparisons,
        floors=floors,
        details={
            "throughput through the service's code path": [
                {
                    "insights": tp["insights"],
                    "embeddings_per_s": tp["embed_per_s"],
                    "insights_per_s (embed + upsert + duplicate check + assign + related)": tp["pipeline_per_s"],
                    "embedding model": tp["embedding_model"],
                }
            ],
            "search": searches,
        },
        notes=(
            f"Search: top-10 over synthetic points (real MiniLM vectors of the labelled set plus noise, "
            f"renormalised), {args.queries} queries, Qdrant local mode (the service's embedded store) against "
            "brute-force numpy over the same vectors and queries. No peer runs the throughput part (it is the "
            "service's own path); it is listed as a detail."
        ),
        extra={"memory_read_gbps": gbps, "int8_gemm_gops": gops, "mean_tokens": mean_tokens},
        order=40,
        out_dir=args.out_dir,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--insights", type=int, default=None, help="insights for the throughput run (256)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="stored points (10000 100000)")
    parser.add_argument("--queries", type=int, default=None, help="search queries per size (200)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args()
    args.insights = args.insights or (8 if args.smoke else 256)
    args.sizes = args.sizes or ([300] if args.smoke else [10_000, 100_000])
    args.queries = args.queries or (10 if args.smoke else 200)
    results = asyncio.run(main_async(args))
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    _publish(args, results, "python -m bench.clustering " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
