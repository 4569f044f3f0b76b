"""Ingest composition root and service spec."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI
from podbrief.bus import Transport
from podbrief.netfetch import GuardedClient
from podbrief.service import Loop, ServiceContext, ServiceSpec
from podbrief.service import create_app as chassis_create_app
from podbrief.storage.db import create_engine, migrate
from podbrief_ingest.adapters.fetcher import Fetcher, HostLimiter
from podbrief_ingest.adapters.repo import IngestRepo
from podbrief_ingest.api import router
from podbrief_ingest.crawler import Crawler, PollReport
from podbrief_ingest.deps import Deps
from podbrief_ingest.metrics import IngestMetrics
from podbrief_ingest.outbox import Outbox
from podbrief_ingest.settings import IngestSettings
from podbrief_ingest.status import stage_status

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def instance_name() -> str:
    return f"{socket.gethostname()[:30]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def build_deps(ctx: ServiceContext[IngestSettings]) -> AsyncIterator[Deps]:
    settings = ctx.settings
    engine = create_engine(settings.db)
    client = GuardedClient(settings.net, per_host=settings.per_host_concurrency)
    try:
        if settings.db.migrate_on_start:
            await migrate(engine, MIGRATIONS, "ingest")
        repo = IngestRepo(engine)
        metrics = IngestMetrics.create(ctx.registry)
        fetcher = Fetcher(
            client,
            HostLimiter(settings.max_concurrent_polls, settings.per_host_concurrency),
            deadline_s=settings.fetch_deadline_s,
        )
        owner = instance_name()
        outbox = Outbox(repo=repo, publish=ctx.bus.publish, owner=owner, lease_s=settings.lease_s, metrics=metrics)
        crawler = Crawler(repo=repo, fetcher=fetcher, outbox=outbox, settings=settings, metrics=metrics, owner=owner)
        yield Deps(
            settings=settings, engine=engine, repo=repo, client=client, crawler=crawler, outbox=outbox, metrics=metrics
        )
    finally:
        await client.aclose()
        await engine.dispose()


async def poll_all_now(deps: Deps) -> PollReport:
    """Poll every registered feed once, whether due or not, publish what that found (and anything left in the
    outbox), and return when all of it is done. The embedded runner calls this instead of waiting for the
    schedule."""
    return await deps.crawler.poll_all()


def _background(deps: Deps) -> list[Loop]:
    # A step that fails is the database being unreachable (a feed's own failures are recorded on the feed): the
    # chassis retries it with backoff. Cancelling a poll mid-way at shutdown is safe: its transaction rolls back,
    # its lease expires, the outbox keeps anything committed.
    loops = [Loop("outbox", deps.outbox.dispatch, deps.settings.outbox_sweep_s)]
    if deps.settings.poll_enabled:
        loops.append(Loop("poll", deps.crawler.poll_due, deps.settings.poll_tick_s))
    return loops


async def _ready(deps: Deps) -> bool:
    ok: bool = await deps.repo.ping()
    return ok


SPEC: ServiceSpec[IngestSettings, Deps] = ServiceSpec(
    name="ingest",
    settings_cls=IngestSettings,
    build_deps=build_deps,
    routers=[router],
    background=_background,
    ready=_ready,
    status=lambda d: stage_status(d.repo.engine),
    description="Feed registry and crawler: emits podbrief.episode.discovered.v1",
)


def create_app(
    settings: IngestSettings | None = None,
    *,
    transport: Transport | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    return chassis_create_app(SPEC, settings, transport=transport, on_fatal=on_fatal)
