"""Ranking benchmark: top-5 briefs for 1,000 / 10,000 / 100,000 synthetic subscribers over 5,000 candidate
insights (384-d), vectorised in batches, beside the naive per-subscriber Python loop (timed on a sample and
scaled, since the full loop would take hours). Each size runs in its own process so peak RSS is its own.

    python -m bench.delivery [--sizes 1000,10000,100000] [--candidates 5000] [--naive-sample 20]

Writes the "delivery" section of bench/results.json and RESULTS.md (`--out-dir`; `--smoke`: tiny sizes).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
from podbrief_delivery.ranking import Candidates, Profile, rank, rank_naive
from podbrief_delivery.settings import RankingSettings

DIM = 384
NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    m = rng.standard_normal((n, DIM)).astype(np.float32)
    norms: npt.NDArray[np.float32] = np.linalg.norm(m, axis=1, keepdims=True)
    return m / norms


def candidates(n: int, rng: np.random.Generator) -> Candidates:
    topics = unit_rows(rng, max(1, n // 5))
    which = rng.integers(0, len(topics), n)
    vecs = topics[which] + 0.4 * unit_rows(rng, n)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    clusters = [uuid.UUID(int=int(w) + 1) for w in which]
    return Candidates.build(
        ids=[uuid.UUID(int=(1 << 64) + i) for i in range(n)],
        vectors=vecs,
        importance=rng.random(n),
        cluster_ids=clusters,
        cluster_sizes=rng.integers(1, 8, n),
        cluster_shows=rng.integers(1, 5, n),
        shows=[f"show {i % 300}" for i in range(n)],
        times=[NOW - timedelta(hours=float(h)) for h in rng.random(n) * 96],
        now=NOW,
        settings=RankingSettings(),
    )


def profiles(n: int, cands: Candidates, rng: np.random.Generator) -> list[Profile]:
    vecs = unit_rows(rng, n)
    return [
        Profile(
            uuid.UUID(int=i + 1),
            vecs[i],
            frozenset({f"show {i % 300}"}),
            frozenset(cands.ids[j] for j in rng.integers(0, len(cands), 10)),
        )
        for i in range(n)
    ]


def one(n_subs: int, n_cands: int, batch: int, naive_sample: int) -> dict[str, float]:
    rng = np.random.default_rng(42)
    cands = candidates(n_cands, rng)
    settings = RankingSettings(min_relevance=-1.0)
    t0 = time.perf_counter()
    c0 = time.process_time()
    picks = 0
    for i in range(0, n_subs, batch):
        # Profiles are built per batch, as the service loads subscribers per batch.
        ps = profiles(min(batch, n_subs - i), cands, rng)
        for r in rank(cands, ps, settings, 5):
            picks += len(r.picks)
    vec_s = time.perf_counter() - t0
    # CPU seconds beside wall seconds: on a shared machine the gap is time spent waiting for a core.
    vec_cpu = time.process_time() - c0
    sample = profiles(naive_sample, cands, rng)
    t0 = time.perf_counter()
    for p in sample:
        rank_naive(cands, p, settings, 5)
    naive_per_sub = (time.perf_counter() - t0) / max(1, naive_sample)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "subscribers": n_subs,
        "candidates": n_cands,
        "vectorised_s": round(vec_s, 2),
        "vectorised_cpu_s": round(vec_cpu, 2),
        "picks": picks,
        "naive_s_per_subscriber": round(naive_per_sub, 4),
        "naive_s_estimated": round(naive_per_sub * n_subs, 1),
        "peak_rss_mb": round(peak_mb, 1),
    }


def _publish(args: argparse.Namespace, rows: list[dict[str, float]], command: str) -> None:
    from bench.floors import fp32_gemm_gflops
    from bench.report import Comparison, Floor, update_section

    peer = "naive per-subscriber loop"
    comparisons = [
        Comparison(
            "delivery",
            f"rank top-5 for {int(r['subscribers']):,} subscribers x {int(r['candidates']):,} candidates",
            "s",
            r["vectorised_s"],
            peer,
            r["naive_s_estimated"],
            "lower",
            note=f"naive loop timed on {args.naive_sample} subscribers and scaled",
        )
        for r in rows
    ]
    gflops = fp32_gemm_gflops(1024)
    big = max(rows, key=lambda r: r["subscribers"])
    flops = 2 * big["subscribers"] * big["candidates"] * DIM
    floors = [
        Floor(
            "delivery",
            f"rank {int(big['subscribers']):,} subscribers",
            "s",
            big["vectorised_s"],
            flops / (gflops * 1e9),
            f"the relevance matrix {int(big['subscribers']):,} x {int(big['candidates']):,} x {DIM} = "
            f"{flops / 1e9:.3g} GFLOP at this machine's measured {gflops:.0f} GFLOP/s fp32 GEMM (numpy BLAS, 1024^3, "
            "all its threads); top-k selection, diversity and profile loading ignored",
        )
    ]
    update_section(
        "delivery",
        title="Delivery: ranking briefs",
        command=command,
        comparisons=comparisons,
        floors=floors,
        details={"sizes (each in its own process)": rows},
        notes=(
            f"Top-5 picks per subscriber over {int(rows[0]['candidates']):,} candidate insights (384-d), "
            f"vectorised in batches of {args.batch} (profiles built per batch, as the service loads them), "
            "beside the naive per-subscriber Python loop of the same ranking rules (timed on a sample and scaled: "
            "the full loop would take hours)."
        ),
        extra={"fp32_gemm_gflops": gflops},
        order=50,
        out_dir=args.out_dir,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=None, help="subscriber counts (default 1000,10000,100000)")
    ap.add_argument("--candidates", type=int, default=None, help="candidate insights (default 5000)")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--naive-sample", type=int, default=None, help="subscribers the naive loop runs (default 20)")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness, not the speed")
    ap.add_argument("--out-dir", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.sizes = args.sizes or ("200,1000" if args.smoke else "1000,10000,100000")
    args.candidates = args.candidates or (500 if args.smoke else 5000)
    args.naive_sample = args.naive_sample or (3 if args.smoke else 20)
    if args.one is not None:
        sys.stdout.write(json.dumps(one(args.one, args.candidates, args.batch, args.naive_sample)) + "\n")
        return
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.delivery",
                "--one",
                str(n),
                "--candidates",
                str(args.candidates),
                "--batch",
                str(args.batch),
                "--naive-sample",
                str(args.naive_sample),
            ],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        sys.stdout.write(
            f"{r['subscribers']:>7} subscribers x {r['candidates']} candidates: "
            f"vectorised {r['vectorised_s']:>7.2f} s wall ({r['vectorised_cpu_s']:.1f} s CPU), "
            f"peak RSS {r['peak_rss_mb']:>7.1f} MB | "
            f"naive loop {r['naive_s_per_subscriber']:.3f} s/subscriber "
            f"= ~{r['naive_s_estimated']:.0f} s\n"
        )
        sys.stdout.flush()
    sys.stdout.write(json.dumps(rows) + "\n")
    _publish(args, rows, "python -m bench.delivery " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
