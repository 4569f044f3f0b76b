"""The clusterer, shared by the service's handler and API and by the `podbrief cluster` command: embed, spot
near-duplicates, assign clusters online, find related insights, search, re-cluster a time window."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from podbrief.clock import utcnow
from podbrief.embeddings import TextEmbedder
from podbrief.events import EpisodeRef, Insight, RelatedInsight
from podbrief.events.ids import NAMESPACE
from podbrief.storage.vectors import Hit
from podbrief_clustering.adapters.index import InsightIndex
from podbrief_clustering.adapters.repo import Cluster, ClusterRepo, Member
from podbrief_clustering.labels import TermStats
from podbrief_clustering.metrics import ClusteringMetrics
from podbrief_clustering.settings import ClusteringSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    episode: EpisodeRef
    insight: Insight


@dataclass(frozen=True)
class Outcome:
    insight_id: uuid.UUID
    cluster_id: uuid.UUID
    cluster_label: str
    cluster_size: int
    cluster_shows: int
    duplicate_of: uuid.UUID | None
    related: tuple[RelatedInsight, ...]
    vector: np.ndarray
    redelivered: bool


@dataclass(frozen=True)
class ReclusterReport:
    window_insights: int
    clusters_before: int
    clusters_after: int
    kept: int
    created: int
    removed: int
    moved: int
    seconds: float
    algorithm: str


@dataclass
class SearchResult:
    insight_id: uuid.UUID
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


def founding_cluster_id(insight_id: uuid.UUID) -> uuid.UUID:
    # Deterministic, so a redelivery after a crash before the DB commit founds the same cluster again.
    return uuid.uuid5(NAMESPACE, f"cluster:{insight_id}")


def timestamp_link(url: str | None, start_s: float | None) -> str | None:
    if not url or start_s is None or "#" in url:
        return url
    return f"{url}#t={int(start_s)}"


class Clusterer:
    """Holds the online cluster state (centroids cached in memory, persisted in the DB) behind one lock:
    assignments are sequential, so concurrent episodes never found two clusters for one topic."""

    def __init__(
        self,
        *,
        index: InsightIndex,
        repo: ClusterRepo,
        embedder: TextEmbedder,
        settings: ClusteringSettings,
        metrics: ClusteringMetrics | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.index = index
        self.repo = repo
        self.embedder = embedder
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self._lock = asyncio.Lock()
        self._clusters: dict[uuid.UUID, Cluster] | None = None
        self._terms: TermStats | None = None

    @property
    def model(self) -> str:
        return self.embedder.name

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        t0 = time.perf_counter()
        vecs = await asyncio.to_thread(self.embedder.embed, list(texts))
        took = time.perf_counter() - t0
        if self.metrics:
            self.metrics.embedding_seconds.observe(took)
            self.metrics.insights_embedded.inc(len(texts))
        log.debug(
            "embedded a batch",
            extra={
                "texts": len(texts),
                "seconds": round(took, 4),
                "per_second": round(len(texts) / max(took, 1e-9), 1),
            },
        )
        return vecs

    async def _state(self) -> tuple[dict[uuid.UUID, Cluster], TermStats]:
        if self._clusters is None or self._terms is None:
            self._clusters = await self.repo.clusters()
            terms = TermStats()
            terms.add([m.text for m in await self.repo.all_members()])
            self._terms = terms
            if self.metrics:
                self.metrics.clusters_active.set(len(self._clusters))
        return self._clusters, self._terms

    def _nearest(self, vec: np.ndarray, clusters: dict[uuid.UUID, Cluster]) -> uuid.UUID | None:
        if not clusters:
            return None
        ids = list(clusters)
        cents = np.stack([clusters[i].centroid for i in ids])
        sims = (cents @ vec) / np.clip(np.linalg.norm(cents, axis=1), 1e-12, None)
        k = int(np.argmax(sims))
        return ids[k] if sims[k] >= self.settings.cluster_threshold else None

    async def process(self, items: Sequence[Item]) -> list[Outcome]:
        """Embed, store and assign a batch (in order), then find each insight's related insights.

        Insights already stored keep their cluster and duplicate link (redelivery re-emits, never re-decides);
        their points are upserted again under the same ids."""
        if not items:
            return []
        vecs = await self.embed([it.insight.text for it in items])
        async with self._lock:
            try:
                members = await self._assign(items, vecs)
            except BaseException:
                # The in-memory state may be ahead of what was committed: reload it next time.
                self._clusters = self._terms = None
                raise
            clusters, _ = await self._state()
        outcomes = []
        for it, vec in zip(items, vecs, strict=True):
            assigned = members[it.insight.insight_id]
            m = assigned.member
            c = clusters.get(m.cluster_id)
            related = await self.related_for(
                vec, insight_id=m.insight_id, episode_id=it.episode.episode_id, show=it.episode.show
            )
            outcomes.append(
                Outcome(
                    insight_id=m.insight_id,
                    cluster_id=m.cluster_id,
                    cluster_label=c.label if c else "",
                    cluster_size=c.size if c else 1,
                    cluster_shows=max(c.show_count if c else 1, 1),
                    duplicate_of=m.duplicate_of,
                    related=related,
                    vector=vec,
                    redelivered=assigned.created_before,
                )
            )
        return outcomes

    async def _assign(self, items: Sequence[Item], vecs: np.ndarray) -> dict[uuid.UUID, _Assigned]:
        s = self.settings
        now = self.clock()
        ids = [it.insight.insight_id for it in items]
        stored = await self.repo.members(ids)
        clusters, terms = await self._state()
        batch_ids = set(ids)
        out: dict[uuid.UUID, _Assigned] = {m.insight_id: _Assigned(m, True) for m in stored.values()}
        # Points of this batch are excluded from the index search (a crash may have left some stored), so
        # in-batch duplicates are found here instead, including against insights stored on a first delivery.
        earlier: list[tuple[np.ndarray, Member]] = [
            (vec, stored[it.insight.insight_id])
            for it, vec in zip(items, vecs, strict=True)
            if it.insight.insight_id in stored
        ]
        touched: dict[uuid.UUID, list[str]] = {}
        new_members: list[Member] = []
        for it, vec in zip(items, vecs, strict=True):
            iid = it.insight.insight_id
            if iid in out:
                continue
            best_score, best_id = -2.0, None
            hits = await self._timed("duplicate", self.index.search(vec, limit=1, exclude_ids=batch_ids))
            if hits:
                best_score, best_id = hits[0].score, hits[0].id
            for ovec, om in earlier:
                sim = float(ovec @ vec)
                if sim > best_score:
                    best_score, best_id = sim, om.insight_id
            duplicate_of, cluster_id = None, None
            if best_id is not None and best_score >= s.duplicate_threshold:
                canon = out[best_id].member if best_id in out else (await self.repo.members([best_id])).get(best_id)
                if canon is not None:
                    duplicate_of = canon.duplicate_of or canon.insight_id
                    cluster_id = canon.cluster_id
                    if self.metrics:
                        self.metrics.duplicates_merged.inc()
            if cluster_id is None or cluster_id not in clusters:
                cluster_id = self._nearest(vec, clusters) or founding_cluster_id(iid)
            seen = it.episode.published_at or now
            member = Member(
                iid, cluster_id, it.episode.episode_id, it.episode.show, it.insight.text, duplicate_of, seen
            )
            clusters[cluster_id] = _grow(clusters.get(cluster_id), cluster_id, vec, it.episode.show, seen, now)
            touched.setdefault(cluster_id, []).append(it.insight.text)
            terms.add([it.insight.text])
            out[iid] = _Assigned(member, False)
            new_members.append(member)
            earlier.append((vec, member))
        if touched:
            by_cluster: dict[uuid.UUID, list[str]] = {c: list(t) for c, t in touched.items()}
            for m in await self.repo.members_of(list(touched)):
                by_cluster[m.cluster_id].append(m.text)
            for cid, docs in by_cluster.items():
                clusters[cid].label = terms.label(docs, len(clusters), s.label_terms)
        # Write before publish: the vectors first (an upsert), then the bookkeeping that makes them "seen".
        points = [
            (it.insight.insight_id, vec, point_payload(it, out[it.insight.insight_id].member))
            for it, vec in zip(items, vecs, strict=True)
        ]
        await self.index.upsert(points)
        await self.repo.save(new_members, [clusters[c] for c in touched], now)
        if self.metrics:
            self.metrics.clusters_active.set(len(clusters))
        return out

    async def _timed(self, op: str, coro: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await coro
        finally:
            if self.metrics:
                self.metrics.search_seconds.labels(op).observe(time.perf_counter() - t0)

    async def related_for(
        self,
        vec: np.ndarray,
        *,
        insight_id: uuid.UUID,
        episode_id: uuid.UUID,
        show: str,
        limit: int | None = None,
    ) -> tuple[RelatedInsight, ...]:
        """The nearest insights from other episodes, other shows first among the closest candidates."""
        k = limit or self.settings.related_count
        hits: list[Hit] = await self._timed(
            "related",
            self.index.search(
                vec,
                limit=4 * k,
                exclude_ids=[insight_id],
                exclude_episode=episode_id,
                score_threshold=self.settings.related_min_score,
            ),
        )
        window = hits[: 2 * k]
        # Stable sort: within "other show" and "same show" the order stays by score.
        window.sort(key=lambda h: h.payload.get("show") == show)
        return tuple(to_related(h) for h in window[:k])

    async def related(self, insight_id: uuid.UUID, limit: int | None = None) -> tuple[RelatedInsight, ...] | None:
        found = await self.index.retrieve([insight_id])
        if insight_id not in found or found[insight_id][0] is None:
            return None
        vec, payload = found[insight_id]
        assert vec is not None
        return await self.related_for(
            vec,
            insight_id=insight_id,
            episode_id=uuid.UUID(payload["episode_id"]),
            show=str(payload.get("show", "")),
            limit=limit,
        )

    async def search(
        self, query: str, *, show: str | None = None, since: datetime | None = None, limit: int = 10
    ) -> list[SearchResult]:
        vec = (await self.embed([query]))[0]
        hits = await self._timed(
            "search",
            self.index.search(vec, limit=limit, show=show, since_ts=since.timestamp() if since else None),
        )
        return [SearchResult(h.id, h.score, h.payload) for h in hits]

    async def recluster(self) -> ReclusterReport:
        """Re-cluster the window's insights and carry the ids of clusters that persist over to their
        successors (greedy one-to-one matching by member Jaccard), so topics keep their id day to day."""
        t0 = time.perf_counter()
        s = self.settings
        async with self._lock:
            try:
                report = await self._recluster()
            finally:
                self._clusters = self._terms = None
            clusters, _ = await self._state()
        report = replace(report, clusters_after=len(clusters), seconds=time.perf_counter() - t0)
        if self.metrics:
            self.metrics.recluster_seconds.observe(report.seconds)
        log.info(
            "re-clustered",
            extra={
                "algorithm": s.recluster_algorithm,
                "window": report.window_insights,
                "kept": report.kept,
                "new_clusters": report.created,
                "removed": report.removed,
                "moved": report.moved,
            },
        )
        return report

    async def _recluster(self) -> ReclusterReport:
        s = self.settings
        now = self.clock()
        old = await self.repo.clusters()
        window = await self.repo.members_since(now - timedelta(days=s.recluster_window_days))
        primaries = [m for m in window if m.duplicate_of is None]
        found = await self.index.retrieve([m.insight_id for m in primaries])
        primaries = [m for m in primaries if m.insight_id in found and found[m.insight_id][0] is not None]
        empty = ReclusterReport(len(primaries), len(old), len(old), len(old), 0, 0, 0, 0.0, s.recluster_algorithm)
        if len(primaries) < max(2, s.min_cluster_size):
            return empty
        matrix = np.stack([found[m.insight_id][0] for m in primaries])  # type: ignore[misc]
        labels = await asyncio.to_thread(self._fit, matrix)
        groups: dict[int, set[uuid.UUID]] = {}
        for m, lab in zip(primaries, labels, strict=True):
            if lab >= 0:
                groups.setdefault(int(lab), set()).add(m.insight_id)
        current = {m.insight_id: m.cluster_id for m in window}
        old_sets: dict[uuid.UUID, set[uuid.UUID]] = {}
        for m in primaries:
            old_sets.setdefault(m.cluster_id, set()).add(m.insight_id)
        pairs: list[tuple[float, int, str, int, uuid.UUID]] = []
        for g, members in groups.items():
            for oc, inter in Counter(current[i] for i in members).items():
                jac = inter / len(members | old_sets[oc])
                pairs.append((jac, inter, str(oc), g, oc))
        pairs.sort(key=lambda p: (-p[0], -p[1], p[2]))
        new_ids: dict[int, uuid.UUID] = {}
        used: set[uuid.UUID] = set()
        for jac, _inter, _key, g, oc in pairs:
            if jac < s.min_jaccard:
                break
            if g not in new_ids and oc not in used:
                new_ids[g] = oc
                used.add(oc)
        created = 0
        for g, members in groups.items():
            if g not in new_ids:
                digest = hashlib.sha1("\n".join(sorted(str(i) for i in members)).encode()).hexdigest()
                new_ids[g] = uuid.uuid5(NAMESPACE, f"cluster:group:{digest}")
                created += 1
        target = dict(current)
        for m, lab in zip(primaries, labels, strict=True):
            if lab >= 0:
                target[m.insight_id] = new_ids[int(lab)]
        for m in window:
            # A corroboration stays with the claim it corroborates.
            if m.duplicate_of is not None and m.duplicate_of in target:
                target[m.insight_id] = target[m.duplicate_of]
        moved = [(i, c) for i, c in target.items() if c != current[i]]
        if not moved:
            return empty
        affected = {current[i] for i, _ in moved} | {c for _, c in moved}
        members_after: dict[uuid.UUID, list[Member]] = {c: [] for c in affected}
        new_of = dict(moved)
        for m in await self.repo.members_of(list(affected)):
            cid = new_of.get(m.insight_id, m.cluster_id)
            members_after.setdefault(cid, []).append(replace(m, cluster_id=cid))
        for i, c in moved:
            if not any(x.insight_id == i for x in members_after[c]):
                mm = next(m for m in window if m.insight_id == i)
                members_after[c].append(replace(mm, cluster_id=c))
        vec_of = await self.index.retrieve([m.insight_id for ms in members_after.values() for m in ms])
        all_clusters = dict(old)
        terms = TermStats()
        terms.add([m.text for m in await self.repo.all_members()])
        changed: list[Cluster] = []
        deleted: list[uuid.UUID] = []
        for cid, ms in members_after.items():
            vs = [v for m in ms if (v := vec_of.get(m.insight_id, (None, {}))[0]) is not None]
            if not ms or not vs:
                deleted.append(cid)
                all_clusters.pop(cid, None)
                continue
            prev = old.get(cid)
            cluster = Cluster(
                id=cid,
                centroid=np.mean(np.stack(vs), axis=0).astype(np.float32),
                size=len(ms),
                shows=sorted({m.show for m in ms}),
                label="",
                first_seen=min(m.seen_at for m in ms),
                last_seen=max(m.seen_at for m in ms),
                created_at=prev.created_at if prev else now,
                updated_at=now,
            )
            all_clusters[cid] = cluster
            changed.append(cluster)
        for cluster in changed:
            cluster.label = terms.label([m.text for m in members_after[cluster.id]], len(all_clusters), s.label_terms)
        by_target: dict[uuid.UUID, list[uuid.UUID]] = {}
        for i, c in moved:
            by_target.setdefault(c, []).append(i)
        for c, ids in by_target.items():
            await self.index.set_cluster(c, ids)
        await self.repo.save([], changed, now, reassigned=moved, deleted=deleted)
        kept = len([c for c in new_ids.values() if c in old])
        return ReclusterReport(
            len(primaries),
            len(old),
            len(all_clusters),
            kept,
            created,
            len([d for d in deleted if d in old]),
            len(moved),
            0.0,
            s.recluster_algorithm,
        )

    def _fit(self, matrix: np.ndarray) -> np.ndarray:
        s = self.settings
        if s.recluster_algorithm == "hdbscan":
            from sklearn.cluster import HDBSCAN

            labels = HDBSCAN(min_cluster_size=s.min_cluster_size, copy=True).fit_predict(matrix)
            return np.asarray(labels)
        from sklearn.cluster import AgglomerativeClustering

        labels = AgglomerativeClustering(
            n_clusters=None,
            metric="cosine",
            linkage="average",
            distance_threshold=1.0 - s.recluster_threshold,
        ).fit_predict(matrix)
        sizes = Counter(labels.tolist())
        # Groups below the minimum size are noise: their insights keep the cluster they have.
        return np.asarray([lab if sizes[lab] >= s.min_cluster_size else -1 for lab in labels.tolist()])


@dataclass(frozen=True)
class _Assigned:
    member: Member
    created_before: bool


def _grow(
    cluster: Cluster | None, cid: uuid.UUID, vec: np.ndarray, show: str, seen: datetime, now: datetime
) -> Cluster:
    if cluster is None:
        return Cluster(
            id=cid,
            centroid=vec.astype(np.float32).copy(),
            size=1,
            shows=[show],
            label="",
            first_seen=seen,
            last_seen=seen,
            created_at=now,
            updated_at=now,
        )
    cluster.centroid = ((cluster.centroid * cluster.size + vec) / (cluster.size + 1)).astype(np.float32)
    cluster.size += 1
    if show not in cluster.shows:
        cluster.shows.append(show)
    cluster.first_seen = min(cluster.first_seen, seen)
    cluster.last_seen = max(cluster.last_seen, seen)
    cluster.updated_at = now
    return cluster


def point_payload(item: Item, member: Member) -> dict[str, Any]:
    ep, ins = item.episode, item.insight
    published = ep.published_at or member.seen_at
    return {
        "insight_id": str(ins.insight_id),
        "text": ins.text,
        "quote": ins.quote,
        "start_s": ins.start_s,
        "end_s": ins.end_s,
        "speaker": ins.speaker,
        "kind": str(ins.kind),
        "importance": ins.importance,
        "show": ep.show,
        "episode_id": str(ep.episode_id),
        "episode_title": ep.title,
        "feed_id": str(ep.feed_id),
        "link": ep.link or ep.enclosure_url,
        "language": ep.language or "und",
        "published_ts": published.timestamp(),
        "cluster_id": str(member.cluster_id),
        "duplicate_of": str(member.duplicate_of) if member.duplicate_of else None,
    }


def to_related(hit: Hit) -> RelatedInsight:
    p = hit.payload
    start = p.get("start_s")
    return RelatedInsight(
        insight_id=hit.id,
        text=str(p.get("text", "")),
        quote=p.get("quote"),
        show=str(p.get("show", "")),
        episode_title=str(p.get("episode_title", "")),
        episode_id=uuid.UUID(str(p["episode_id"])),
        start_s=float(start) if start is not None else None,
        link=timestamp_link(p.get("link"), float(start) if start is not None else None),
        score=max(-1.0, min(1.0, hit.score)),
    )
