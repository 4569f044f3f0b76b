"""The capacity model: what the world's daily podcast output would need from each stage, with every step's
arithmetic shown. Measured per-stage costs come from bench/results.json where present (else labelled
defaults); GPU throughput comes from published figures, each with its source.

    python -m bench.capacity [--results bench/results.json] [--out bench/CAPACITY.md]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from podbrief.events import (
    BriefDelivered,
    BriefDeliveredPayload,
    EpisodeDiscovered,
    EpisodeDiscoveredPayload,
    EpisodeRef,
    EpisodeTranscribed,
    EpisodeTranscribedPayload,
    Event,
    Insight,
    InsightClustered,
    InsightClusteredPayload,
    InsightsExtracted,
    InsightsExtractedPayload,
    PackedTranscript,
    Segment,
    Transcript,
    Word,
    encode,
    new_event,
)
from podbrief.events.topics import TOPICS

HERE = Path(__file__).resolve().parent
DAY_S = 86_400
RETRIEVED = "retrieved 2026-11-29 through the session's search tool (stored copy of the public page)"

Origin = Literal["given", "measured", "default", "published", "assumption", "code"]


@dataclass(frozen=True)
class Source:
    key: str
    title: str
    url: str
    says: str
    note: str = RETRIEVED


SOURCES: tuple[Source, ...] = (
    Source(
        "fw-readme",
        "faster-whisper README, Benchmark section (faster-whisper v1.1.0)",
        "https://github.com/SYSTRAN/faster-whisper#benchmark",
        "13 minutes of audio, large-v2 on GPU, beam 5: faster-whisper fp16 1m03s (4525 MB VRAM); fp16 batch_size=8 "
        "17s (6090 MB); int8 59s (2926 MB); int8 batch_size=8 16s (4500 MB). 'GPU Benchmarks are Executed with CUDA "
        "12.4 on a NVIDIA RTX 3070 Ti 8GB.' Small model on CPU, 8 threads on an Intel Core i7-12700K: int8 "
        "batch_size=8 51s. distil-whisper-large-v3 fp16 batch_size=16: 25m50s on YT Commons (the set's "
        "duration is not given, so no real-time factor follows from it).",
        RETRIEVED + "; README file in SYSTRAN/faster-whisper at the stored master revision",
    ),
    Source(
        "vllm-pr7117",
        "vLLM PR #7117 (maintainer's benchmark run on H100)",
        "https://github.com/vllm-project/vllm/pull/7117",
        "'On H100: python benchmarks/benchmark_throughput.py --input-len 256 --output-len 256 --model "
        "meta-llama/Meta-Llama-3-8B'; main branch, 3 trials: 24.32 requests/s 12453.04 tokens/s, 24.11 requests/s "
        "12342.76 tokens/s, 24.29 requests/s 12434.40 tokens/s (tokens = prompt + generated).",
    ),
    Source(
        "vllm-i12315",
        "vLLM issue #12315 (a user's reproduction of the vLLM dashboard's 70B figure)",
        "https://github.com/vllm-project/vllm/issues/12315",
        "vLLM 0.6.6, 4 x A100, meta-llama/Llama-3.3-70B-Instruct, tensor parallel 4, ShareGPT, 200 prompts, "
        "--num-scheduler-steps 10: 'Throughput: 3.47 requests/s, 1496.33 total tokens/s, 755.85 output tokens/s' "
        "(the dashboard claimed 5.13 requests/s; we take the lower, reproduced figure).",
    ),
    Source(
        "vllm-blog-v060",
        "vLLM blog: vLLM v0.6.0 performance update",
        "https://blog.vllm.ai/2024/09/05/perf-update.html",
        "Llama 3 8B on 1xH100 and 70B on 4xH100; throughput 'measured under QPS inf'; ShareGPT average input 202, "
        "output 179 tokens. Its throughput figures are in images only, so none is used as a number here; it backs "
        "the choice of 8B on one GPU and 70B on four.",
    ),
    Source(
        "qdrant-capacity",
        "Qdrant documentation: Capacity Planning",
        "https://qdrant.tech/documentation/cloud/capacity-sizing",
        "'memory_size = number_of_vectors * vector_dimension * 4 bytes * 1.5'; 'This extra 50% accounts for metadata "
        "(such as indexes and point versions) and temporary segments created during optimization.' Large datasets "
        "can reduce memory via quantization.",
    ),
    Source(
        "gpu-specs",
        "GPU specification table (secondary source quoting NVIDIA datasheets)",
        "https://genai4a11.github.io/concepts/hardware.html",
        "Memory bandwidth: A100 SXM 80GB 2 TB/s, H100 SXM 80GB 3.35 TB/s, A10G 24GB 600 GB/s, L4 24GB 300 GB/s; "
        "FP16 TFLOPS 312 / 989 / 125 / 242. (NVIDIA's own datasheets were not in the searchable store.)",
    ),
    Source(
        "gpu-prices",
        "Cloud GPU pricing guide, May 2026 (secondary source)",
        "https://www.mercatus-ai.com/blog/cloud-gpu-pricing",
        "On-demand $/GPU-hour, May 2026: A100 80GB hyperscaler $1.50-3.00, specialty $1.10-1.50; H100 SXM5 "
        "hyperscaler $3.50-5.00, specialty $2.50-3.50.",
    ),
    Source(
        "ec2-prices",
        "Amazon EC2 on-demand pricing article, us-east-1, June 2026 (secondary source)",
        "https://main.d1m6t5n8e4tvia.amplifyapp.com/blog/amazon-ec2-on-demand-pricing-instance-families-2026/",
        "'In us-east-1 (June 2026), Linux m7g.large is $0.0816/hr' (2 vCPU) and 'a GPU g5.xlarge is $1.006/hr' "
        "(1 x A10G).",
    ),
)
SOURCE_KEYS = {s.key for s in SOURCES}


@dataclass(frozen=True)
class Input:
    key: str
    label: str
    value: float
    unit: str
    origin: Origin
    note: str
    source: str | None = None


@dataclass(frozen=True)
class Gpu:
    name: str
    mem_gb: float
    bandwidth_gbs: float
    price_h: float


# --- published figures (each tied to a Source) ------------------------------------------------------------------

WHISPER_REF_GPU = "RTX 3070 Ti 8GB"
WHISPER_AUDIO_S = 13 * 60
WHISPER_RUNS: dict[str, float] = {  # seconds for 13 min of audio, large-v2, beam 5 (fw-readme)
    "fp16": 63.0,
    "fp16 batch_size=8": 17.0,
    "int8": 59.0,
    "int8 batch_size=8": 16.0,
}
WHISPER_CHOSEN = "fp16 batch_size=8"
WHISPER_VRAM_GB = 6.09
CPU_SMALL_INT8_BATCH8_S = 51.0  # small model, 8 threads, i7-12700K, 13 min (fw-readme)
CPU_SMALL_THREADS = 8
VLLM_8B_H100_TOK_S = 12_434.40  # median of the three main-branch trials (vllm-pr7117)
VLLM_70B_4XA100_TOK_S = 1_496.33  # vllm-i12315
VLLM_70B_TP = 4


GPU_KINDS = ("L4", "A10G", "A100 80GB", "H100 SXM")


def _gpus(v: dict[str, float]) -> list[Gpu]:
    mem = {"L4": 24, "A10G": 24, "A100 80GB": 80, "H100 SXM": 80}
    return [Gpu(k, mem[k], v[f"bw:{k}"], v[f"price:{k}"]) for k in GPU_KINDS]


def whisper_speed(bandwidth_gbs: float, ref_bandwidth_gbs: float) -> float:
    """Assumed faster-whisper speed (x real time) on a GPU: the published reference run, scaled by memory
    bandwidth (batched beam search is dominated by reading weights and the KV cache)."""
    return WHISPER_AUDIO_S / WHISPER_RUNS[WHISPER_CHOSEN] * bandwidth_gbs / ref_bandwidth_gbs


def llm_8b_tokens_per_s(bandwidth_gbs: float) -> float:
    """Assumed total (prompt + generated) tokens/s of an 8B model on vLLM: the published H100 run, scaled by memory
    bandwidth (decode is bandwidth-bound)."""
    return VLLM_8B_H100_TOK_S * bandwidth_gbs / 3_350


def gpu_assumptions() -> dict[str, dict[str, float]]:
    """What the model assumes each GPU does (the reference GPU of the Whisper figure, then the kinds it sizes):
    Whisper's speed and the 8B LLM's tokens/s, for bench/gpu.py to print beside what it measures."""
    v = {k: i.value for k, i in gather_inputs(Measured()).items()}
    out = {
        WHISPER_REF_GPU: {"bandwidth_gbs": v["bw_ref"], "whisper_x_realtime": whisper_speed(v["bw_ref"], v["bw_ref"])}
    }
    for g in _gpus(v):
        out[g.name] = {
            "bandwidth_gbs": g.bandwidth_gbs,
            "whisper_x_realtime": whisper_speed(g.bandwidth_gbs, v["bw_ref"]),
            "llm_tokens_per_s": llm_8b_tokens_per_s(g.bandwidth_gbs),
        }
    return out


# --- reading results.json ---------------------------------------------------------------------------------------


def _find(obj: Any, key: str) -> Any:
    """The first value stored under `key` anywhere in obj (depth first), or None."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find(v, key)
            if found is not None:
                return found
    return None


def _rows(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        yield obj
        for v in obj.values():
            yield from _rows(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _rows(v)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0 else None


@dataclass
class Measured:
    """Sections of results.json with a provenance label for each."""

    sections: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Measured:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        if data.get("schema_version") == 1 and isinstance(data.get("sections"), dict):
            secs = {k: v for k, v in data["sections"].items() if isinstance(v, dict)}
            return cls(secs, {k: f"measured: results.json `{k}`, {v.get('date', 'undated')}" for k, v in secs.items()})
        # The layout before bench/report.py (one list of rows per stage, undated): its figures are still measured.
        old: dict[str, Any] = {k: v for k, v in data.items() if isinstance(v, list | dict)}
        return cls(old, {k: f"measured: results.json `{k}` (pre-report.py layout, undated)" for k in old})

    def get(self, section: str, key: str) -> tuple[float, str] | None:
        v = _num(_find(self.sections.get(section), key))
        return (v, self.labels[section]) if v is not None else None

    def e2e(self, *path: str, section: str = "e2e") -> tuple[float, str] | None:
        obj: Any = self.sections.get(section, {})
        obj = obj.get("extra", obj) if isinstance(obj, dict) else {}
        for p in path:
            obj = obj.get(p) if isinstance(obj, dict) else None
        v = _num(obj)
        return (v, self.labels[section]) if v is not None else None


# --- inputs -----------------------------------------------------------------------------------------------------


def gather_inputs(m: Measured) -> dict[str, Input]:
    from podbrief_extraction.chunking import PROMPT_OVERHEAD_TOKENS
    from podbrief_extraction.settings import ChunkingSettings, LLMSettings, QualitySettings

    ch = ChunkingSettings()
    ins: list[Input] = [
        Input("episodes_day", "new episodes per day", 70_000, "episodes", "given", "issue #10"),
        Input("episode_min", "average episode length", 45, "min", "given", "issue #10"),
        Input(
            "peak",
            "peak factor over the daily mean",
            3.0,
            "x",
            "assumption",
            "publishing is bursty: most shows release in a few hours before the US morning commute (pre-scheduled "
            "drops at 00:00-06:00 ET), so the busiest hours carry about 3x the mean rate; briefs must be ready the "
            "same morning, so GPU and consumer counts are sized for the peak, costs for the autoscaled mean",
        ),
        Input("util", "utilisation target", 0.7, "", "assumption", "headroom for retries, rebalances and skew"),
        Input("wpm", "words per minute of speech", 150, "words/min", "assumption", "conversational English"),
        Input(
            "tpw",
            "LLM tokens per word",
            1.33,
            "tokens/word",
            "assumption",
            "~0.75 words per token for English BPE vocabularies (the same rule as chunking.estimate_tokens' comment)",
        ),
        Input("window_s", "chunk window", ch.window_s, "s", "code", "ChunkingSettings.window_s"),
        Input("overlap_s", "chunk overlap", ch.overlap_s, "s", "code", "ChunkingSettings.overlap_s"),
        Input("chunk_max_tokens", "chunk token cap", ch.max_tokens, "tokens", "code", "ChunkingSettings.max_tokens"),
        Input(
            "prompt_overhead",
            "system prompt + template per chunk",
            PROMPT_OVERHEAD_TOKENS,
            "tokens",
            "code",
            "chunking.PROMPT_OVERHEAD_TOKENS",
        ),
        Input(
            "completion_per_chunk",
            "completion tokens per chunk",
            300,
            "tokens",
            "default",
            f"up to {QualitySettings().max_points_per_chunk} points picked per chunk as JSON, ~100 tokens each",
        ),
        Input(
            "llm_concurrency",
            "requests in flight per extraction replica",
            64,
            "requests",
            "assumption",
            f"LLMSettings.concurrency (default {LLMSettings().concurrency} for the CPU server; 8-64 for vLLM)",
        ),
        Input("llm_latency_s", "one chunk request under load", 10, "s", "assumption", "~300 tokens at ~30 ms/token"),
        Input("subscribers", "subscribers", 1_000_000, "subscribers", "assumption", "a large consumer product"),
        Input(
            "peak_hour_share",
            "share of briefs due in the busiest hour",
            0.25,
            "",
            "assumption",
            "delivery hours cluster at 7:00 local time; US Eastern alone is about a quarter of an English audience",
        ),
        Input("kafka_part_mb_s", "throughput per partition", 5, "MB/s", "assumption", "conservative; well below disk"),
        Input("kafka_retention_d", "topic retention", 7, "days", "assumption", "replay window for a bad deploy"),
        Input("kafka_rf", "topic replication factor", 3, "", "assumption", "production default"),
        Input("hnsw_m", "HNSW m", 16, "", "code", "clustering ClusteringSettings.hnsw_m"),
        Input("dim", "embedding dimensions", 384, "", "code", "all-MiniLM-L6-v2"),
        Input("qdrant_node_ram_gb", "Qdrant RAM usable per node", 64, "GB", "assumption", "128 GB node, half for it"),
        Input("qdrant_rf", "Qdrant replication factor", 2, "", "assumption", "one node may fail"),
        Input("qdrant_node_h", "Qdrant node price (16 vCPU, 128 GB)", 0.85, "$/h", "assumption", "memory-optimised"),
        Input(
            "core_h",
            "CPU price per vCPU-hour",
            0.0816 / 2,
            "$/vCPU-h",
            "published",
            "m7g.large $0.0816/h / 2 vCPU",
            "ec2-prices",
        ),
        Input("gb_month", "block storage price", 0.08, "$/GB-month", "assumption", "gp3-class SSD list price"),
        Input(
            "ingest_cpu",
            "ingest CPU per audio minute",
            0.02,
            "CPU s/audio min",
            "default",
            "assumption: one feed poll + enclosure HEAD per episode",
        ),
        Input(
            "extract_client_cpu",
            "extraction client CPU per audio minute (GPU path)",
            0.05,
            "CPU s/audio min",
            "default",
            "assumption: HTTP + JSON + grounding per chunk; the LLM runs on the GPUs",
        ),
        Input(
            "transcribe_cpu",
            "transcription CPU per audio minute (tiny.en int8, this CPU)",
            10.3,
            "CPU s/audio min",
            "default",
            "59.4 CPU s for 347 s of audio in the last bench-transcribe run (bench/RESULTS.md)",
        ),
        Input(
            "embed_cpu",
            "CPU per embedding (MiniLM int8 ONNX)",
            1 / 74.7,
            "CPU s",
            "default",
            "1 / 74.7 embeddings/s, one core (bench/RESULTS.md, bench-cluster)",
        ),
        Input(
            "insights_per_min",
            "insights per audio minute",
            15 / 45,
            "insights/min",
            "default",
            "assumption: 15 per 45-min episode (max_insights_per_episode is 20)",
        ),
        Input(
            "delivery_cpu_sub",
            "ranking CPU per subscriber",
            0.002,
            "CPU s",
            "default",
            "assumption: vectorised top-5 over a day's candidates",
        ),
        Input("payload_b", "Qdrant payload per point", _payload_bytes(), "bytes", "code", "point_payload() fields"),
    ]
    ins += [
        Input(
            "bw_ref",
            f"memory bandwidth, {WHISPER_REF_GPU}",
            608,
            "GB/s",
            "assumption",
            "19 Gbps GDDR6X x 256-bit / 8 (NVIDIA's spec; no page found through search)",
        ),
        *(
            Input(f"bw:{k}", f"memory bandwidth, {k}", bw, "GB/s", "published", "NVIDIA datasheet value", "gpu-specs")
            for k, bw in zip(GPU_KINDS, (300, 600, 2_000, 3_350), strict=True)
        ),
        Input("price:L4", "price, L4 (1 GPU)", 0.80, "$/h", "assumption", "hyperscaler on-demand, 1-GPU instance"),
        Input("price:A10G", "price, A10G (1 GPU)", 1.006, "$/h", "published", "g5.xlarge us-east-1", "ec2-prices"),
        Input(
            "price:A100 80GB",
            "price, A100 80GB",
            1.50,
            "$/h",
            "assumption",
            "top of the specialty-cloud range, bottom of the hyperscaler range (`gpu-prices`, May 2026)",
        ),
        Input(
            "price:H100 SXM",
            "price, H100 SXM",
            3.00,
            "$/h",
            "assumption",
            "middle of the specialty-cloud range $2.50-3.50 (`gpu-prices`, May 2026)",
        ),
    ]
    by = {i.key: i for i in ins}

    def measured(key: str, value: float, note: str, label: str | None = None) -> None:
        by[key] = replace(by[key], value=value, origin="measured", note=note, label=label or by[key].label)

    # Transcription on CPU: the e2e figure first, else the benchmark's longest service row.
    rows = [r for r in _rows(m.sections.get("transcription")) if _num(r.get("cpu_s")) and _num(r.get("audio_s"))]
    candidates = [r for r in rows if "service" in str(r.get("mode", ""))] or rows
    row = max(candidates, key=lambda r: float(r["audio_s"])) if candidates else None
    if (v := m.e2e("cpu_s_per_audio_min", "transcription")) is not None:
        measured("transcribe_cpu", v[0], v[1])
    elif row is not None:
        measured(
            "transcribe_cpu",
            float(row["cpu_s"]) / float(row["audio_s"]) * 60,
            f"{m.labels['transcription']}: {row['cpu_s']} CPU s / {row['audio_s']} audio s x 60",
        )
    if row is not None and isinstance(row.get("wer"), int | float):
        by["tiny_wer"] = Input(
            "tiny_wer",
            "tiny.en WER, transcription bench",
            float(row["wer"]),
            "",
            "measured",
            f"{m.labels['transcription']}, {row.get('file', '')}",
        )
    if (v := m.e2e("cpu_s_per_audio_min", "ingest")) is not None:
        measured("ingest_cpu", v[0], v[1])
    if (v := m.e2e("cpu_s_per_audio_min", "extraction")) is not None:
        # e2e runs the embedded CPU model, so this is the CPU path's cost, not the GPU path's client.
        by["extract_cpu_path"] = Input(
            "extract_cpu_path",
            "extraction CPU per audio minute (embedded CPU LLM)",
            v[0],
            "CPU s/audio min",
            "measured",
            v[1],
        )
    if (v := m.get("clustering", "cpu_s_per_embedding")) is not None:
        measured("embed_cpu", v[0], v[1])
    elif (v := m.get("clustering", "embeddings_per_s") or m.get("clustering", "embed_per_s")) is not None:
        measured("embed_cpu", 1 / v[0], f"{v[1]}: 1 / {v[0]:g} embeddings/s, one core")
    audio_min = m.e2e("audio_minutes")
    if audio_min is not None:
        am = audio_min[0]
        if (v := m.e2e("insights")) is not None:
            measured("insights_per_min", v[0] / am, f"{v[1]}: {v[0]:g} insights / {am:g} audio min")
        prompt, completion = m.e2e("llm_tokens", "prompt"), m.e2e("llm_tokens", "completion")
        if prompt is not None and completion is not None:
            for key, label, (val, lab) in (
                ("prompt_per_min", "prompt tokens per audio minute", prompt),
                ("completion_per_min", "completion tokens per audio minute", completion),
            ):
                by[key] = Input(key, label, val / am, "tokens/min", "measured", f"{lab}: {val:g} / {am:g} audio min")
    # The services' peaks (extra.peak_rss_mb, per service), not the embedded run's single figure beside them.
    e2e_extra = (m.sections.get("e2e") or {}).get("extra")
    rss = e2e_extra.get("peak_rss_mb") if isinstance(e2e_extra, dict) else None
    if not isinstance(rss, dict):
        rss = _find(m.sections.get("e2e"), "peak_rss_mb")
    if isinstance(rss, dict):
        for svc, mb in rss.items():
            if _num(mb) is not None:
                by[f"rss:{svc}"] = Input(
                    f"rss:{svc}", f"peak RSS, {svc} (e2e)", float(mb), "MB", "measured", m.labels["e2e"]
                )
    for key, label, unit, path in (
        ("e2e_eph", "episodes per hour, CPU pipeline on this machine", "episodes/h", ("episodes_per_hour",)),
        ("e2e_p50", "feed update to brief, p50 (this machine)", "s", ("latency_s", "p50")),
        ("e2e_p95", "feed update to brief, p95 (this machine)", "s", ("latency_s", "p95")),
    ):
        # The stream's figures: bench/e2e.py writes them apart (section e2e-stream, its own extraction preset and
        # episode length, stated in the label); an older results.json has them in `e2e`.
        stream = m.e2e(*path, section="e2e-stream")
        v = stream or m.e2e(*path)
        if v is not None:
            model = _find(m.sections.get("e2e-stream"), "extraction_model") if stream else None
            note = f"extraction: {model}; " if model else ""
            by[key] = Input(key, label, v[0], unit, "measured", f"{v[1]} ({note}reference only; not used in the model)")
    drows = [
        r for r in _rows(m.sections.get("delivery")) if _num(r.get("subscribers")) and _num(r.get("vectorised_cpu_s"))
    ]
    if drows:
        r = max(drows, key=lambda r: float(r["subscribers"]))
        measured(
            "delivery_cpu_sub",
            float(r["vectorised_cpu_s"]) / float(r["subscribers"]),
            f"{m.labels['delivery']}: {r['vectorised_cpu_s']} CPU s / {r['subscribers']} subscribers "
            f"x {r.get('candidates', '?')} candidates",
        )
    elif (v := m.get("delivery", "cpu_s_per_subscriber")) is not None:
        measured("delivery_cpu_sub", v[0], v[1])
    return by


# --- event and payload sizes, measured with the real event models -----------------------------------------------

_VOCAB = (
    "the of and to a in that is it you we they this for on with as was are be have not but at what so about "
    "market rate inflation model data people think really going know right year company growth because just "
    "would there their one can more like time when which or if do from has very said by an all were how who "
    "policy energy price team research study percent million billion question answer problem change future "
    "believe actually maybe interest federal bank climate science health school election product customer"
).split()


def _ref(rng: random.Random) -> EpisodeRef:
    return EpisodeRef(
        episode_id=uuid.UUID(int=rng.getrandbits(128)),
        feed_id=uuid.UUID(int=rng.getrandbits(128)),
        feed_url="https://feeds.example-podcast-host.com/shows/a-typical-show/feed.xml",
        show="A Typical Weekly Show About Markets",
        title="Episode 214: What the rate decision means for the housing market this year",
        link="https://example-podcast-host.com/shows/a-typical-show/episodes/214-rate-decision",
        enclosure_url="https://cdn.example-podcast-host.com/audio/a-typical-show/episode-214-rate-decision.mp3",
        published_at=datetime(2026, 11, 29, 5, 0, tzinfo=UTC),
        language="en",
    )


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n)).capitalize() + "."


def _transcript(minutes: float, wpm: float, rng: random.Random) -> Transcript:
    """Whisper-shaped: ~10 s segments with word timestamps and probabilities, as the service publishes them."""
    n, dt = int(minutes * wpm), 60 / wpm
    words = [
        Word(
            start_s=round(i * dt, 3),
            end_s=round(i * dt + 0.8 * dt, 3),
            text=rng.choice(_VOCAB),
            probability=0.7 + 0.3 * rng.random(),
        )
        for i in range(n)
    ]
    per = max(1, int(10 / dt))
    segs = tuple(
        Segment(start_s=ws[0].start_s, end_s=ws[-1].end_s, text=" ".join(w.text for w in ws), words=tuple(ws))
        for ws in (words[i : i + per] for i in range(0, n, per))
    )
    return Transcript(
        text=" ".join(s.text for s in segs),
        language="en",
        duration_s=minutes * 60,
        segments=segs,
        model="large-v3",
        rtf=0.02,
    )


def _insight(rng: random.Random) -> Insight:
    return Insight(
        insight_id=uuid.UUID(int=rng.getrandbits(128)),
        text=_sentence(rng, 25),
        quote=_sentence(rng, 35),
        start_s=600.0,
        end_s=612.5,
        speaker="SPEAKER_01",
        topics=("interest rates", "housing"),
        importance=0.7,
        grounding_score=0.93,
        prompt_version="v3",
        model="llama-3.1-8b-instruct",
    )


@functools.lru_cache(maxsize=8)
def event_sizes(minutes: float, wpm: float, insights_per_episode: int, dim: int) -> dict[str, int]:
    """Encoded bytes of one event of each type (what the producer sends, before Kafka's batch compression)."""
    rng = random.Random(10)
    ref = _ref(rng)
    key = str(ref.episode_id)
    events: dict[str, Event] = {
        "episode.discovered": new_event(
            EpisodeDiscovered,
            EpisodeDiscoveredPayload(
                episode=ref,
                guid="tag:example,2026:214",
                description=_sentence(rng, 250),
                enclosure_type="audio/mpeg",
                enclosure_length=43_000_000,
                duration_s=minutes * 60,
            ),
            key=key,
            correlation_id=uuid.uuid4(),
        ),
        "episode.transcribed": new_event(
            EpisodeTranscribed,
            EpisodeTranscribedPayload(
                episode=ref,
                transcript=PackedTranscript.pack(_transcript(minutes, wpm, rng)),
                source="whisper",
                duration_s=minutes * 60,
                language="en",
            ),
            key=key,
            correlation_id=uuid.uuid4(),
        ),
        "insights.extracted": new_event(
            InsightsExtracted,
            InsightsExtractedPayload(
                episode=ref,
                insights=tuple(_insight(rng) for _ in range(insights_per_episode)),
                chunks_total=12,
                chunks_failed=0,
                model="llama-3.1-8b-instruct",
                prompt_version="v3",
            ),
            key=key,
            correlation_id=uuid.uuid4(),
        ),
        "insight.clustered": new_event(
            InsightClustered,
            InsightClusteredPayload(
                episode=ref,
                insight=_insight(rng),
                cluster_id=uuid.UUID(int=rng.getrandbits(128)),
                cluster_label="housing rates",
                cluster_size=4,
                cluster_shows=3,
                embedding_model="all-MiniLM-L6-v2-onnx-int8",
                vector=tuple(rng.gauss(0, 0.05) for _ in range(dim)),
            ),
            key=key,
            correlation_id=uuid.uuid4(),
        ),
        "brief.delivered": new_event(
            BriefDelivered,
            BriefDeliveredPayload(
                brief_id=uuid.uuid4(),
                subscriber_id=uuid.uuid4(),
                brief_date=datetime(2026, 11, 29).date(),
                insight_ids=tuple(uuid.uuid4() for _ in range(5)),
                status="sent",
                message_id="<20261129070000.abc123@podbrief.example>",
            ),
            key="subscriber",
            correlation_id=uuid.uuid4(),
        ),
    }
    return {name: len(encode(ev)) for name, ev in events.items()}


def _payload_bytes() -> float:
    """JSON size of one Qdrant point's payload, built by clustering's own point_payload()."""
    from podbrief_clustering.adapters.repo import Member
    from podbrief_clustering.clusterer import Item, point_payload

    rng = random.Random(11)
    ref, ins = _ref(rng), _insight(rng)
    member = Member(ins.insight_id, uuid.uuid4(), ref.episode_id, ref.show, ins.text, None, datetime.now(UTC))
    payload = point_payload(Item(ref, ins), member)
    return float(len(json.dumps(payload, separators=(",", ":"), default=str)))


# --- the model --------------------------------------------------------------------------------------------------


def n(x: float) -> str:
    """A number for the tables: thousands separators, three significant digits below 100."""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}".rstrip("0").rstrip(".")
    return f"{x:.3g}"


def usd(x: float) -> str:
    return f"${x:,.4f}" if x < 1 else f"${x:,.2f}"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)

    def add(self, *cells: Any) -> None:
        self.rows.append([c if isinstance(c, str) else n(float(c)) for c in cells])

    def render(self) -> list[str]:
        out = ["| " + " | ".join(self.columns) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        return out + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in self.rows]


Block = str | Table


@dataclass
class Result:
    figures: dict[str, float] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    kinds: tuple[str, str] = ("", "")  # cheapest GPU kind for transcription, for extraction


def _ceil_to(x: float, step: int) -> int:
    return max(step, math.ceil(x / step - 1e-9) * step)


def compute(inp: dict[str, Input], *, episode_min: float | None = None, llm: str = "8B") -> Result:
    v = {k: i.value for k, i in inp.items()}
    res = Result()
    fig, b = res.figures, res.blocks
    E, L, P, U = v["episodes_day"], episode_min or v["episode_min"], v["peak"], v["util"]

    # Workload
    audio_min = E * L
    audio_h, audio_s = audio_min / 60, audio_min * 60
    fig.update(audio_h_day=audio_h, audio_s_day=audio_s)
    t = Table(["quantity", "formula", "value", "unit"])
    t.add("audio per day", f"{n(E)} episodes x {n(L)} min", audio_min, "audio min/day")
    t.add("audio hours per day", f"{n(audio_min)} / 60", audio_h, "audio h/day")
    t.add("audio seconds per day", f"{n(audio_min)} x 60", audio_s, "audio s/day")
    t.add("mean real-time streams", f"{n(audio_s)} / {n(DAY_S)}", audio_s / DAY_S, "audio s per s")
    t.add(
        "peak real-time streams", f"{n(audio_s / DAY_S)} x {n(P)} (peak factor)", audio_s / DAY_S * P, "audio s per s"
    )
    b += ["## 1. Workload", "", t]

    # Tokens for the LLM
    window, overlap = v["window_s"], v["overlap_s"]
    chunks = math.ceil((L * 60 - overlap) / (window - overlap))
    t = Table(["quantity", "formula", "value", "unit"])
    t.add("chunks per episode", f"ceil(({n(L)} x 60 - {n(overlap)}) / ({n(window)} - {n(overlap)}))", chunks, "chunks")
    if "prompt_per_min" in v:
        prompt_ep, completion_ep = v["prompt_per_min"] * L, v["completion_per_min"] * L
        t.add(
            "prompt tokens per episode",
            f"{n(v['prompt_per_min'])} measured per audio min x {n(L)}",
            prompt_ep,
            "tokens",
        )
        t.add(
            "completion tokens per episode",
            f"{n(v['completion_per_min'])} measured per audio min x {n(L)}",
            completion_ep,
            "tokens",
        )
    else:
        words = L * v["wpm"]
        window_tok = min(window / 60 * v["wpm"] * v["tpw"], v["chunk_max_tokens"])
        t.add("words per episode", f"{n(L)} min x {n(v['wpm'])} wpm", words, "words")
        t.add("transcript tokens per episode", f"{n(words)} x {n(v['tpw'])}", words * v["tpw"], "tokens")
        t.add(
            "transcript tokens per chunk window",
            f"min({n(window)} / 60 x {n(v['wpm'])} x {n(v['tpw'])}, {n(v['chunk_max_tokens'])})",
            window_tok,
            "tokens",
        )
        prompt_ep = chunks * (window_tok + v["prompt_overhead"])
        completion_ep = chunks * v["completion_per_chunk"]
        t.add(
            "prompt tokens per episode (incl. overlap)",
            f"{chunks} x ({n(window_tok)} + {n(v['prompt_overhead'])})",
            prompt_ep,
            "tokens",
        )
        t.add("completion tokens per episode", f"{chunks} x {n(v['completion_per_chunk'])}", completion_ep, "tokens")
    tok_ep = prompt_ep + completion_ep
    tok_day = E * tok_ep
    tok_audio_h = tok_ep / (L / 60)
    t.add("LLM tokens per day", f"{n(E)} x ({n(prompt_ep)} + {n(completion_ep)})", tok_day, "tokens/day")
    t.add("LLM tokens per audio hour", f"{n(tok_ep)} / ({n(L)} / 60)", tok_audio_h, "tokens/audio h")
    fig.update(tokens_day=tok_day, chunks=chunks)
    b += ["", "### LLM tokens per episode", "", t]

    # Transcription
    gpus = _gpus(v)
    ref_bw = v["bw_ref"]
    pub = Table(["faster-whisper large-v2, beam 5, " + WHISPER_REF_GPU, "time for 13 min", "speed", "formula"])
    for cfg, secs in WHISPER_RUNS.items():
        pub.add(cfg, f"{n(secs)} s", f"{n(WHISPER_AUDIO_S / secs)}x real time", f"{WHISPER_AUDIO_S} s / {n(secs)} s")
    ref_speed = WHISPER_AUDIO_S / WHISPER_RUNS[WHISPER_CHOSEN]
    t = Table(
        [
            "GPU",
            "speed (x real time)",
            "GPUs at mean",
            "GPUs at peak",
            "GPU-h per audio h",
            "$/GPU-h",
            "$/audio h (autoscaled)",
            "$/audio h (fixed peak fleet)",
        ]
    )
    trans: dict[str, dict[str, float]] = {}
    for g in gpus:
        speed = whisper_speed(g.bandwidth_gbs, ref_bw)
        raw = audio_s / (speed * DAY_S * U)
        per_h = 1 / (speed * U)
        peak_n = math.ceil(raw * P)
        trans[g.name] = {
            "speed": speed,
            "mean": math.ceil(raw),
            "peak": peak_n,
            "usd_h": per_h * g.price_h,
            "usd_h_fixed": peak_n * 24 * g.price_h / audio_h,
            "procs": min(math.ceil(speed / ref_speed), max(1, int(g.mem_gb // (WHISPER_VRAM_GB * 1.25)))),
        }
        t.add(
            g.name,
            f"{n(ref_speed)} x {n(g.bandwidth_gbs)} / {n(ref_bw)} = {n(speed)}",
            f"ceil({n(audio_s)} / ({n(speed)} x {n(DAY_S)} x {n(U)})) = {math.ceil(raw)}",
            f"ceil({raw:,.2f} x {n(P)}) = {peak_n}",
            f"1 / ({n(speed)} x {n(U)}) = {n(per_h)}",
            usd(g.price_h),
            usd(per_h * g.price_h),
            usd(trans[g.name]["usd_h_fixed"]),
        )
    cpu_t = Table(["CPU path", "CPU s per audio min", "cores at mean", "cores at peak", "why not production"])
    tiny_cores = audio_min * v["transcribe_cpu"] / (DAY_S * U)
    small_cpu = CPU_SMALL_INT8_BATCH8_S * CPU_SMALL_THREADS / 13
    small_cores = audio_min * small_cpu / (DAY_S * U)
    wer = f"WER {n(v['tiny_wer'])} on our two-voice episode; " if "tiny_wer" in v else ""
    cpu_t.add(
        "tiny.en int8, measured here",
        n(v["transcribe_cpu"]),
        f"{n(audio_min)} x {n(v['transcribe_cpu'])} / ({n(DAY_S)} x {n(U)}) = {n(tiny_cores)}",
        tiny_cores * P,
        wer + "the smallest English-only model, packaged for CPU tests, not chosen for quality",
    )
    cpu_t.add(
        "small int8 batch 8, published (i7-12700K, 8 threads)",
        f"{n(CPU_SMALL_INT8_BATCH8_S)} s x 8 / 13 = {n(small_cpu)}",
        f"{n(audio_min)} x {n(small_cpu)} / ({n(DAY_S)} x {n(U)}) = {n(small_cores)}",
        small_cores * P,
        "below large-v2/v3 quality, and large has several times its parameters again",
    )
    fig.update(transcribe_cpu_cores_mean=tiny_cores)
    b += [
        "## 2. Transcription",
        "",
        "Published figures (source `fw-readme`), the real-time factor is audio seconds / processing seconds:",
        "",
        pub,
        "",
        f"Chosen configuration: `{WHISPER_CHOSEN}` ({n(ref_speed)}x real time on the {WHISPER_REF_GPU}, "
        f"{n(ref_bw)} GB/s). Other GPUs are **estimated** by scaling with memory bandwidth (batched beam search "
        "is dominated by reading weights and the KV cache; bandwidths from `gpu-specs`). This is conservative "
        "for the L4, whose FP16 compute is far above a 3070 Ti's, and assumes the larger cards are kept busy "
        "with larger batches or several processes per GPU. GPUs needed = audio seconds per day / "
        "(speed x 86,400 x utilisation).",
        "",
        t,
        "",
        "The CPU alternative from our own measurement, and the published small model on CPU:",
        "",
        cpu_t,
    ]

    # Extraction
    t = Table(
        [
            "GPU",
            f"tokens/s per GPU ({llm})",
            "GPUs at mean",
            "GPUs at peak",
            "GPU-h per audio h",
            "$/audio h (autoscaled)",
            "$/audio h (fixed peak fleet)",
        ]
    )
    extr: dict[str, dict[str, float]] = {}
    for g in gpus:
        if llm == "8B":
            tp, tok_s = 1, llm_8b_tokens_per_s(g.bandwidth_gbs)
            formula = f"{n(VLLM_8B_H100_TOK_S)} x {n(g.bandwidth_gbs)} / 3,350 = {n(tok_s)}"
        else:
            if g.mem_gb < 80:
                t.add(g.name, "n/a: 140 GB of bf16 weights need 4+ cards of 80 GB", "–", "–", "–", "–", "–")
                continue
            tp, tok_s = VLLM_70B_TP, VLLM_70B_4XA100_TOK_S / VLLM_70B_TP * g.bandwidth_gbs / 2_000
            formula = f"{n(VLLM_70B_4XA100_TOK_S)} / 4 x {n(g.bandwidth_gbs)} / 2,000 = {n(tok_s)}"
        raw = tok_day / (tok_s * DAY_S * U)
        per_h = tok_audio_h / (tok_s * 3600 * U)
        peak_n = _ceil_to(raw * P, tp)
        extr[g.name] = {
            "mean": _ceil_to(raw, tp),
            "peak": peak_n,
            "usd_h": per_h * g.price_h,
            "usd_h_fixed": peak_n * 24 * g.price_h / audio_h,
        }
        t.add(
            g.name,
            formula,
            f"{n(tok_day)} / ({n(tok_s)} x {n(DAY_S)} x {n(U)}) -> {_ceil_to(raw, tp)}",
            f"{raw:,.2f} x {n(P)} -> {peak_n}",
            f"{n(tok_audio_h)} / ({n(tok_s)} x 3,600 x {n(U)}) = {n(per_h)}",
            usd(per_h * g.price_h),
            usd(extr[g.name]["usd_h_fixed"]),
        )
    model_note = (
        "Model: an 8B instruct model (Llama-3.1-8B-Instruct class) served by vLLM. Published figure (`vllm-pr7117`): "
        f"Meta-Llama-3-8B on one H100, 256 prompt + 256 output tokens, {n(VLLM_8B_H100_TOK_S)} total tokens/s "
        "(median of three trials). We count prompt and completion tokens together against that total: our mix is "
        "~4:1 prompt-heavy, and prompt tokens are cheaper than generated ones (prefill is batched), so this errs "
        "towards more GPUs. Other GPUs scale by memory bandwidth (decode is bandwidth-bound); on 24 GB cards the "
        "16 GB of bf16 weights leave a small KV cache, so their figures are optimistic."
        if llm == "8B"
        else "Model: a 70B instruct model. Published figure (`vllm-i12315`): Llama-3.3-70B-Instruct on 4 x A100, "
        f"tensor parallel 4, {n(VLLM_70B_4XA100_TOK_S)} total tokens/s; GPUs are counted in groups of 4."
    )
    b += ["## 3. Extraction", "", model_note, "", t]
    if "extract_cpu_path" in v:
        x = v["extract_cpu_path"]
        cores = audio_min * x / (DAY_S * U)
        b += [
            f"CPU path for comparison (measured end to end with the embedded llama-server and SmolLM2-135M): "
            f"{n(audio_min)} audio min x {n(x)} CPU s / ({n(DAY_S)} x {n(U)}) = {n(cores)} cores at mean, "
            f"{n(cores * P)} at peak; a 135M model is a test double for the pipeline, not an extractor of quality."
        ]

    # Clustering
    ins_day = audio_min * v["insights_per_min"]
    ins_ep = v["insights_per_min"] * L
    cpu_day = ins_day * v["embed_cpu"]
    cl_cores = cpu_day / (DAY_S * U)
    t = Table(["quantity", "formula", "value", "unit"])
    t.add(
        "insights (embeddings) per day",
        f"{n(audio_min)} audio min x {n(v['insights_per_min'])}",
        ins_day,
        "embeddings/day",
    )
    t.add("CPU per embedding", "MiniLM int8 ONNX, see inputs", v["embed_cpu"], "CPU s")
    t.add("CPU seconds per day", f"{n(ins_day)} x {n(v['embed_cpu'])}", cpu_day, "CPU s/day")
    t.add("cores at mean", f"{n(cpu_day)} / ({n(DAY_S)} x {n(U)})", cl_cores, "cores")
    t.add("cores at peak", f"{n(cl_cores)} x {n(P)}", cl_cores * P, "cores")
    t.add("peak embeddings per second", f"{n(ins_day)} / {n(DAY_S)} x {n(P)}", ins_day / DAY_S * P, "embeddings/s")
    b += [
        "## 4. Clustering",
        "",
        t,
        "",
        f"No GPU: the whole day's embeddings take {n(cpu_day / 3600)} CPU-hours, and the peak rate "
        f"({n(ins_day / DAY_S * P)}/s) is within one core's {n(1 / v['embed_cpu'])}/s; a GPU would idle.",
    ]

    # Qdrant
    dim, pts = v["dim"], ins_day * 365
    ram_f32 = pts * dim * 4 * 1.5
    ram_i8 = pts * dim * 1 * 1.5
    hnsw_b = v["hnsw_m"] * 2 * 4
    disk_pt = dim * 4 + dim + v["payload_b"] + hnsw_b
    disk = pts * disk_pt
    nodes_primary = math.ceil(ram_i8 / (v["qdrant_node_ram_gb"] * 1e9))
    nodes = nodes_primary * int(v["qdrant_rf"])
    shards = 2 * nodes_primary
    t = Table(["quantity", "formula", "value", "unit"])
    t.add("points after a year", f"{n(ins_day)} x 365", pts, "points")
    t.add("RAM, float32 vectors (Qdrant formula)", f"{n(pts)} x {n(dim)} x 4 B x 1.5", ram_f32 / 1e9, "GB")
    t.add(
        "RAM, int8 scalar-quantised in RAM, originals on disk", f"{n(pts)} x {n(dim)} x 1 B x 1.5", ram_i8 / 1e9, "GB"
    )
    t.add("HNSW links per point (level 0)", f"m {n(v['hnsw_m'])} x 2 x 4 B", hnsw_b, "bytes")
    t.add("payload per point", "JSON of point_payload() with typical lengths", v["payload_b"], "bytes")
    t.add("disk per point", f"{n(dim * 4)} + {n(dim)} + {n(v['payload_b'])} + {n(hnsw_b)}", disk_pt, "bytes")
    t.add("disk after a year (one replica)", f"{n(pts)} x {n(disk_pt)}", disk / 1e9, "GB")
    t.add(
        "nodes (int8 in RAM)",
        f"ceil({n(ram_i8 / 1e9)} / {n(v['qdrant_node_ram_gb'])}) x rf {n(v['qdrant_rf'])}",
        nodes,
        "nodes",
    )
    t.add("shards", f"2 x {nodes_primary} primary nodes (room to rebalance)", shards, "shards")
    t.add(
        "nodes if float32 stays in RAM",
        f"ceil({n(ram_f32 / 1e9)} / {n(v['qdrant_node_ram_gb'])}) x {n(v['qdrant_rf'])}",
        math.ceil(ram_f32 / (v["qdrant_node_ram_gb"] * 1e9)) * v["qdrant_rf"],
        "nodes",
    )
    fig.update(
        qdrant_points_year=pts,
        qdrant_ram_f32_gb=ram_f32 / 1e9,
        qdrant_ram_int8_gb=ram_i8 / 1e9,
        qdrant_disk_gb=disk / 1e9,
        qdrant_nodes=nodes,
    )
    b += [
        "### Qdrant after a year",
        "",
        "Formula from `qdrant-capacity`; the int8 line applies the same 1.5 overhead to 1-byte components. Delivery "
        "only ranks recent insights, so a TTL on old points would cap this; the table assumes everything is kept.",
        "",
        t,
    ]

    # Delivery
    S, share = v["subscribers"], v["peak_hour_share"]
    d_cores = S * share * v["delivery_cpu_sub"] / 3600 / U
    smtp = S * share / 3600
    t = Table(["quantity", "formula", "value", "unit"])
    t.add("briefs in the busiest hour", f"{n(S)} x {n(share)}", S * share, "briefs")
    t.add(
        "ranking cores in that hour",
        f"{n(S * share)} x {n(v['delivery_cpu_sub'])} s / 3,600 / {n(U)}",
        d_cores,
        "cores",
    )
    t.add("SMTP sends per second", f"{n(S * share)} / 3,600", smtp, "sends/s")
    fig.update(smtp_per_s=smtp)
    b += ["## 5. Delivery", "", t]

    # Kafka
    sizes = event_sizes(L, v["wpm"], max(1, round(ins_ep)), int(dim))
    trans_kind = min(trans, key=lambda k: trans[k]["usd_h"])
    extr_kind = min(extr, key=lambda k: extr[k]["usd_h"])
    inflight = E * chunks / DAY_S * P * v["llm_latency_s"]
    replicas = {
        "ingest": (
            max(2, math.ceil(audio_min * v["ingest_cpu"] * P / DAY_S / U)),
            f"max(2, ceil({n(audio_min)} x {n(v['ingest_cpu'])} x {n(P)} / {n(DAY_S)} / {n(U)}))",
        ),
        "transcription": (
            int(trans[trans_kind]["peak"] * trans[trans_kind]["procs"]),
            f"{n(trans[trans_kind]['peak'])} {trans_kind} at peak x {n(trans[trans_kind]['procs'])} "
            "processes per GPU (each ~ the published batch-8 throughput)",
        ),
        "extraction": (
            max(2, math.ceil(inflight / v["llm_concurrency"])),
            f"max(2, ceil({n(E)} x {chunks} chunks / {n(DAY_S)} x {n(P)} x {n(v['llm_latency_s'])} s "
            f"= {n(inflight)} in flight / {n(v['llm_concurrency'])}))",
        ),
        "clustering": (max(2, math.ceil(cl_cores * P)), f"max(2, ceil({n(cl_cores * P)} cores at peak))"),
        "delivery": (max(2, math.ceil(d_cores)), f"max(2, ceil({n(d_cores)} cores in the busiest hour))"),
    }
    topics = [
        ("episode.discovered", E, "transcription"),
        ("episode.transcribed", E, "extraction"),
        ("insights.extracted", E, "clustering"),
        ("insight.clustered", ins_day, "delivery"),
        ("brief.delivered", S, None),  # read by analytics/audit, not by a podbrief service
    ]
    t = Table(
        [
            "topic",
            "events/day",
            "bytes/event",
            "GB/day",
            "peak MB/s",
            "consumer (replicas)",
            "partitions",
            f"retention GB ({n(v['kafka_retention_d'])} d x rf {n(v['kafka_rf'])})",
        ]
    )
    parts: dict[str, int] = {}
    total_ret = 0.0
    for name, per_day, consumer in topics:
        size = sizes[name]
        gb_day = per_day * size / 1e9
        peak_mb = per_day * size / DAY_S * P / 1e6
        reps = replicas[consumer][0] if consumer else 1
        need = max(reps, math.ceil(peak_mb / v["kafka_part_mb_s"]), 1)
        parts[name] = _ceil_to(2 * need, 6)
        ret = gb_day * v["kafka_retention_d"] * v["kafka_rf"]
        total_ret += ret
        cons = f"{consumer} ({reps})" if consumer else "analytics/audit (outside podbrief; 1 assumed)"
        t.add(
            f"`{TOPICS[name]}`",
            per_day,
            size,
            gb_day,
            peak_mb,
            cons,
            f"ceil6(2 x max({reps}, ceil({n(peak_mb)} / {n(v['kafka_part_mb_s'])}))) = {parts[name]}",
            ret,
        )
    rss = {
        k: x
        for k, x in (
            ("ingest", "ingest"),
            ("transcription", "transcription"),
            ("extraction", "extraction"),
            ("clustering", "clustering"),
            ("delivery", "delivery"),
        )
        if f"rss:{x}" in v
    }
    rt = Table(["service", "consumer replicas at peak", "formula"] + (["memory per replica"] if rss else []))
    for svc, (count, formula) in replicas.items():
        mem = (
            [f"{n(v[f'rss:{svc}'] * 1.5)} MB (measured peak RSS {n(v[f'rss:{svc}'])} MB x 1.5)" if svc in rss else "–"]
            if rss
            else []
        )
        rt.add(svc, str(count), formula, *mem)
    fig.update(
        kafka_retention_gb=total_ret,
        **{f"partitions:{k}": float(p) for k, p in parts.items()},
        **{f"replicas:{k}": float(c) for k, (c, _) in replicas.items()},
    )
    b += [
        "## 6. Kafka partitions and consumer replicas",
        "",
        "Event sizes are measured: one event of each type built with the real models (`libs/podbrief/events`) "
        f"for a {n(L)}-minute episode (synthetic words at {n(v['wpm'])} wpm, word timestamps and probabilities "
        "as the transcription service publishes them; the transcript is zstd-compressed inside the event) and "
        "encoded with `encode()`. Partitions = 2 x max(consumer replicas at peak, peak MB/s / per-partition "
        "throughput), rounded up to a multiple of 6: partitions can only grow, and growing them reshuffles keys, "
        "so the 2x leaves room to add replicas later.",
        "",
        t,
        "",
        rt,
    ]

    # Cost per audio hour
    cpu_s_audio_h = (v["ingest_cpu"] + v["extract_client_cpu"]) * 60 + ins_ep / L * 60 * v["embed_cpu"]
    cpu_usd = cpu_s_audio_h / 3600 / U * v["core_h"] + S * v["delivery_cpu_sub"] / 3600 / U * v["core_h"] / audio_h
    transcript_gb_year = E * 365 * sizes["episode.transcribed"] / 1e9
    storage_gb = total_ret + disk * v["qdrant_rf"] / 1e9 + transcript_gb_year
    storage_usd = storage_gb * v["gb_month"] / 30 / audio_h
    qdrant_usd = nodes * v["qdrant_node_h"] * 24 / audio_h
    rest = cpu_usd + storage_usd + qdrant_usd
    t = Table(
        [
            "GPU kind (both GPU stages)",
            "transcription",
            "extraction",
            "CPU",
            "storage",
            "Qdrant nodes",
            "total $/audio h",
            "fixed peak fleet $/audio h",
        ]
    )
    for g in gpus:
        if g.name not in extr:
            continue
        tot = trans[g.name]["usd_h"] + extr[g.name]["usd_h"] + rest
        fixed = trans[g.name]["usd_h_fixed"] + extr[g.name]["usd_h_fixed"] + rest
        fig[f"usd_audio_h:{g.name}"] = tot
        t.add(
            g.name,
            usd(trans[g.name]["usd_h"]),
            usd(extr[g.name]["usd_h"]),
            usd(cpu_usd),
            usd(storage_usd),
            usd(qdrant_usd),
            usd(tot),
            usd(fixed),
        )
    best = trans[trans_kind]["usd_h"] + extr[extr_kind]["usd_h"] + rest
    t.add(
        f"cheapest: {trans_kind} + {extr_kind}",
        usd(trans[trans_kind]["usd_h"]),
        usd(extr[extr_kind]["usd_h"]),
        usd(cpu_usd),
        usd(storage_usd),
        usd(qdrant_usd),
        f"**{usd(best)}**",
        usd(trans[trans_kind]["usd_h_fixed"] + extr[extr_kind]["usd_h_fixed"] + rest),
    )
    fig.update(
        usd_audio_h_best=best,
        usd_day_best=best * audio_h,
        cpu_usd=cpu_usd,
        storage_usd=storage_usd,
        qdrant_usd=qdrant_usd,
        storage_gb=storage_gb,
        trans_gpus_peak=trans[trans_kind]["peak"],
        extr_gpus_peak=extr[extr_kind]["peak"],
    )
    for k, d in trans.items():
        fig[f"trans_mean:{k}"], fig[f"trans_peak:{k}"], fig[f"trans_usd:{k}"] = d["mean"], d["peak"], d["usd_h"]
    for k, d in extr.items():
        fig[f"extr_mean:{k}"], fig[f"extr_peak:{k}"], fig[f"extr_usd:{k}"] = d["mean"], d["peak"], d["usd_h"]
    res.kinds = (trans_kind, extr_kind)
    b += [
        "## 7. Cost per audio hour",
        "",
        "Autoscaled: GPU-hours actually used (at the utilisation target) x price. Fixed peak fleet: the peak GPU "
        "count running 24 h, divided by the day's audio hours. CPU: "
        f"({n(v['ingest_cpu'])} + {n(v['extract_client_cpu'])}) CPU s/audio min x 60 + {n(ins_ep / L * 60)} "
        f"embeddings/audio h x {n(v['embed_cpu'])} s = {n(cpu_s_audio_h)} CPU s per audio hour, / 3,600 / "
        f"{n(U)} x {usd(v['core_h'])}/vCPU-h, plus delivery's {n(S)} x {n(v['delivery_cpu_sub'])} CPU s per day "
        f"spread over {n(audio_h)} audio h. Storage: Kafka retention {n(total_ret)} GB + Qdrant disk "
        f"{n(disk * v['qdrant_rf'] / 1e9)} GB (year end, both replicas) + a year of packed transcripts "
        f"{n(transcript_gb_year)} GB = {n(storage_gb)} GB x {usd(v['gb_month'])}/GB-month / 30 / {n(audio_h)} "
        f"audio h. Qdrant: {nodes} nodes x {usd(v['qdrant_node_h'])}/h x 24 / {n(audio_h)}.",
        "",
        t,
    ]
    return res


# --- the document -----------------------------------------------------------------------------------------------


def _sensitivity(inp: dict[str, Input]) -> Table:
    t = Table(
        [
            "case",
            "audio h/day",
            "transcription GPUs at peak",
            "extraction GPUs at peak",
            "Qdrant int8 RAM, GB/yr",
            "$/audio h (cheapest)",
            "$/day",
        ]
    )
    for label, minutes, llm in (
        ("base: 45 min, 8B", None, "8B"),
        ("60-min episodes", 60.0, "8B"),
        ("70B LLM", None, "70B"),
        ("60 min and 70B", 60.0, "70B"),
    ):
        r = compute(inp, episode_min=minutes, llm=llm)
        f, (tk, ek) = r.figures, r.kinds
        t.add(
            label,
            f["audio_h_day"],
            f"{n(f['trans_gpus_peak'])} {tk}",
            f"{n(f['extr_gpus_peak'])} {ek}",
            f["qdrant_ram_int8_gb"],
            usd(f["usd_audio_h_best"]),
            usd(f["usd_day_best"]),
        )
    return t


def render(inp: dict[str, Input], m: Measured, results_path: str) -> str:
    base = compute(inp)
    f, (tk, ek) = base.figures, base.kinds
    measured = sorted(
        {
            lab.removeprefix("measured: ")
            for lab in m.labels.values()
            for i in inp.values()
            if i.origin == "measured" and i.note.startswith(lab)
        }
    )
    lines = [
        "# Capacity model: the world's daily podcast output",
        "",
        f"Generated by `python -m bench.capacity` from `{results_path}` on "
        f"{datetime.now(UTC).date().isoformat()}; do not edit by hand. Every number below is either "
        "**measured** (results.json, dated), **published** (a source listed at the end, with what it says), "
        "**code** (read from podbrief's settings), **given** (issue #10), or an **assumption**/**default** "
        "(stated, changeable in `bench/capacity.py`). GPU figures for cards other than the one a source ran on "
        "are estimates, scaled as shown.",
        "",
        "## Headline",
        "",
    ]
    h = Table(["question", "answer"])
    h.add("audio per day", f"{n(f['audio_h_day'])} audio hours (70,000 x 45 min)")
    h.add(
        "GPUs, transcription (peak / mean)",
        ", ".join(f"{k}: {n(f[f'trans_peak:{k}'])} / {n(f[f'trans_mean:{k}'])}" for k in GPU_KINDS),
    )
    h.add(
        "GPUs, extraction 8B (peak / mean)",
        ", ".join(
            f"{k}: {n(f[f'extr_peak:{k}'])} / {n(f[f'extr_mean:{k}'])}" for k in GPU_KINDS if f"extr_peak:{k}" in f
        ),
    )
    h.add("GPUs, clustering / ingest / delivery", "none (CPU; see sections 4-5)")
    h.add(
        "Kafka partitions", ", ".join(f"{k.split(':')[1]} {n(v)}" for k, v in f.items() if k.startswith("partitions:"))
    )
    h.add(
        "consumer replicas at peak",
        ", ".join(f"{k.split(':')[1]} {n(v)}" for k, v in f.items() if k.startswith("replicas:")),
    )
    h.add(
        "Qdrant after a year",
        f"{n(f['qdrant_points_year'])} points; {n(f['qdrant_ram_f32_gb'])} GB RAM float32 or "
        f"{n(f['qdrant_ram_int8_gb'])} GB int8-quantised; {n(f['qdrant_disk_gb'])} GB disk per replica; "
        f"{n(f['qdrant_nodes'])} nodes",
    )
    h.add(
        "cost per audio hour",
        f"{usd(f['usd_audio_h_best'])} with {tk} for transcription and {ek} for extraction "
        f"(autoscaled; {usd(f['usd_day_best'])}/day); per kind: "
        + ", ".join(f"{k} {usd(f[f'usd_audio_h:{k}'])}" for k in GPU_KINDS if f"usd_audio_h:{k}" in f),
    )
    lines += [*h.render(), ""]
    lines += [
        "## Inputs",
        "",
        "Measured sections used: "
        + (
            "; ".join(measured)
            if measured
            else "none (results.json has none of the figures yet; every stage cost below is a labelled default)"
        ),
        "",
    ]
    t = Table(["input", "value", "unit", "kind", "where from"])
    for i in inp.values():
        note = i.note + (f" (`{i.source}`)" if i.source else "")
        t.add(i.label, i.value, i.unit, i.origin, note)
    lines += [*t.render(), ""]
    for blk in base.blocks:
        lines += [*blk.render(), ""] if isinstance(blk, Table) else [blk]
    lines += [
        "",
        "## 8. Sensitivity",
        "",
        "The same model rerun with one input changed (cheapest GPU kind per stage):",
        "",
    ]
    lines += _sensitivity(inp).render()
    lines += ["", "## Sources", ""]
    for s in SOURCES:
        lines += [f"- **`{s.key}`**: {s.title}. <{s.url}>. Says: {s.says} Retrieval: {s.note}."]
    lines += [
        "",
        "Not found through search, so labelled as assumptions above: the RTX 3070 Ti's bandwidth, L4 and "
        "A100/H100 hourly prices (the A100/H100 ones sit inside the cited ranges), block-storage and Qdrant "
        "node prices, Kafka per-partition throughput, and the peak factor.",
    ]
    out: list[str] = []
    for line in lines:  # one blank line between blocks, and one before every heading
        if (line == "" or line.startswith("#")) and out and out[-1] != "":
            out.append("")
        if line != "" or (out and out[-1] != ""):
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--results", type=Path, default=HERE / "results.json")
    ap.add_argument("--out", type=Path, default=HERE / "CAPACITY.md")
    args = ap.parse_args(argv)
    m = Measured.load(args.results)
    inp = gather_inputs(m)
    try:
        shown = str(args.results.resolve().relative_to(Path.cwd()))
    except ValueError:
        shown = args.results.name
    args.out.write_text(render(inp, m, shown))
    print(f"wrote {args.out}")  # noqa: T201


if __name__ == "__main__":
    main()
