"""Writes the Grafana dashboards in dashboards/ from the panel lists below, so ids, layout and datasource
references stay consistent. Run `python deploy/grafana/generate.py` after editing; tests/deploy checks that the
committed JSON matches this output and that every metric named here is one the services export."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).parent / "dashboards"
CONSUMERS = ("transcription", "extraction", "clustering", "delivery")
SERVICES = ("ingest", *CONSUMERS)
DS = {"type": "prometheus", "uid": "${datasource}"}


@dataclass
class Panel:
    title: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""
    width: int = 12
    stack: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def row(title: str) -> Panel:
    return Panel(title=title, targets=[], kind="row", width=24)


def render(uid: str, title: str, tags: list[str], panels: list[Panel]) -> dict[str, object]:
    out: list[dict[str, object]] = []
    x = y = 0
    for pid, p in enumerate(panels, start=1):
        h = 1 if p.kind == "row" else 8
        if x + p.width > 24 or p.kind == "row":
            if x:
                y += 8
            x = 0
        panel: dict[str, object] = {
            "id": pid,
            "type": p.kind,
            "title": p.title,
            "gridPos": {"h": h, "w": p.width, "x": x, "y": y},
        }
        if p.kind == "row":
            panel["collapsed"] = False
            panel["panels"] = []
            y += 1
        else:
            panel["datasource"] = DS
            panel["description"] = p.description
            panel["targets"] = [
                {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend, "range": True}
                for i, (expr, legend) in enumerate(p.targets)
            ]
            defaults: dict[str, object] = {"unit": p.unit}
            if p.kind == "timeseries":
                defaults["custom"] = {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "showPoints": "never",
                    "stacking": {"mode": "normal" if p.stack else "none", "group": "A"},
                }
            panel["fieldConfig"] = {"defaults": defaults, "overrides": []}
            panel["options"] = (
                {
                    "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                    "tooltip": {"mode": "multi", "sort": "desc"},
                }
                if p.kind == "timeseries"
                else {}
            )
            panel.update(p.extra)
            x += p.width
            if x >= 24:
                x, y = 0, y + h
        out.append(panel)
    return {
        "uid": uid,
        "title": title,
        "tags": ["podbrief", *tags],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "timezone": "browser",
        "time": {"from": "now-24h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "panels": out,
    }


def pipeline() -> dict[str, object]:
    stages = [
        (
            'sum(increase(podbrief_ingest_published_total{topic="podbrief.episode.discovered.v1"}[1h]))',
            "discovered (ingest)",
        ),
        (
            'sum(increase(podbrief_transcription_published_total{topic="podbrief.episode.transcribed.v1"}[1h]))',
            "transcribed",
        ),
        ('sum(increase(podbrief_extraction_published_total{topic="podbrief.insights.extracted.v1"}[1h]))', "extracted"),
        ('sum(increase(podbrief_clustering_messages_total{status="ok"}[1h]))', "clustered (episodes)"),
    ]
    return render(
        "podbrief-pipeline",
        "podbrief / pipeline overview",
        ["pipeline"],
        [
            row("Throughput"),
            Panel(
                "Episodes per stage per hour",
                stages,
                unit="short",
                width=12,
                description="Events each stage published in the last hour (clustering: insight batches handled).",
            ),
            Panel(
                "Messages handled per second, by service and outcome",
                [
                    (f"sum by (status) (rate(podbrief_{s}_messages_total[5m]))", f"{s} {{{{status}}}}")
                    for s in CONSUMERS
                ],
                unit="ops",
                width=12,
            ),
            row("Backlog and failures"),
            Panel(
                "Consumer lag per consumer group",
                [(f"sum by (topic) (podbrief_{s}_consumer_lag_messages)", f"{s} ← {{{{topic}}}}") for s in CONSUMERS],
                unit="short",
                width=12,
                description="Messages not yet consumed; the consumer group is named after the service.",
            ),
            Panel(
                "Dead-lettered messages per second",
                [
                    (
                        f"sum by (topic, reason) (rate(podbrief_{s}_dead_lettered_total[5m]))",
                        f"{s} {{{{topic}}}} {{{{reason}}}}",
                    )
                    for s in SERVICES
                ],
                unit="ops",
                width=12,
            ),
            Panel(
                "Handler retries per second",
                [(f"sum by (topic) (rate(podbrief_{s}_retries_total[5m]))", f"{s} {{{{topic}}}}") for s in SERVICES],
                unit="ops",
                width=12,
            ),
            Panel(
                "Consumers running", [(f"sum(podbrief_{s}_consumer_up)", s) for s in SERVICES], unit="short", width=12
            ),
            row("Latency"),
            Panel(
                "Published to in-brief latency",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(podbrief_delivery_insight_age_seconds_bucket[1h])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) (rate(podbrief_delivery_insight_age_seconds_bucket[1h])))",
                        "p95",
                    ),
                ],
                unit="s",
                width=12,
                description="From an episode's publication in its feed to a sent brief carrying one of its insights.",
            ),
            Panel(
                "Handler time p95 per stage",
                [
                    (f"histogram_quantile(0.95, sum by (le) (rate(podbrief_{s}_handler_seconds_bucket[15m])))", s)
                    for s in CONSUMERS
                ],
                unit="s",
                width=12,
                description="Time inside each stage's handler.",
            ),
            Panel(
                "Feed poll time p95",
                [
                    (
                        "histogram_quantile(0.95, sum by (le) (rate(podbrief_ingest_poll_seconds_bucket[15m])))",
                        "poll p95",
                    )
                ],
                unit="s",
                width=12,
            ),
            Panel(
                "Feed items dropped and feeds repaired, per hour",
                [
                    (
                        "sum by (reason) (increase(podbrief_ingest_items_dropped_total[1h]))",
                        "dropped: {{reason}}",
                    ),
                    (
                        "sum by (repair) (increase(podbrief_ingest_feeds_recovered_total[1h]))",
                        "repaired: {{repair}}",
                    ),
                ],
                unit="short",
                width=12,
                description="Items left out of the episodes when a feed is read (repeated guids, items with neither "
                "guid nor enclosure), and feeds that were not well-formed XML and were read after a repair.",
            ),
            Panel(
                "Vector search time p99, by operation",
                [
                    (
                        "histogram_quantile(0.99, sum by (le, op) "
                        "(rate(podbrief_clustering_search_seconds_bucket[15m])))",
                        "{{op}}",
                    )
                ],
                unit="s",
                width=12,
                description="Clustering's searches in the vector store: the duplicate check, related insights and "
                "the search API.",
            ),
            Panel(
                "Vector store points",
                [
                    ("sum(podbrief_clustering_vector_points)", "stored"),
                    ("sum(podbrief_clustering_vector_unindexed_points)", "outside the HNSW graph (searched exactly)"),
                ],
                unit="short",
                width=12,
                description="In the embedded store (Qdrant Edge) the graph is built when clustering starts with "
                "CLUSTERING_BUILD_INDEX_MIN_POINTS or more points outside it, or by `podbrief vectors build-index` "
                "with clustering stopped; a Qdrant server builds it in the background.",
            ),
        ],
    )


def transcription() -> dict[str, object]:
    return render(
        "podbrief-transcription",
        "podbrief / transcription",
        ["transcription"],
        [
            Panel(
                "Real-time factor (processing s per audio s)",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(podbrief_transcription_real_time_factor_bucket[30m])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) (rate(podbrief_transcription_real_time_factor_bucket[30m])))",
                        "p95",
                    ),
                    (
                        "sum(rate(podbrief_transcription_real_time_factor_sum[30m])) / "
                        "sum(rate(podbrief_transcription_real_time_factor_count[30m]))",
                        "mean",
                    ),
                ],
                unit="none",
                width=12,
                description="Below 1 is faster than real time.",
            ),
            Panel(
                "Audio hours transcribed per hour",
                [("sum(increase(podbrief_transcription_audio_seconds_total[1h])) / 3600", "audio h / h")],
                unit="short",
                width=12,
            ),
            Panel(
                "GPU memory",
                [
                    ("sum by (device) (podbrief_transcription_gpu_memory_used_bytes)", "used gpu{{device}}"),
                    ("sum by (device) (podbrief_transcription_gpu_memory_total_bytes)", "total gpu{{device}}"),
                ],
                unit="bytes",
                width=12,
                description="Present only when the service runs on CUDA (read through NVML).",
            ),
            Panel(
                "Transcripts stored per hour, by source",
                [("sum by (source) (increase(podbrief_transcription_transcripts_total[1h]))", "{{source}}")],
                width=12,
            ),
            Panel(
                "Failures per hour, by reason",
                [("sum by (reason) (increase(podbrief_transcription_failures_total[1h]))", "{{reason}}")],
                width=12,
            ),
            Panel(
                "Enclosure download rate",
                [("sum(rate(podbrief_transcription_download_bytes_total[5m]))", "bytes/s")],
                unit="Bps",
                width=12,
            ),
            Panel(
                "Model load time",
                [("max(podbrief_transcription_model_load_seconds)", "load")],
                unit="s",
                width=12,
                kind="stat",
            ),
            Panel(
                "Backlog",
                [("sum(podbrief_transcription_consumer_lag_messages)", "episodes waiting")],
                width=12,
                kind="stat",
            ),
        ],
    )


def extraction() -> dict[str, object]:
    return render(
        "podbrief-extraction",
        "podbrief / extraction",
        ["extraction", "llm"],
        [
            row("podbrief extraction"),
            Panel(
                "LLM tokens per second",
                [("sum by (direction) (rate(podbrief_extraction_llm_tokens_total[5m]))", "{{direction}}")],
                unit="short",
                width=12,
                description="in = prompt tokens, out = completion tokens.",
            ),
            Panel(
                "Invalid-output rate",
                [
                    (
                        'sum(rate(podbrief_extraction_invalid_outputs_total{stage="first"}[15m])) / '
                        'sum(rate(podbrief_extraction_llm_requests_total{status="ok"}[15m]))',
                        "first answer invalid",
                    ),
                    (
                        'sum(rate(podbrief_extraction_invalid_outputs_total{stage="repair"}[15m])) / '
                        'sum(rate(podbrief_extraction_llm_requests_total{status="ok"}[15m]))',
                        "still invalid after repair",
                    ),
                ],
                unit="percentunit",
                width=12,
            ),
            Panel(
                "LLM requests per second, by status",
                [("sum by (status) (rate(podbrief_extraction_llm_requests_total[5m]))", "{{status}}")],
                unit="reqps",
                width=12,
            ),
            Panel(
                "LLM request latency",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(podbrief_extraction_llm_request_seconds_bucket[15m])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) (rate(podbrief_extraction_llm_request_seconds_bucket[15m])))",
                        "p95",
                    ),
                ],
                unit="s",
                width=12,
            ),
            Panel(
                "Insights kept and dropped per hour",
                [
                    ("sum(increase(podbrief_extraction_insights_kept_total[1h]))", "kept"),
                    (
                        "sum by (reason) (increase(podbrief_extraction_insights_dropped_total[1h]))",
                        "dropped: {{reason}}",
                    ),
                ],
                width=12,
            ),
            Panel(
                "Episodes and chunks per hour",
                [
                    ("sum by (status) (increase(podbrief_extraction_episodes_total[1h]))", "episodes {{status}}"),
                    ("sum by (outcome) (increase(podbrief_extraction_chunks_total[1h]))", "chunks {{outcome}}"),
                ],
                width=12,
            ),
            Panel("Circuit breaker", [("max(podbrief_extraction_llm_circuit_open)", "open")], width=12, kind="stat"),
            Panel(
                "Backlog",
                [("sum(podbrief_extraction_consumer_lag_messages)", "transcripts waiting")],
                width=12,
                kind="stat",
            ),
            row("vLLM"),
            Panel(
                "vLLM requests running / waiting",
                [("sum(vllm:num_requests_running)", "running"), ("sum(vllm:num_requests_waiting)", "waiting")],
                width=12,
            ),
            Panel(
                "vLLM tokens per second",
                [
                    ("sum(rate(vllm:prompt_tokens_total[5m]))", "prompt"),
                    ("sum(rate(vllm:generation_tokens_total[5m]))", "generation"),
                ],
                width=12,
            ),
            Panel(
                "vLLM time to first token and end-to-end latency",
                [
                    (
                        "histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[5m])))",
                        "TTFT p95",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[5m])))",
                        "e2e p95",
                    ),
                ],
                unit="s",
                width=12,
            ),
            Panel(
                "vLLM KV-cache usage and prefix-cache hit rate",
                [
                    ("max(vllm:kv_cache_usage_perc)", "KV cache used"),
                    (
                        "sum(rate(vllm:prefix_cache_hits_total[15m])) / sum(rate(vllm:prefix_cache_queries_total[15m]))",
                        "prefix-cache hit rate",
                    ),
                ],
                unit="percentunit",
                width=12,
            ),
        ],
    )


def delivery() -> dict[str, object]:
    return render(
        "podbrief-delivery",
        "podbrief / delivery",
        ["delivery"],
        [
            Panel(
                "Briefs sent and failed per hour",
                [
                    ("sum(increase(podbrief_delivery_briefs_sent_total[1h]))", "sent"),
                    ("sum by (reason) (increase(podbrief_delivery_briefs_failed_total[1h]))", "failed: {{reason}}"),
                ],
                width=12,
            ),
            Panel(
                "Bounces (refused by the recipient's server) per hour",
                [('sum(increase(podbrief_delivery_briefs_failed_total{reason="smtp_5xx"}[1h]))', "5xx refusals")],
                width=12,
                description="SMTP-time permanent refusals. Asynchronous bounces (DSN mails) are not "
                "tracked by the service yet.",
            ),
            Panel(
                "Send latency",
                [
                    ("histogram_quantile(0.5, sum by (le) (rate(podbrief_delivery_send_seconds_bucket[1h])))", "p50"),
                    ("histogram_quantile(0.95, sum by (le) (rate(podbrief_delivery_send_seconds_bucket[1h])))", "p95"),
                ],
                unit="s",
                width=12,
                description="Time to hand a brief to the SMTP relay.",
            ),
            Panel(
                "Send lateness against schedule",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) (rate(podbrief_delivery_send_delay_seconds_bucket[1h])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) (rate(podbrief_delivery_send_delay_seconds_bucket[1h])))",
                        "p95",
                    ),
                ],
                unit="s",
                width=12,
                description="How long after each subscriber's local delivery hour the brief reached the SMTP relay.",
            ),
            Panel(
                "Ranking time p95",
                [("histogram_quantile(0.95, sum by (le) (rate(podbrief_delivery_ranking_seconds_bucket[1h])))", "p95")],
                unit="s",
                width=12,
            ),
            Panel(
                "Briefs composed per hour, by kind",
                [("sum by (kind) (increase(podbrief_delivery_briefs_composed_total[1h]))", "{{kind}}")],
                width=12,
            ),
            Panel("Subscribers by state", [("sum by (state) (podbrief_delivery_subscribers)", "{{state}}")], width=12),
            Panel(
                "Feedback per hour, by kind",
                [("sum by (kind) (increase(podbrief_delivery_feedback_total[1h]))", "{{kind}}")],
                width=12,
            ),
            Panel(
                "Candidate insights stored per hour",
                [("sum(increase(podbrief_delivery_insights_stored_total[1h]))", "stored")],
                width=12,
            ),
        ],
    )


DASHBOARDS = {
    "pipeline.json": pipeline,
    "transcription.json": transcription,
    "extraction.json": extraction,
    "delivery.json": delivery,
}


def rendered() -> dict[str, str]:
    return {name: json.dumps(fn(), indent=2, ensure_ascii=False) + "\n" for name, fn in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text, encoding="utf-8")
        sys.stderr.write(f"wrote {OUT / name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
