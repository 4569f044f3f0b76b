"""Extraction metrics, on the app's explicit registry."""

from __future__ import annotations

from dataclasses import dataclass

from podbrief.metrics import LATENCY_BUCKETS, new_registry
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

P = "podbrief_extraction"


@dataclass(frozen=True)
class ExtractionMetrics:
    chunks: Counter
    insights_kept: Counter
    insights_dropped: Counter
    tokens: Counter
    verdicts: Counter
    llm_seconds: Histogram
    server_seconds: Counter
    llm_requests: Counter
    invalid_outputs: Counter
    episodes: Counter
    breaker_open: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ExtractionMetrics:
        r = registry if registry is not None else new_registry()
        return cls(
            chunks=Counter(
                f"{P}_chunks_total",
                "Transcript chunks processed, by outcome (ok, failed).",
                ["outcome"],
                registry=r,
            ),
            insights_kept=Counter(f"{P}_insights_kept_total", "Insights kept after every quality gate.", registry=r),
            insights_dropped=Counter(
                f"{P}_insights_dropped_total",
                "Candidate insights dropped, by reason.",
                ["reason"],
                registry=r,
            ),
            tokens=Counter(
                f"{P}_llm_tokens_total",
                "LLM tokens, by direction (in = prompt, out = completion) and stage (select, write, verify).",
                ["direction", "stage"],
                registry=r,
            ),
            verdicts=Counter(
                f"{P}_verifications_total",
                "Written insights checked against their passage, by verdict (supported, partly, unsupported, "
                "facts: a number or name not in the passage).",
                ["verdict"],
                registry=r,
            ),
            llm_seconds=Histogram(
                f"{P}_llm_request_seconds",
                "Chat-completion latency, by outcome.",
                ["outcome"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            server_seconds=Counter(
                f"{P}_llm_server_seconds_total",
                "Seconds the LLM server says it spent on the requests, by phase (prompt: reading the prompt; "
                "generation: writing the answer, constrained sampling included); llama-server reports them, "
                "other servers add nothing.",
                ["phase"],
                registry=r,
            ),
            llm_requests=Counter(
                f"{P}_llm_requests_total",
                "Chat-completion attempts, by status (ok, http_429, "
                "http_5xx, http_4xx, timeout, connect, circuit_open).",
                ["status"],
                registry=r,
            ),
            invalid_outputs=Counter(
                f"{P}_invalid_outputs_total",
                "Model answers that were not valid JSON for the schema, by stage (first, repair).",
                ["stage"],
                registry=r,
            ),
            episodes=Counter(
                f"{P}_episodes_total",
                "Episodes handled, by status (done, skipped, error, replayed).",
                ["status"],
                registry=r,
            ),
            breaker_open=Gauge(f"{P}_llm_circuit_open", "1 while the LLM circuit breaker is open.", registry=r),
        )
