"""Delivery's composition root and app: subscribers, ranking, the daily brief by email, web and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import podbrief.service
from fastapi import FastAPI
from podbrief.bus import Subscription, Transport
from podbrief.embeddings import Embedder
from podbrief.events import InsightClustered
from podbrief.events.topics import INSIGHT_CLUSTERED
from podbrief.metrics import new_registry
from podbrief.service import ServiceContext, ServiceSpec
from podbrief.storage.db import create_engine, migrate, session_factory
from podbrief_delivery.adapters import Mailer, Repo, SmtpMailer
from podbrief_delivery.api import router as api_router
from podbrief_delivery.core import DeliveryReport, deliver_due, scheduler_loop
from podbrief_delivery.deps import DeliveryMetrics, Deps, Publish, TextEmbedder
from podbrief_delivery.handlers import on_insight_clustered
from podbrief_delivery.ratelimit import SignupLimits
from podbrief_delivery.render import Links, Renderer
from podbrief_delivery.settings import DeliverySettings
from podbrief_delivery.status import stage_status
from podbrief_delivery.tokens import Signer
from podbrief_delivery.web import router as web_router
from prometheus_client import CollectorRegistry

MIGRATIONS = Path(__file__).parent / "migrations"

__all__ = ["SPEC", "DeliveryReport", "Deps", "build_deps", "create_app", "deliver_due", "make_deps"]


async def _no_publish(_event: object) -> None:
    return None


@contextlib.asynccontextmanager
async def make_deps(
    settings: DeliverySettings,
    *,
    publish: Publish | None = None,
    registry: CollectorRegistry | None = None,
    embedder: TextEmbedder | None = None,
    mailer: Mailer | None = None,
) -> AsyncIterator[Deps]:
    """Build every dependency (app, CLI and tests share this); fakes may replace embedder/mailer."""
    engine = create_engine(settings.db)
    try:
        if settings.db.migrate_on_start:
            await migrate(engine, MIGRATIONS, "delivery")
        if embedder is None:
            embedder = await asyncio.to_thread(Embedder, settings.embedding)
        signer = Signer(settings.signing_secret.get_secret_value())
        yield Deps(
            settings=settings,
            repo=Repo(engine, session_factory(engine)),
            embedder=embedder,
            mailer=mailer or SmtpMailer(settings.smtp),
            publish=publish or _no_publish,
            signer=signer,
            links=Links(settings.public_base_url, signer, settings.link_ttl_s, tracking=settings.tracking),
            renderer=Renderer(),
            metrics=DeliveryMetrics.create(registry or new_registry()),
            limits=SignupLimits(settings.rate_limits),
        )
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def build_deps(ctx: ServiceContext[DeliverySettings]) -> AsyncIterator[Deps]:
    async with make_deps(ctx.settings, publish=ctx.bus.publish, registry=ctx.registry) as deps:
        yield deps


def _subscriptions(d: Deps) -> list[Subscription[InsightClustered]]:
    return [
        Subscription(
            INSIGHT_CLUSTERED,
            InsightClustered,
            functools.partial(on_insight_clustered, repo=d.repo, embedder=d.embedder, metrics=d.metrics),
        )
    ]


def _background(d: Deps) -> list[Callable[[], Coroutine[Any, Any, None]]]:
    if not d.settings.scheduler_enabled:
        return []
    return [functools.partial(scheduler_loop, d)]


async def _ready(d: Deps) -> bool:
    await d.repo.counts_by_status()
    return True


SPEC: ServiceSpec[DeliverySettings, Deps] = ServiceSpec(
    name="delivery",
    settings_cls=DeliverySettings,
    build_deps=build_deps,
    subscriptions=_subscriptions,
    background=_background,
    routers=[api_router, web_router],
    ready=_ready,
    status=lambda d: stage_status(d.repo.engine),
    description="Subscribers, personalised ranking, and the daily brief by email, web page and JSON.",
)


def create_app(
    settings: DeliverySettings | None = None,
    *,
    transport: Transport | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    return podbrief.service.create_app(SPEC, settings, transport=transport, on_fatal=on_fatal)
