"""Composition root of the clustering service: builds the embedder, the vector index, the database and the
clusterer, and wires the InsightsExtracted subscription, the API and the re-clustering loop."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from podbrief.bus import Subscription, Transport
from podbrief.embeddings import TextEmbedder
from podbrief.errors import ConfigurationError
from podbrief.events import InsightsExtracted
from podbrief.events.topics import INSIGHTS_EXTRACTED
from podbrief.service import Loop, ServiceContext, ServiceSpec
from podbrief.service import create_app as _create_app
from podbrief.storage.vectors.base import CollectionSpec
from podbrief_clustering.api import router
from podbrief_clustering.clusterer import Clusterer
from podbrief_clustering.deps import Deps
from podbrief_clustering.handlers import on_insights_extracted
from podbrief_clustering.metrics import ClusteringMetrics
from podbrief_clustering.settings import ClusteringSettings
from podbrief_clustering.status import stage_status

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


@asynccontextmanager
async def open_clusterer(
    settings: ClusteringSettings,
    *,
    metrics: ClusteringMetrics | None = None,
    embedder: TextEmbedder | None = None,
) -> AsyncIterator[Clusterer]:
    """The clusterer and everything under it; shared by the service and `podbrief cluster`."""
    from podbrief.embeddings import Embedder
    from podbrief.storage import create_engine, migrate
    from podbrief.storage.vectors import make_vector_index
    from podbrief_clustering.adapters.index import InsightIndex
    from podbrief_clustering.adapters.repo import ClusterRepo

    if embedder is None:
        real: TextEmbedder = await asyncio.to_thread(Embedder, settings.embedding)
        embedder = real
    if embedder.dim != settings.embedding.dim:
        raise ConfigurationError(f"embedder {embedder.name} is {embedder.dim}-d, settings say {settings.embedding.dim}")
    engine = create_engine(settings.db)
    store = make_vector_index(settings.qdrant, collection_spec(settings, model=embedder.name, dim=embedder.dim))
    try:
        if settings.db.migrate_on_start:
            await migrate(engine, MIGRATIONS, "clustering")
        await store.open()
        index = InsightIndex(store, metrics)
        await index.observe(force=True)
        yield Clusterer(index=index, repo=ClusterRepo(engine), embedder=embedder, settings=settings, metrics=metrics)
    finally:
        await store.close()
        await engine.dispose()


def collection_spec(settings: ClusteringSettings, *, model: str, dim: int) -> CollectionSpec:
    """The insights collection as these settings describe it."""
    from podbrief_clustering.adapters.index import PAYLOAD_INDEXES

    return CollectionSpec(
        name=settings.qdrant.collection,
        model=model,
        dim=dim,
        payload_indexes=PAYLOAD_INDEXES,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        search_ef=settings.search_ef,
        quantization=settings.quantization,
        quantization_always_ram=settings.quantization_always_ram,
        build_index_min_points=settings.build_index_min_points,
    )


@asynccontextmanager
async def build_deps(ctx: ServiceContext[ClusteringSettings]) -> AsyncIterator[Deps]:
    metrics = ClusteringMetrics.create(ctx.registry)
    async with open_clusterer(ctx.settings, metrics=metrics) as clusterer:
        yield Deps(settings=ctx.settings, clusterer=clusterer, metrics=metrics, publish=ctx.bus.publish)


def _background(deps: Deps) -> list[Loop]:
    # A run that fails (the store briefly unreachable) is retried by the chassis; the next covers the same window.
    if deps.settings.recluster_interval_s <= 0:
        return []
    return [Loop("recluster", deps.clusterer.recluster, deps.settings.recluster_interval_s, delay_first=True)]


def _subscriptions(deps: Deps) -> list[Subscription[InsightsExtracted]]:
    return [
        Subscription(
            INSIGHTS_EXTRACTED,
            InsightsExtracted,
            functools.partial(on_insights_extracted, clusterer=deps.clusterer, publish=deps.publish),
        )
    ]


async def _ready(deps: Deps) -> bool:
    return bool(await deps.clusterer.index.healthy())


SPEC: ServiceSpec[ClusteringSettings, Deps] = ServiceSpec(
    name="clustering",
    settings_cls=ClusteringSettings,
    build_deps=build_deps,
    subscriptions=_subscriptions,
    background=_background,
    routers=[router],
    ready=_ready,
    status=lambda d: stage_status(d.clusterer.repo.engine),
    description="Insight vectors in Qdrant, near-duplicate merging, stable topic clusters, related insights.",
)


def create_app(
    settings: ClusteringSettings | None = None,
    *,
    transport: Transport | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    app: FastAPI = _create_app(SPEC, settings, transport=transport, on_fatal=on_fatal)
    return app
