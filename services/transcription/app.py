"""The transcription service: composition root and service spec."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from podbrief import service
from podbrief.bus import Subscription, Transport
from podbrief.events.models import EpisodeDiscovered
from podbrief.events.topics import EPISODE_DISCOVERED
from podbrief.netguard import make_http_client
from podbrief.service import ServiceContext, ServiceSpec
from podbrief.storage.db import create_engine, migrate
from podbrief_transcription.adapters.download import EnclosureFetcher
from podbrief_transcription.adapters.engine import Transcriber, cuda_devices
from podbrief_transcription.adapters.repo import TranscriptRepo
from podbrief_transcription.api import router
from podbrief_transcription.deps import Deps
from podbrief_transcription.handlers import on_episode_discovered
from podbrief_transcription.metrics import TranscriptionMetrics, register_gpu_memory
from podbrief_transcription.settings import TranscriptionSettings
from podbrief_transcription.status import stage_status


@contextlib.asynccontextmanager
async def build_deps(ctx: ServiceContext[TranscriptionSettings]) -> AsyncIterator[Deps]:
    settings = ctx.settings
    metrics = TranscriptionMetrics.create(ctx.registry)
    db = create_engine(settings.db)
    http = make_http_client(settings.net)
    try:
        if settings.db.migrate_on_start:
            await migrate(db, Path(__file__).parent / "migrations", "transcription")
        engine = Transcriber(settings, metrics)
        if engine.config.device == "cuda":
            register_gpu_memory(ctx.registry, cuda_devices())
        # Loaded (and warmed) before the consumer starts, in a worker thread: the process answers nothing
        # until the model is usable, and a model that cannot load stops the deploy instead of dead-lettering
        # every episode.
        await engine.start()
        fetcher = EnclosureFetcher(
            http,
            max_bytes=settings.max_audio_bytes,
            timeout_s=settings.download_timeout_s,
            allowed_content_types=settings.allowed_content_types,
            tmp_dir=settings.tmp_dir,
            on_bytes=metrics.download_bytes.inc,
        )
        yield Deps(
            settings=settings,
            repo=TranscriptRepo(db),
            engine=engine,
            fetcher=fetcher,
            publish=ctx.bus.publish,
            metrics=metrics,
            http=http,
        )
    finally:
        await http.aclose()
        await db.dispose()


def subscriptions(deps: Deps) -> list[Subscription[Any]]:
    handler = functools.partial(
        on_episode_discovered,
        repo=deps.repo,
        engine=deps.engine,
        fetcher=deps.fetcher,
        publish=deps.publish,
        metrics=deps.metrics,
    )
    return [Subscription(EPISODE_DISCOVERED, EpisodeDiscovered, handler)]


async def ready(deps: Deps) -> bool:
    return deps.engine.ready


SPEC: ServiceSpec[TranscriptionSettings, Deps] = ServiceSpec(
    name="transcription",
    settings_cls=TranscriptionSettings,
    build_deps=build_deps,
    subscriptions=subscriptions,
    routers=[router],
    ready=ready,
    status=lambda d: stage_status(d.repo.engine),
    description="Episodes in, timestamped transcripts out (faster-whisper).",
)


def create_app(
    settings: TranscriptionSettings | None = None,
    *,
    transport: Transport | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    return service.create_app(SPEC, settings, transport=transport, on_fatal=on_fatal)
