"""Clustering metrics, on the app's explicit registry."""

from __future__ import annotations

from dataclasses import dataclass

from podbrief.metrics import LATENCY_BUCKETS
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class ClusteringMetrics:
    insights_embedded: Counter
    embedding_seconds: Histogram
    search_seconds: Histogram
    clusters_active: Gauge
    duplicates_merged: Counter
    recluster_seconds: Histogram
    vector_points: Gauge
    vector_unindexed_points: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ClusteringMetrics:
        p = "podbrief_clustering"
        return cls(
            insights_embedded=Counter(f"{p}_insights_embedded_total", "Insights embedded.", registry=registry),
            embedding_seconds=Histogram(
                f"{p}_embedding_seconds",
                "Time to embed one batch of texts.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            search_seconds=Histogram(
                f"{p}_search_seconds",
                "Vector search latency, by operation.",
                ["op"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            clusters_active=Gauge(f"{p}_clusters_active", "Clusters currently stored.", registry=registry),
            duplicates_merged=Counter(
                f"{p}_duplicates_merged_total",
                "Insights linked to an earlier one as a corroboration.",
                registry=registry,
            ),
            recluster_seconds=Histogram(
                f"{p}_recluster_seconds",
                "Time of one re-clustering run.",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            vector_points=Gauge(f"{p}_vector_points", "Insight vectors in the vector store.", registry=registry),
            vector_unindexed_points=Gauge(
                f"{p}_vector_unindexed_points",
                "Vectors outside the HNSW graph, searched exactly (Qdrant Edge builds it at start or on "
                "`podbrief vectors build-index`).",
                registry=registry,
            ),
        )
