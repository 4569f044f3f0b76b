"""Delivery's composition root and app: subscribers, ranking, the daily brief by email, web and JSON."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import podbrief.service
from fastapi import FastAPI
from podbrief.bus import Publish, Subscription, Transport
from podbrief.embeddings import Embedder, TextEmbedder
from podbrief.events import FeedWithdrawn, InsightClustered
from podbrief.events.topics import FEED_WITHDRAWN, INSIGHT_CLUSTERED
from podbrief.metrics import new_registry
from podbrief.service import Loop, ServiceContext, ServiceSpec
from podbrief.storage.db import create_engine, migrate, session_factory
from podbrief_delivery.adapters.clustering import ClusteringClient, Search
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.adapters.smtp import Mailer, SmtpMailer
from podbrief_delivery.api import router as api_router
from podbrief_delivery.deps import Deps
from podbrief_delivery.handlers import on_feed_withdrawn, on_insight_clustered
from podbrief_delivery.metrics import DeliveryMetrics
from podbrief_delivery.models import Subscriber
from podbrief_delivery.ratelimit import SignupLimits
from podbrief_delivery.render import Links, Renderer
from podbrief_delivery.sending import DeliveryReport, deliver_due
from podbrief_delivery.settings import DeliverySettings
from podbrief_delivery.status import stage_status
from podbrief_delivery.subscribers import SignupProfile, refresh_gauge, sign_up
from podbrief_delivery.tokens import Signer
from podbrief_delivery.web import router as web_router
from podbrief_delivery.web_insights import router as insights_router
from prometheus_client import CollectorRegistry

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


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
    search: Search | None = None,
) -> AsyncIterator[Deps]:
    """Build every dependency (app, CLI and tests share this); fakes may replace embedder/mailer/search."""
    engine = create_engine(settings.db)
    clustering = ClusteringClient(settings.clustering_url, timeout_s=settings.clustering_timeout_s)
    try:
        if settings.db.migrate_on_start:
            await migrate(engine, MIGRATIONS, "delivery")
        if embedder is None:
            embedder = await asyncio.to_thread(Embedder, settings.embedding)
        signer = Signer(settings.signing_secret.get_secret_value())
        repo = Repo(engine, session_factory(engine))
        smtp = mailer or SmtpMailer(settings.smtp)
        send_events = publish or _no_publish
        links = Links(settings.public_base_url, signer, settings.link_ttl_s, tracking=settings.tracking)
        renderer = Renderer()
        metrics = DeliveryMetrics.create(registry or new_registry())

        async def deliver(
            *,
            now: datetime | None = None,
            force: bool = False,
            day: date | None = None,
            only: Sequence[uuid.UUID] | None = None,
        ) -> DeliveryReport:
            return await deliver_due(
                repo=repo,
                embedder=embedder,
                mailer=smtp,
                renderer=renderer,
                links=links,
                publish=send_events,
                settings=settings,
                metrics=metrics,
                now=now,
                force=force,
                day=day,
                only=only,
            )

        async def signup(email: str, profile: SignupProfile) -> Subscriber:
            return await sign_up(
                email,
                profile,
                repo=repo,
                embedder=embedder,
                mailer=smtp,
                renderer=renderer,
                links=links,
                settings=settings,
                metrics=metrics,
            )

        yield Deps(
            settings=settings,
            repo=repo,
            embedder=embedder,
            mailer=smtp,
            publish=send_events,
            signer=signer,
            links=links,
            renderer=renderer,
            metrics=metrics,
            limits=SignupLimits(settings.rate_limits),
            search=search or clustering.search,
            deliver=deliver,
            sign_up=signup,
        )
    finally:
        await clustering.aclose()
        await engine.dispose()


@contextlib.asynccontextmanager
async def build_deps(ctx: ServiceContext[DeliverySettings]) -> AsyncIterator[Deps]:
    async with make_deps(ctx.settings, publish=ctx.bus.publish, registry=ctx.registry) as deps:
        yield deps


def _subscriptions(d: Deps) -> list[Subscription[Any]]:
    return [
        Subscription(
            INSIGHT_CLUSTERED,
            InsightClustered,
            functools.partial(on_insight_clustered, repo=d.repo, embedder=d.embedder, metrics=d.metrics),
        ),
        Subscription(FEED_WITHDRAWN, FeedWithdrawn, functools.partial(on_feed_withdrawn, repo=d.repo)),
    ]


async def deliver_and_count(deps: Deps) -> None:
    """One tick of the scheduler: send what is due, then refresh the subscribers gauge."""
    await refresh_gauge(repo=deps.repo, metrics=deps.metrics)
    await deps.deliver()
    await refresh_gauge(repo=deps.repo, metrics=deps.metrics)


def _background(d: Deps) -> list[Loop]:
    # A run that fails is retried by the chassis; a brief is claimed in the ledger before it is sent, so a
    # retried run never sends one twice.
    if not d.settings.scheduler_enabled:
        return []
    return [Loop("scheduler", functools.partial(deliver_and_count, d), d.settings.scheduler_interval_s)]


async def _ready(d: Deps) -> bool:
    await d.repo.counts_by_status()
    return True


SPEC: ServiceSpec[DeliverySettings, Deps] = ServiceSpec(
    name="delivery",
    settings_cls=DeliverySettings,
    build_deps=build_deps,
    subscriptions=_subscriptions,
    background=_background,
    routers=[api_router, web_router, insights_router],
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
