"""Clustering settings (env prefix CLUSTERING_, nested with __, e.g. CLUSTERING_QDRANT__URL)."""

from __future__ import annotations

from typing import Literal

from podbrief.embeddings import EmbeddingSettings
from podbrief.settings import DatabaseSettings, HttpSettings, QdrantSettings, ServiceSettings
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict


class ClusteringSettings(ServiceSettings):
    # The rest of the configuration (nesting with `__`, .env, partial updates of nested blocks) is ServiceSettings'.
    model_config = SettingsConfigDict(env_prefix="CLUSTERING_")

    http: HttpSettings = HttpSettings(port=8004)
    db: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///.data/clustering.db"))
    qdrant: QdrantSettings = QdrantSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()

    # Thresholds are cosine similarities of MiniLM vectors, tuned on tests/data/labelled_insights.jsonl:
    # there, paraphrases of one claim score 0.61-0.86 and different claims on one topic at most 0.63. A false
    # merge hides a distinct insight while a missed one only shows a claim twice, so the threshold sits in
    # the range with no false merges (0.63-0.68), which is where F0.5 peaks.
    duplicate_threshold: float = Field(default=0.66, gt=0, le=1)
    # Online assignment: join the nearest cluster whose centroid is at least this similar, else found one.
    cluster_threshold: float = Field(default=0.30, gt=0, le=1)
    related_count: int = Field(default=3, ge=2, le=5)
    # Below this a neighbour is noise rather than related. On the labelled set 0.30 keeps 95% of related
    # insights on topic and still finds three for most insights (precision@3 0.83, gaps counted as misses).
    related_min_score: float = Field(default=0.30, ge=-1, le=1)

    # The vector index (Qdrant Edge embedded, or a server). HNSW graph shape, and candidates per search: at
    # 100,000 MiniLM-like points ef 128 keeps recall@10 at or above 0.99 against exact search (make bench-cluster).
    hnsw_m: int = Field(default=16, ge=4, le=128)
    hnsw_ef_construct: int = Field(default=100, ge=4, le=4096)
    search_ef: int = Field(default=128, ge=4, le=4096)
    # Qdrant Edge searches fresh points exactly and builds the HNSW graph only when the store opens (in a child
    # process, before serving) with at least this many points outside it, or by `podbrief vectors build-index`
    # with the service stopped; 0: never at start. Exact search over the 10,000 fresh points this allows adds
    # 2-4 ms to a search at 100,000 points (make bench-cluster: search p99 within 20 ms with them).
    build_index_min_points: int = Field(default=10_000, ge=0)
    quantization: Literal["none", "int8"] = "none"
    quantization_always_ram: bool = True

    # Periodic re-clustering of recent insights; interval 0 turns the background loop off.
    recluster_window_days: float = Field(default=14.0, gt=0, le=3650)
    recluster_interval_s: float = Field(default=3600.0, ge=0)
    recluster_algorithm: Literal["agglomerative", "hdbscan"] = "agglomerative"
    # Average-link cosine similarity that keeps a re-clustered group together (agglomerative).
    recluster_threshold: float = Field(default=0.25, gt=0, le=1)
    min_cluster_size: int = Field(default=2, ge=2, le=1000)
    # A re-clustered group inherits an old cluster's id when their member sets overlap at least this much.
    min_jaccard: float = Field(default=0.3, gt=0, le=1)
    label_terms: int = Field(default=3, ge=1, le=10)

    @model_validator(mode="after")
    def _consistent(self) -> ClusteringSettings:
        if self.duplicate_threshold <= self.cluster_threshold:
            raise ValueError("duplicate_threshold must be above cluster_threshold")
        return self
