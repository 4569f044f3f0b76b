"""Delivery metrics, on the app's own registry."""

from __future__ import annotations

from dataclasses import dataclass

from podbrief.metrics import LATENCY_BUCKETS
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class DeliveryMetrics:
    composed: Counter
    sent: Counter
    failed: Counter
    ranking_seconds: Histogram
    send_seconds: Histogram
    send_delay: Histogram
    insight_age: Histogram
    subscribers: Gauge
    insights: Counter
    feedback: Counter
    opens: Counter
    clicks: Counter
    rate_limited: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        p = "podbrief_delivery"
        return cls(
            composed=Counter(f"{p}_briefs_composed_total", "Briefs composed, by kind.", ["kind"], registry=registry),
            sent=Counter(f"{p}_briefs_sent_total", "Briefs accepted by the SMTP server.", registry=registry),
            failed=Counter(
                f"{p}_briefs_failed_total", "Briefs not delivered, by reason.", ["reason"], registry=registry
            ),
            ranking_seconds=Histogram(
                f"{p}_ranking_seconds",
                "Ranking time per batch of subscribers.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            send_seconds=Histogram(
                f"{p}_send_seconds",
                "SMTP send latency per email.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            send_delay=Histogram(
                f"{p}_send_delay_seconds",
                "How late a scheduled brief was handed to SMTP, against the subscriber's local delivery hour.",
                buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
                registry=registry,
            ),
            insight_age=Histogram(
                f"{p}_insight_age_seconds",
                "End-to-end latency: from an episode's publication to a brief carrying its insight.",
                buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 43200, 86400, 172800, 604800, 2592000),
                registry=registry,
            ),
            subscribers=Gauge(f"{p}_subscribers", "Subscribers by state.", ["state"], registry=registry),
            insights=Counter(f"{p}_insights_stored_total", "Candidate insights stored or updated.", registry=registry),
            feedback=Counter(f"{p}_feedback_total", "Feedback clicks, by kind.", ["kind"], registry=registry),
            opens=Counter(f"{p}_opens_total", "Brief emails opened (tracking on only).", registry=registry),
            clicks=Counter(
                f"{p}_clicks_total",
                "Brief links followed (tracking on only), by kind.",
                ["kind"],
                registry=registry,
            ),
            rate_limited=Counter(
                f"{p}_rate_limited_total",
                "Sign-up, confirmation and public search requests refused by the rate limit, by endpoint.",
                ["endpoint"],
                registry=registry,
            ),
        )
