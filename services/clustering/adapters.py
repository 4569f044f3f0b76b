"""I/O of the clustering service: the Qdrant vector index and the cluster bookkeeping tables.

Third-party failures are mapped onto `podbrief.errors` here, so the consumer runner knows what to retry."""

from __future__ import annotations

import logging
import math
import uuid
import warnings
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import numpy as np
import sqlalchemy as sa
from podbrief.errors import ConfigurationError, PermanentError, RetryableError
from podbrief_clustering.models import ClusterRow, MemberRow
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

# Payload fields with an index, and their types; `published_ts` is epoch seconds so ranges work everywhere.
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "published_ts": models.PayloadSchemaType.FLOAT,
    "show": models.PayloadSchemaType.KEYWORD,
    "episode_id": models.PayloadSchemaType.KEYWORD,
    "cluster_id": models.PayloadSchemaType.KEYWORD,
    "language": models.PayloadSchemaType.KEYWORD,
}
META_MODEL = "podbrief_embedding_model"
META_DIM = "podbrief_embedding_dim"


@dataclass(frozen=True)
class IndexParams:
    collection: str
    model: str
    dim: int
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    quantization: str = "none"
    quantization_always_ram: bool = True
    local: bool = True


@dataclass(frozen=True)
class Hit:
    id: uuid.UUID
    score: float
    payload: dict[str, Any]


@asynccontextmanager
async def _mapped(op: str) -> AsyncIterator[None]:
    try:
        yield
    except UnexpectedResponse as exc:
        if exc.status_code is not None and (exc.status_code >= 500 or exc.status_code == 429):
            raise RetryableError(f"qdrant {op}: HTTP {exc.status_code}", reason="qdrant_5xx") from exc
        raise PermanentError(
            f"qdrant {op}: HTTP {exc.status_code}: {exc.content[:200]!r}", reason="qdrant_4xx"
        ) from exc
    except (ResponseHandlingException, httpx.TransportError, TimeoutError, ConnectionError) as exc:
        raise RetryableError(f"qdrant {op}: {exc}", reason="qdrant_unreachable") from exc


class VectorIndex:
    """One cosine collection of insights; the point id is the insight id, so writing twice is an upsert."""

    def __init__(self, client: AsyncQdrantClient, params: IndexParams) -> None:
        self.client = client
        self.params = params

    @property
    def collection(self) -> str:
        return self.params.collection

    async def ensure_collection(self) -> None:
        """Create the collection if missing; refuse one built for another embedding model or dimension."""
        p = self.params
        async with _mapped("collection"):
            exists = await self.client.collection_exists(p.collection)
            if not exists:
                quant = None
                if p.quantization == "int8":
                    quant = models.ScalarQuantization(
                        scalar=models.ScalarQuantizationConfig(
                            type=models.ScalarType.INT8, always_ram=p.quantization_always_ram
                        )
                    )
                try:
                    await self.client.create_collection(
                        p.collection,
                        vectors_config=models.VectorParams(size=p.dim, distance=models.Distance.COSINE),
                        hnsw_config=models.HnswConfigDiff(m=p.hnsw_m, ef_construct=p.hnsw_ef_construct),
                        quantization_config=quant,
                        metadata={META_MODEL: p.model, META_DIM: p.dim},
                    )
                except (UnexpectedResponse, ValueError) as exc:
                    # Another replica created it between our check and our create: fine, verify below.
                    if not await self.client.collection_exists(p.collection):
                        raise
                    log.info(
                        "collection created concurrently",
                        extra={"collection": p.collection, "error": str(exc)},
                    )
                else:
                    log.info(
                        "collection created",
                        extra={"collection": p.collection, "model": p.model, "dim": p.dim},
                    )
            await self._verify()
            with warnings.catch_warnings():
                # Local mode ignores payload indexes and warns so; a server uses them.
                warnings.simplefilter("ignore", UserWarning)
                info = await self.client.get_collection(p.collection)
                for field, schema in PAYLOAD_INDEXES.items():
                    if field not in (info.payload_schema or {}):
                        await self.client.create_payload_index(p.collection, field, field_schema=schema)

    async def _verify(self) -> None:
        p = self.params
        info = await self.client.get_collection(p.collection)
        vectors = info.config.params.vectors
        size = vectors.size if isinstance(vectors, models.VectorParams) else None
        meta = dict(info.config.metadata or {})
        model, dim = meta.get(META_MODEL), meta.get(META_DIM)
        if model is None and size == p.dim:
            # A collection made before the metadata existed (or by hand) with the right shape: claim it.
            log.warning("collection had no embedding metadata; recording it", extra={"collection": p.collection})
            await self.client.update_collection(p.collection, metadata={META_MODEL: p.model, META_DIM: p.dim})
            return
        if model != p.model or dim != p.dim or size != p.dim:
            raise ConfigurationError(
                f"Qdrant collection {p.collection!r} holds vectors of model {model!r} "
                f"({size or dim}-d), but this service embeds with {p.model!r} ({p.dim}-d). "
                "Vectors of different models are never mixed: point CLUSTERING_QDRANT__COLLECTION "
                "at a new collection (and re-embed), or configure the original model."
            )

    async def upsert(self, points: Sequence[tuple[uuid.UUID, np.ndarray, dict[str, Any]]]) -> None:
        if not points:
            return
        structs = [
            models.PointStruct(id=str(pid), vector=[float(x) for x in vec], payload=payload)
            for pid, vec, payload in points
        ]
        async with _mapped("upsert"):
            await self.client.upsert(self.collection, points=structs, wait=True)

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
        must: list[models.Condition] = []
        must_not: list[models.Condition] = []
        ids = [str(i) for i in exclude_ids]
        if ids:
            must_not.append(models.HasIdCondition(has_id=ids))
        if exclude_episode is not None:
            must_not.append(
                models.FieldCondition(key="episode_id", match=models.MatchValue(value=str(exclude_episode)))
            )
        if show:
            must.append(models.FieldCondition(key="show", match=models.MatchValue(value=show)))
        if since_ts is not None:
            must.append(models.FieldCondition(key="published_ts", range=models.Range(gte=since_ts)))
        flt = models.Filter(must=must or None, must_not=must_not or None) if (must or must_not) else None
        async with _mapped("search"):
            res = await self.client.query_points(
                self.collection,
                query=[float(x) for x in vector],
                query_filter=flt,
                limit=limit,
                with_payload=True,
                score_threshold=score_threshold,
            )
        return [Hit(uuid.UUID(str(p.id)), float(p.score), dict(p.payload or {})) for p in res.points]

    async def retrieve(
        self, ids: Sequence[uuid.UUID], *, with_vectors: bool = True
    ) -> dict[uuid.UUID, tuple[np.ndarray | None, dict[str, Any]]]:
        out: dict[uuid.UUID, tuple[np.ndarray | None, dict[str, Any]]] = {}
        for start in range(0, len(ids), 512):
            chunk = [str(i) for i in ids[start : start + 512]]
            async with _mapped("retrieve"):
                recs = await self.client.retrieve(
                    self.collection, ids=chunk, with_vectors=with_vectors, with_payload=True
                )
            for r in recs:
                vec = np.asarray(r.vector, dtype=np.float32) if with_vectors and r.vector is not None else None
                out[uuid.UUID(str(r.id))] = (vec, dict(r.payload or {}))
        return out

    async def set_cluster(self, cluster_id: uuid.UUID, ids: Sequence[uuid.UUID]) -> None:
        if not ids:
            return
        async with _mapped("set_payload"):
            await self.client.set_payload(
                self.collection,
                payload={"cluster_id": str(cluster_id)},
                points=[str(i) for i in ids],
                wait=True,
            )

    async def count(self) -> int:
        async with _mapped("count"):
            return (await self.client.count(self.collection, exact=True)).count

    async def healthy(self) -> bool:
        try:
            return bool(await self.client.collection_exists(self.collection))
        except Exception:
            return False


@dataclass(frozen=True)
class Member:
    insight_id: uuid.UUID
    cluster_id: uuid.UUID
    episode_id: uuid.UUID
    show: str
    text: str
    duplicate_of: uuid.UUID | None
    seen_at: datetime


@dataclass
class Cluster:
    id: uuid.UUID
    centroid: np.ndarray
    size: int
    shows: list[str]
    label: str
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    updated_at: datetime

    @property
    def show_count(self) -> int:
        return len(self.shows)


def _member(row: MemberRow) -> Member:
    return Member(
        row.insight_id,
        row.cluster_id,
        row.episode_id,
        row.show,
        row.text,
        row.duplicate_of,
        _aware(row.seen_at),
    )


def _cluster(row: ClusterRow) -> Cluster:
    return Cluster(
        row.id,
        np.asarray(row.centroid, dtype=np.float32),
        row.size,
        list(row.shows),
        row.label,
        _aware(row.first_seen),
        _aware(row.last_seen),
        _aware(row.created_at),
        _aware(row.updated_at),
    )


def _aware(value: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    from datetime import UTC

    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class ClusterRepo:
    """Clusters and memberships in the service's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(engine, expire_on_commit=False)

    async def members(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Member]:
        ids = list(ids)
        if not ids:
            return {}
        out: dict[uuid.UUID, Member] = {}
        async with self.sessions() as s:
            for start in range(0, len(ids), 500):
                rows = await s.scalars(sa.select(MemberRow).where(MemberRow.insight_id.in_(ids[start : start + 500])))
                out.update({r.insight_id: _member(r) for r in rows})
        return out

    async def members_of(self, cluster_ids: Iterable[uuid.UUID]) -> list[Member]:
        ids = list(cluster_ids)
        if not ids:
            return []
        async with self.sessions() as s:
            rows = await s.scalars(sa.select(MemberRow).where(MemberRow.cluster_id.in_(ids)))
            return [_member(r) for r in rows]

    async def members_since(self, since: datetime) -> list[Member]:
        async with self.sessions() as s:
            rows = await s.scalars(
                sa.select(MemberRow)
                .where(MemberRow.seen_at >= since)
                .order_by(MemberRow.created_at, MemberRow.insight_id)
            )
            return [_member(r) for r in rows]

    async def all_members(self) -> list[Member]:
        async with self.sessions() as s:
            rows = await s.scalars(sa.select(MemberRow).order_by(MemberRow.created_at, MemberRow.insight_id))
            return [_member(r) for r in rows]

    async def clusters(self, ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, Cluster]:
        async with self.sessions() as s:
            q = sa.select(ClusterRow)
            if ids is not None:
                q = q.where(ClusterRow.id.in_(list(ids)))
            return {r.id: _cluster(r) for r in await s.scalars(q)}

    async def cluster_count(self) -> int:
        async with self.sessions() as s:
            return int(await s.scalar(sa.select(sa.func.count()).select_from(ClusterRow)) or 0)

    async def save(
        self,
        members: Sequence[Member],
        clusters: Sequence[Cluster],
        now: datetime,
        *,
        reassigned: Sequence[tuple[uuid.UUID, uuid.UUID]] = (),
        deleted: Sequence[uuid.UUID] = (),
    ) -> None:
        """New members, changed clusters, reassignments and deletions in one transaction."""
        async with self.sessions.begin() as s:
            for m in members:
                if await s.get(MemberRow, m.insight_id) is None:
                    s.add(
                        MemberRow(
                            insight_id=m.insight_id,
                            cluster_id=m.cluster_id,
                            episode_id=m.episode_id,
                            show=m.show,
                            text=m.text,
                            duplicate_of=m.duplicate_of,
                            seen_at=m.seen_at,
                            created_at=now,
                        )
                    )
            for insight, cluster in reassigned:
                await s.execute(sa.update(MemberRow).where(MemberRow.insight_id == insight).values(cluster_id=cluster))
            for c in clusters:
                values = {
                    "centroid": [float(x) for x in c.centroid],
                    "size": c.size,
                    "shows": sorted(c.shows),
                    "show_count": c.show_count,
                    "label": c.label,
                    "first_seen": c.first_seen,
                    "last_seen": c.last_seen,
                    "updated_at": now,
                }
                row = await s.get(ClusterRow, c.id)
                if row is None:
                    s.add(ClusterRow(id=c.id, created_at=c.created_at, **values))
                else:
                    for k, v in values.items():
                        setattr(row, k, v)
            if deleted:
                await s.execute(sa.delete(ClusterRow).where(ClusterRow.id.in_(list(deleted))))

    async def trending(self, since: datetime, limit: int) -> list[tuple[Cluster, int]]:
        """Clusters seen since `since` with how many members they gained since then."""
        async with self.sessions() as s:
            growth = (
                sa.select(MemberRow.cluster_id, sa.func.count().label("n"))
                .where(MemberRow.seen_at >= since)
                .group_by(MemberRow.cluster_id)
                .subquery()
            )
            rows = await s.execute(sa.select(ClusterRow, growth.c.n).join(growth, growth.c.cluster_id == ClusterRow.id))
            out = [(_cluster(r[0]), int(r[1])) for r in rows]
        out.sort(key=lambda cg: (-trend_score(cg[1], cg[0].show_count), -cg[0].size, str(cg[0].id)))
        return out[:limit]


def trend_score(growth: int, shows: int) -> float:
    """Growth weighted by show diversity: one show repeating itself trends less than five shows agreeing."""
    return float(growth) * (1.0 + math.log(max(shows, 1)))
