"""Prometheus metrics on an explicit registry per app, so tests can build many apps in one process."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


def new_registry() -> CollectorRegistry:
    return CollectorRegistry(auto_describe=True)


def running_totals(families: Iterable[Metric]) -> dict[str, float]:
    """Every counter and every histogram's sum and count, as `name{label="value",...}` (labels sorted) -> value:
    what can be subtracted between two readings. `families` is a registry's `collect()` or the families parsed
    from a /metrics page (`prometheus_client.parser.text_string_to_metric_families`)."""
    out: dict[str, float] = {}
    for family in families:
        for s in family.samples:
            if s.name.endswith(("_total", "_sum", "_count")):
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out


@dataclass(frozen=True)
class BusMetrics:
    """Consumer and producer metrics every service exports, named podbrief_<service>_<noun>_<unit>."""

    messages: Counter
    handler_seconds: Histogram
    retries: Counter
    dead_lettered: Counter
    published: Counter
    consumer_lag: Gauge
    consumer_up: Gauge

    @classmethod
    def create(cls, service: str, registry: CollectorRegistry) -> BusMetrics:
        p = f"podbrief_{service}"
        return cls(
            messages=Counter(
                f"{p}_messages_total",
                "Messages handled, by topic and outcome.",
                ["topic", "status"],
                registry=registry,
            ),
            handler_seconds=Histogram(
                f"{p}_handler_seconds",
                "Time spent in a message handler.",
                ["topic"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            retries=Counter(f"{p}_retries_total", "Handler retries.", ["topic"], registry=registry),
            dead_lettered=Counter(
                f"{p}_dead_lettered_total",
                "Messages sent to a DLQ, by error class and reason code (podbrief.reasons).",
                ["topic", "error_class", "reason"],
                registry=registry,
            ),
            published=Counter(f"{p}_published_total", "Events published.", ["topic"], registry=registry),
            consumer_lag=Gauge(
                f"{p}_consumer_lag_messages",
                "Messages not yet consumed, per topic.",
                ["topic"],
                registry=registry,
            ),
            consumer_up=Gauge(f"{p}_consumer_up", "1 while the consumer task runs.", registry=registry),
        )
