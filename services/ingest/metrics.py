"""Ingest metrics, on the app's explicit registry."""

from __future__ import annotations

from dataclasses import dataclass

from podbrief.metrics import LATENCY_BUCKETS
from podbrief_ingest.feedxml import REPAIRS
from podbrief_ingest.parser import DROP_REASONS
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class IngestMetrics:
    polls: Counter
    not_modified: Counter
    parse_failures: Counter
    episodes: Counter
    episodes_rejected: Counter
    poll_seconds: Histogram
    transcripts: Counter
    outbox_pending: Gauge
    items_dropped: Counter
    feeds_recovered: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> IngestMetrics:
        p = "podbrief_ingest"
        metrics = cls(
            polls=Counter(
                f"{p}_feed_polls_total",
                "Feed polls, by outcome (ok, not_modified, error, blocked).",
                ["outcome"],
                registry=registry,
            ),
            not_modified=Counter(
                f"{p}_not_modified_total",
                "Polls answered 304 Not Modified; divide by feed_polls_total for the 304 ratio.",
                registry=registry,
            ),
            parse_failures=Counter(
                f"{p}_parse_failures_total",
                "Feeds that could not be fetched or parsed, by reason.",
                ["reason"],
                registry=registry,
            ),
            episodes=Counter(
                f"{p}_episodes_discovered_total",
                "New episodes, by what happened to them (emitted, backlog, rejected).",
                ["status"],
                registry=registry,
            ),
            episodes_rejected=Counter(
                f"{p}_episodes_rejected_total",
                "New episodes that cannot be transcribed (no usable enclosure), by reason (podbrief.reasons).",
                ["reason"],
                registry=registry,
            ),
            poll_seconds=Histogram(
                f"{p}_poll_seconds",
                "Time to poll one feed, fetch to commit.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            transcripts=Counter(
                f"{p}_publisher_transcripts_total",
                "Publisher transcript fetches, by outcome.",
                ["outcome"],
                registry=registry,
            ),
            outbox_pending=Gauge(
                f"{p}_outbox_pending_messages", "Events written but not yet published.", registry=registry
            ),
            items_dropped=Counter(
                f"{p}_items_dropped_total",
                "Feed items left out of the episodes when a feed is parsed, by reason (duplicate_guid, "
                "no_guid_no_enclosure).",
                ["reason"],
                registry=registry,
            ),
            feeds_recovered=Counter(
                f"{p}_feeds_recovered_total",
                "Feed documents that were not well-formed and were read after a repair, by repair (encoding, "
                "undeclared_prefix, entities, control_chars, stray_markup, leading_junk, xml_recover).",
                ["repair"],
                registry=registry,
            ),
        )
        # Every reason exists from the start (at 0), so a dashboard shows "none" rather than "no data".
        for reason in DROP_REASONS:
            metrics.items_dropped.labels(reason)
        for repair in REPAIRS:
            metrics.feeds_recovered.labels(repair)
        return metrics
