"""The insights collection in the vector store (Qdrant Edge embedded, a Qdrant server in production). The store
maps its own failures onto `podbrief.errors`, so the consumer runner knows what to retry."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from podbrief.storage.vectors import Condition, Filter, HasId, Hit, Match, PayloadType, Point, Range, VectorIndex
from podbrief_clustering.metrics import ClusteringMetrics

# The payload fields queries filter on, and their types (`published_ts` is epoch seconds, so ranges work
# everywhere): the search API's show and time window, and related insights leaving out the asking episode. Only
# these are indexed, and only these may appear in a filter: every index costs each insert (on Qdrant Edge about
# a fifth of it, with the binding's per-value conversion), and the other fields are only ever read back.
PAYLOAD_INDEXES: dict[str, PayloadType] = {
    "published_ts": "float",
    "show": "keyword",
    "episode_id": "keyword",
}


class InsightIndex:
    """The insights collection: one point per insight, the point id being the insight id (so writing twice is
    an upsert), and clustering's queries written in the store's filter language."""

    # The store's point counts feed two gauges, read at most this often (on a server it is a request).
    OBSERVE_EVERY_S = 10.0

    def __init__(self, store: VectorIndex, metrics: ClusteringMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self._observed_at = -math.inf

    async def observe(self, *, force: bool = False) -> None:
        if self.metrics is None or (not force and time.monotonic() - self._observed_at < self.OBSERVE_EVERY_S):
            return
        self._observed_at = time.monotonic()
        info = await self.store.info()
        self.metrics.vector_points.set(info.points)
        self.metrics.vector_unindexed_points.set(info.unindexed)

    async def upsert(self, points: Sequence[tuple[uuid.UUID, np.ndarray, dict[str, Any]]]) -> None:
        await self.store.upsert([Point(pid, vec, payload) for pid, vec, payload in points])
        await self.observe()

    async def search(
        self,
        vector: np.ndarray,
        *,
        limit: int,
        exclude_ids: Iterable[uuid.UUID] = (),
        exclude_episode: uuid.UUID | None = None,
        show: str | None = None,
        since_ts: float | None = None,
        score_threshold: float | None = None,
    ) -> list[Hit]:
        must: list[Condition] = []
        must_not: list[Condition] = []
        ids = frozenset(exclude_ids)
        if ids:
            must_not.append(HasId(ids))
        if exclude_episode is not None:
            must_not.append(Match("episode_id", str(exclude_episode)))
        if show:
            must.append(Match("show", show))
        if since_ts is not None:
            must.append(Range("published_ts", gte=since_ts))
        return await self.store.search(
            vector, limit=limit, filter=Filter(tuple(must), tuple(must_not)), score_threshold=score_threshold
        )

    async def retrieve(
        self, ids: Sequence[uuid.UUID], *, with_vectors: bool = True
    ) -> dict[uuid.UUID, tuple[np.ndarray | None, dict[str, Any]]]:
        found = await self.store.retrieve(ids, with_vectors=with_vectors)
        return {k: (r.vector, r.payload) for k, r in found.items()}

    async def set_cluster(self, cluster_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
        await self.store.set_payload(ids, {"cluster_id": str(cluster_id)})

    async def count(self) -> int:
        return await self.store.count()

    async def healthy(self) -> bool:
        return await self.store.healthy()
