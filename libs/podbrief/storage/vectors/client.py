"""`VectorIndex` on a Qdrant server through qdrant-client (production: CLUSTERING_QDRANT__URL).

The server keeps the embedding model and dimension in the collection's metadata and builds its HNSW graph in
the background, so there is nothing to schedule here. The same class also drives qdrant-client's local mode
(a directory), which is how the conformance suite runs it without a server and how `podbrief vectors migrate`
reads a store written before Qdrant Edge became the embedded default."""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import httpx
import numpy as np
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from podbrief.errors import PermanentError, RetryableError
from podbrief.settings import QdrantSettings
from podbrief.storage.vectors.base import (
    CollectionSpec,
    Condition,
    Filter,
    Hit,
    IndexInfo,
    Match,
    Point,
    Range,
    Record,
    as_vector,
    model_mismatch,
)

log = logging.getLogger(__name__)

META_MODEL = "podbrief_embedding_model"
META_DIM = "podbrief_embedding_dim"
SCHEMA = {"keyword": models.PayloadSchemaType.KEYWORD, "float": models.PayloadSchemaType.FLOAT}


def make_client(settings: QdrantSettings) -> AsyncQdrantClient:
    """A client for the configured server URL."""
    if not settings.url:
        raise ValueError("a Qdrant server client needs QDRANT__URL")
    return AsyncQdrantClient(
        url=settings.url,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        timeout=int(settings.timeout_s),
    )


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


def _condition(c: Condition) -> models.Condition:
    if isinstance(c, Match):
        return models.FieldCondition(key=c.key, match=models.MatchValue(value=c.value))
    if isinstance(c, Range):
        return models.FieldCondition(key=c.key, range=models.Range(gte=c.gte, lt=c.lt))
    return models.HasIdCondition(has_id=[str(i) for i in c.ids])


def to_filter(flt: Filter | None, spec: CollectionSpec) -> models.Filter | None:
    parts = flt.for_store(spec) if flt else None
    if parts is None:
        return None
    must, must_not = ([_condition(c) for c in cs] or None for cs in parts)
    return models.Filter(must=must, must_not=must_not)


class QdrantClientIndex:
    """One cosine collection on a Qdrant server (or in qdrant-client's local mode)."""

    def __init__(self, client: AsyncQdrantClient, spec: CollectionSpec) -> None:
        self.client = client
        self._spec = spec

    @property
    def spec(self) -> CollectionSpec:
        return self._spec

    @property
    def collection(self) -> str:
        return self._spec.name

    async def open(self) -> None:
        """Create the collection if missing (a concurrent creator wins quietly), verify its model and dimension,
        and request the payload indexes it lacks."""
        p = self._spec
        async with _mapped("collection"):
            if not await self.client.collection_exists(p.name):
                quant = None
                if p.quantization == "int8":
                    quant = models.ScalarQuantization(
                        scalar=models.ScalarQuantizationConfig(
                            type=models.ScalarType.INT8, always_ram=p.quantization_always_ram
                        )
                    )
                try:
                    await self.client.create_collection(
                        p.name,
                        vectors_config=models.VectorParams(size=p.dim, distance=models.Distance.COSINE),
                        hnsw_config=models.HnswConfigDiff(m=p.hnsw_m, ef_construct=p.hnsw_ef_construct),
                        quantization_config=quant,
                        metadata={META_MODEL: p.model, META_DIM: p.dim},
                    )
                except (UnexpectedResponse, ValueError) as exc:
                    # Another replica created it between our check and our create: fine, verify below.
                    if not await self.client.collection_exists(p.name):
                        raise
                    log.info("collection created concurrently", extra={"collection": p.name, "error": str(exc)})
                else:
                    log.info("collection created", extra={"collection": p.name, "model": p.model, "dim": p.dim})
            await self._verify()
            with warnings.catch_warnings():
                # Local mode ignores payload indexes and warns so; a server uses them.
                warnings.simplefilter("ignore", UserWarning)
                info = await self.client.get_collection(p.name)
                for key, kind in p.payload_indexes.items():
                    if key not in (info.payload_schema or {}):
                        await self.client.create_payload_index(p.name, key, field_schema=SCHEMA[kind])

    async def _verify(self) -> None:
        p = self._spec
        info = await self.client.get_collection(p.name)
        vectors = info.config.params.vectors
        size = vectors.size if isinstance(vectors, models.VectorParams) else None
        meta = dict(info.config.metadata or {})
        model, dim = meta.get(META_MODEL), meta.get(META_DIM)
        if model is None and size == p.dim:
            # A collection made before the metadata existed (or by hand) with the right shape: claim it.
            log.warning("collection had no embedding metadata; recording it", extra={"collection": p.name})
            await self.client.update_collection(p.name, metadata={META_MODEL: p.model, META_DIM: p.dim})
            return
        if model != p.model or dim != p.dim or size != p.dim:
            raise model_mismatch(p, f"Qdrant collection {p.name!r}", model, size or dim)

    async def close(self) -> None:
        await self.client.close()

    async def upsert(self, points: Sequence[Point]) -> None:
        if not points:
            return
        structs = [
            models.PointStruct(id=str(p.id), vector=[float(x) for x in p.vector], payload=dict(p.payload))
            for p in points
        ]
        async with _mapped("upsert"):
            await self.client.upsert(self.collection, points=structs, wait=True)

    async def search(
        self,
        vector: np.ndarray,
        *,
        limit: int,
        filter: Filter | None = None,
        score_threshold: float | None = None,
        exact: bool = False,
    ) -> list[Hit]:
        async with _mapped("search"):
            with warnings.catch_warnings():
                # Local mode is always exact and says so when given search parameters; a server uses them.
                warnings.filterwarnings("ignore", "Local mode performs exact", UserWarning)
                res = await self.client.query_points(
                    self.collection,
                    query=[float(x) for x in vector],
                    query_filter=to_filter(filter, self._spec),
                    limit=limit,
                    with_payload=True,
                    score_threshold=score_threshold,
                    search_params=models.SearchParams(hnsw_ef=self._spec.search_ef, exact=exact),
                )
        return [Hit(uuid.UUID(str(p.id)), float(p.score), dict(p.payload or {})) for p in res.points]

    async def retrieve(self, ids: Sequence[uuid.UUID], *, with_vectors: bool = True) -> dict[uuid.UUID, Record]:
        out: dict[uuid.UUID, Record] = {}
        for start in range(0, len(ids), 512):
            chunk = [str(i) for i in ids[start : start + 512]]
            async with _mapped("retrieve"):
                recs = await self.client.retrieve(
                    self.collection, ids=chunk, with_vectors=with_vectors, with_payload=True
                )
            for r in recs:
                out[uuid.UUID(str(r.id))] = _record(r, with_vectors)
        return out

    async def set_payload(self, ids: Sequence[uuid.UUID], payload: Mapping[str, Any]) -> None:
        if not ids:
            return
        async with _mapped("set_payload"):
            await self.client.set_payload(
                self.collection, payload=dict(payload), points=[str(i) for i in ids], wait=True
            )

    async def count(self) -> int:
        async with _mapped("count"):
            return (await self.client.count(self.collection, exact=True)).count

    async def scan(self, batch: int = 512) -> AsyncIterator[list[Record]]:
        offset: Any = None
        while True:
            async with _mapped("scroll"):
                recs, offset = await self.client.scroll(
                    self.collection, limit=batch, offset=offset, with_payload=True, with_vectors=True
                )
            if recs:
                yield [_record(r, True) for r in recs]
            if offset is None:
                return

    async def info(self) -> IndexInfo:
        async with _mapped("info"):
            info = await self.client.get_collection(self.collection)
        points = info.points_count or 0
        return IndexInfo(points=points, indexed=info.indexed_vectors_count or 0, segments=info.segments_count or 0)

    async def healthy(self) -> bool:
        try:
            return bool(await self.client.collection_exists(self.collection))
        except Exception:
            return False


def _record(r: models.Record, with_vectors: bool) -> Record:
    vec = as_vector(r.vector) if with_vectors and isinstance(r.vector, list) else None
    return Record(uuid.UUID(str(r.id)), vec, dict(r.payload or {}))
