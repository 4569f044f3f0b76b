"""Vector search and inserts in clustering's embedded store (Qdrant Edge, the service's own `EdgeIndex` and
settings) beside brute-force numpy over the same points and queries, in the same run.

Points are real MiniLM vectors of sentences from the shared podcast transcripts (../shared/data/transcripts;
the labelled insights when those are absent), each stored many times with small Gaussian noise and
renormalised, with the payload clustering stores (show among 300, episode, publication time, text). Queries
are held-out sentences, so a query is a new insight looking for its neighbours, as in the service.

Each step runs in its own child process, one after the other, so each RSS is its own and nothing slows
anything else. Qdrant Edge: fill (the first tenth in episode-sized batches of 16, the rest in batches of 1,000)
and the HNSW graph built the way the service builds it (in a child process); then a fresh process opens the
store as the service does at start and searches with no filter, a show filter (about 0.3% of points) and a
time-window filter (the newest quarter), its RSS being the store's footprint in the service; then again with
fresh points outside the graph (searched exactly, as between two starts of the service). numpy: a preallocated float32
matrix, `X @ q` and argpartition; filters by per-show row lists built once, or a slice of the rows (points
arrive in publication order).
Recall@10 is against numpy's exact answer."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRANSCRIPTS = ROOT.parent / "shared" / "data" / "transcripts" / "changelog"
LABELLED = ROOT / "services" / "clustering" / "tests" / "data" / "labelled_insights.jsonl"
SHOWS = 300
# Distinct real sentences behind the points (each stored many times with noise): MiniLM embeds ~20 a second on
# one busy core, so more would make the bench mostly embedding.
BASE_SENTENCES = 1000
NOISE = 0.03
T0 = 1_764_000_000.0
DAY = 86_400.0


def sentences(limit: int, seed: int = 0) -> list[str]:
    """Distinct sentences of 60-300 characters from the shared transcripts (speaker names stripped)."""
    found: list[str] = []
    if TRANSCRIPTS.is_dir():
        for path in sorted(TRANSCRIPTS.glob("*.md")):
            text = re.sub(r"\*\*[^*]+:\*\*", " ", path.read_text(encoding="utf-8"))
            found += [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if 60 <= len(s.strip()) <= 300]
    if len(found) < 100:
        found += [json.loads(line)["text"] for line in LABELLED.read_text().splitlines() if line]
    unique = list(dict.fromkeys(found))
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)  # type: ignore[arg-type]
    return unique[:limit]


def make_data(path: Path, size: int, queries: int, *, seed: int = 0) -> dict[str, Any]:
    """Write points, payload columns and queries to `path` (.npz) for the two sides to read. The sentences'
    embeddings are kept beside `path`'s directory, so a second size reuses them."""
    texts = sentences(min(size, BASE_SENTENCES) + queries, seed)
    base_n = max(len(texts) - queries, 1)
    cache = path.parent.parent / f"embeddings-{hashlib.sha1(chr(0).join(texts).encode()).hexdigest()[:16]}.npy"
    t0 = time.perf_counter()
    if cache.exists():
        vecs = np.load(cache)
    else:
        from podbrief.embeddings import Embedder

        vecs = Embedder().embed(texts)
        np.save(cache, vecs)
    embed_s = time.perf_counter() - t0
    base, held_out = vecs[:base_n], vecs[base_n:]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, base_n, size)
    points = base[pick] + rng.normal(0, NOISE, (size, base.shape[1])).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    if len(held_out) < queries:  # a tiny corpus (smoke runs): noisy copies stand in for held-out sentences
        extra = base[rng.integers(0, base_n, queries - len(held_out))]
        extra = extra + rng.normal(0, NOISE, extra.shape).astype(np.float32)
        held_out = np.concatenate([held_out, extra / np.linalg.norm(extra, axis=1, keepdims=True)])
    np.savez(
        path,
        points=points.astype(np.float32),
        text_of=pick.astype(np.int32),
        show=rng.integers(0, SHOWS, size).astype(np.int32),
        published_ts=(T0 + np.sort(rng.uniform(0, 120 * DAY, size))).astype(np.float64),
        queries=held_out[:queries].astype(np.float32),
    )
    return {"distinct_sentences": base_n, "held_out_queries": queries, "embed_s": round(embed_s, 1)}


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _payload(i: int, d: dict[str, np.ndarray]) -> dict[str, Any]:
    """The fields clustering stores with each insight (see point_payload), at their usual sizes."""
    episode = uuid.UUID(int=i // 12 + 1)
    return {
        "insight_id": str(uuid.UUID(int=i + 1)),
        "text": f"Insight {i}: a self-contained claim in two or three sentences, as extraction writes it for the "
        "brief, with who said it and why it matters.",
        "quote": "the verbatim quote from the transcript that backs the claim, a sentence or two long",
        "start_s": float(i % 3600),
        "end_s": float(i % 3600 + 20),
        "speaker": None,
        "kind": "claim",
        "importance": 3,
        "show": f"show {int(d['show'][i])}",
        "episode_id": str(episode),
        "episode_title": f"Episode {i // 12}",
        "feed_id": str(uuid.UUID(int=int(d["show"][i]) + 1)),
        "link": f"https://example.com/episodes/{i // 12}",
        "language": "en",
        "published_ts": float(d["published_ts"][i]),
        "cluster_id": str(uuid.UUID(int=int(d["text_of"][i]) + 1)),
        "duplicate_of": None,
    }


def _filters(d: dict[str, np.ndarray], n_queries: int) -> tuple[list[str], float]:
    """Per query, the show it filters on; and the start of the newest quarter."""
    rng = np.random.default_rng(99)
    shows = [f"show {int(s)}" for s in rng.integers(0, SHOWS, n_queries)]
    since = float(np.quantile(d["published_ts"], 0.75))
    return shows, since


def _pcts(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def disk_bytes(path: Path) -> int:
    """Allocated blocks, not apparent sizes: Edge preallocates its WAL files sparsely."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def _rss_mb() -> dict[str, float]:
    """Resident memory now (file-backed pages of the store's mmaps included). Not the peak: Linux carries a
    process's peak across exec, so a child's ru_maxrss would start at its parent's."""
    import psutil

    return {"rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}


# -- the two sides, each in its own process -------------------------------------------------------------------


def _edge_spec(root: Path, dim: int) -> Any:
    """The service's own collection spec (settings defaults), the graph built only when asked."""
    from dataclasses import replace

    from podbrief.settings import QdrantSettings
    from podbrief_clustering.app import collection_spec
    from podbrief_clustering.settings import ClusteringSettings

    settings = ClusteringSettings(_env_file=None, qdrant=QdrantSettings(path=root))  # type: ignore[call-arg]
    return replace(collection_spec(settings, model="bench", dim=dim), build_index_min_points=0)


async def _edge_fill(data: Path, root: Path) -> dict[str, Any]:
    """Fill the store through the service's `EdgeIndex`, then build the HNSW graph as the service does."""
    from podbrief.storage.vectors import Point
    from podbrief.storage.vectors.edge import EdgeIndex

    d = _load(data)
    n = len(d["points"])
    spec = _edge_spec(root, d["points"].shape[1])
    index = EdgeIndex(root, spec)
    await index.open()
    payloads = [_payload(i, d) for i in range(n)]
    small = n // 10
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, small, 16):
        batch = range(start, min(small, start + 16))
        await index.upsert([Point(uuid.UUID(int=i + 1), d["points"][i], payloads[i]) for i in batch])
    small_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for start in range(small, n, 1000):
        batch = range(start, min(n, start + 1000))
        await index.upsert([Point(uuid.UUID(int=i + 1), d["points"][i], payloads[i]) for i in batch])
    bulk_s = time.perf_counter() - t1
    fill_s, fill_cpu = time.perf_counter() - t0, time.process_time() - c0
    await index.close()
    t0 = time.perf_counter()
    await index.open(build_index=True)
    build_s = time.perf_counter() - t0
    info = await index.info()
    await index.close()
    return {
        "points": info.points,
        "indexed": info.indexed,
        "segments": info.segments,
        "insert_per_s": round(n / fill_s, 1),
        "insert_per_cpu_s": round(n / fill_cpu, 1),
        "insert_per_s_batches_of_16": round(small / small_s, 1) if small else None,
        "insert_per_s_batches_of_1000": round((n - small) / bulk_s, 1),
        "build_index_s": round(build_s, 1),
        "disk_mb": round(disk_bytes(root) / 2**20, 1),
        "spec": asdict(spec),
        "search_ef": spec.search_ef,
        "hnsw": {"m": spec.hnsw_m, "ef_construct": spec.hnsw_ef_construct},
    }


async def _edge_serve(data: Path, root: Path, spec_json: str, tail: int) -> dict[str, Any]:
    """A fresh process opens the built store, as the service does at start, and searches; its RSS, less what it
    held before opening the store, is the store's footprint. Then `tail` fresh points arrive and are searched
    exactly beside the graph. It imports only the store (the spec comes from the fill step)."""
    from podbrief.storage.vectors import CollectionSpec, Filter, Match, Point, Range
    from podbrief.storage.vectors.edge import EdgeIndex

    with np.load(data) as npz:
        queries = npz["queries"]
        n, dim = npz["points"].shape
        shows, since = _filters({"published_ts": npz["published_ts"]}, len(queries))
        rng = np.random.default_rng(5)
        fresh = npz["points"][rng.integers(0, n, tail)] if tail else np.empty((0, dim), np.float32)
    before = _rss_mb()["rss_mb"]
    index = EdgeIndex(root, CollectionSpec(**json.loads(spec_json)))
    await index.open(build_index=False)
    cases: dict[str, list[Filter | None]] = {
        "none": [None] * len(queries),
        "show": [Filter(must=(Match("show", s),)) for s in shows],
        "since": [Filter(must=(Range("published_ts", gte=since),))] * len(queries),
    }

    async def timed(flts: list[Filter | None]) -> dict[str, Any]:
        times, ids = [], []
        for q, flt in zip(queries, flts, strict=True):
            t = time.perf_counter()
            hits = await index.search(q, limit=10, filter=flt)
            times.append(time.perf_counter() - t)
            ids.append([h.id.int - 1 for h in hits])
        return {**_pcts(times), "ids": ids}

    for q in queries[:10]:  # warm the page cache, as a running service is
        await index.search(q, limit=10)
    searched = {name: await timed(flts) for name, flts in cases.items()}
    rss = _rss_mb()
    with_fresh: dict[str, Any] = {}
    if tail:
        fresh = fresh + rng.normal(0, NOISE, fresh.shape).astype(np.float32)
        fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
        payload = {"show": "show 0", "published_ts": T0, "text": "a fresh insight"}
        for start in range(0, tail, 1000):
            batch = range(start, min(tail, start + 1000))
            await index.upsert([Point(uuid.UUID(int=n + i + 1), fresh[i], payload) for i in batch])
        info = await index.info()
        with_fresh = {"fresh_points": tail, "unindexed": info.unindexed, **await timed(cases["none"])}
        with_fresh.pop("ids")
    await index.close()
    return {"search": searched, "with_fresh_points": with_fresh, "rss_mb": rss["rss_mb"], "rss_before_open_mb": before}


def _numpy_side(data: Path) -> dict[str, Any]:
    before = _rss_mb()["rss_mb"]
    d = _load(data)
    n, dim = d["points"].shape
    # "Insert": rows copied into a preallocated matrix and the payload kept beside it, in batches of 1,000.
    payloads: list[dict[str, Any]] = []
    x = np.empty((n, dim), np.float32)
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        stop = min(n, start + 1000)
        chunk = d["points"][start:stop]
        x[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
        payloads.extend(_payload(i, d) for i in range(start, stop))
    fill_s = time.perf_counter() - t0
    del d["points"]  # the input; the store is `x` and `payloads`
    show_col = np.array([int(s) for s in d["show"]])
    rows_of_show = {f"show {s}": np.flatnonzero(show_col == s) for s in range(SHOWS)}
    ts = d["published_ts"]
    shows, since = _filters(d, len(d["queries"]))

    def top(scores: np.ndarray, rows: np.ndarray | None) -> list[int]:
        k = min(10, len(scores))
        if k == 0:
            return []
        part = np.argpartition(-scores, k - 1)[:k]
        best = part[np.argsort(-scores[part], kind="stable")]
        return [int(i) for i in (rows[best] if rows is not None else best)]

    out: dict[str, Any] = {}
    for name in ("none", "show", "since"):
        times, ids = [], []
        for q, show in zip(d["queries"], shows, strict=True):
            t = time.perf_counter()
            if name == "none":
                found = top(x @ q, None)
            elif name == "show":
                rows = rows_of_show[show]
                found = top(x[rows] @ q, rows)
            else:
                # Points arrive in publication order, so the window is a slice: no copy, no mask.
                first = int(np.searchsorted(ts, since))
                found = [first + i for i in top(x[first:] @ q, None)]
            times.append(time.perf_counter() - t)
            ids.append(found)
        out[name] = {**_pcts(times), "ids": ids}
    return {
        "insert_per_s": round(n / fill_s, 1),
        "search": out,
        "rss_mb": _rss_mb()["rss_mb"],
        "rss_before_mb": before,
        "payloads": len(payloads),
    }


def _run_child(side: str, out: Path, **args: Any) -> dict[str, Any]:
    """One step in a fresh process, so each RSS is that step's own."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "bench.vectors", side, "--out", str(out)]
    for key, value in args.items():
        cmd += [f"--{key}", str(value)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} side failed: {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def recall_at_10(found: list[list[int]], exact: list[list[int]]) -> float:
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact, strict=True))
    return round(hits / max(sum(len(e) for e in exact), 1), 4)


def measure(size: int, queries: int, root: Path, *, tail: int | None = None) -> dict[str, Any]:
    """Both sides over the same `size` points and `queries` queries; then `tail` fresh points after the build
    (default: the most the service lets stay outside the graph between two starts, at most a fifth of `size`)."""
    if tail is None:
        from podbrief_clustering.settings import ClusteringSettings

        limit = ClusteringSettings.model_fields["build_index_min_points"].default
        tail = min(max(limit - 1, 0), size // 5)
    root.mkdir(parents=True, exist_ok=True)
    data = root / f"data-{size}.npz"
    corpus = _run_child("data", root / f"data-{size}.json", data=data, size=size, queries=queries)
    load_before = os.getloadavg()
    store = root / f"edge-{size}"
    filled = _run_child("edge-fill", root / f"edge-fill-{size}.json", data=data, store=store)
    served = _run_child(
        "edge-serve",
        root / f"edge-serve-{size}.json",
        data=data,
        store=store,
        tail=tail,
        spec=json.dumps(filled.pop("spec")),
    )
    edge = {**filled, **served}
    peer = _run_child("numpy", root / f"numpy-{size}.json", data=data)
    load_after = os.getloadavg()
    out: dict[str, Any] = {"stored": size, "queries": queries, "corpus": corpus}
    for name in ("none", "show", "since"):
        e, p = edge["search"][name], peer["search"][name]
        out[f"search_{name}"] = {
            "edge_p50_ms": e["p50_ms"],
            "edge_p99_ms": e["p99_ms"],
            "numpy_p50_ms": p["p50_ms"],
            "numpy_p99_ms": p["p99_ms"],
            "recall_at_10": recall_at_10(e["ids"], p["ids"]),
        }
    out["edge"] = {k: v for k, v in edge.items() if k != "search"}
    out["numpy"] = {k: v for k, v in peer.items() if k != "search"}
    out["load_average"] = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="one side of bench.vectors (run by measure())")
    parser.add_argument("side", choices=["data", "edge-fill", "edge-serve", "numpy"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--queries", type=int, default=0)
    parser.add_argument("--tail", type=int, default=0)
    parser.add_argument("--spec", default="{}", help="the collection spec as JSON (edge-serve)")
    args = parser.parse_args()
    if args.side == "data":
        result = make_data(args.data, args.size, args.queries)
    elif args.side == "edge-fill":
        result = asyncio.run(_edge_fill(args.data, args.store))
    elif args.side == "edge-serve":
        result = asyncio.run(_edge_serve(args.data, args.store, args.spec, args.tail))
    else:
        result = _numpy_side(args.data)
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
