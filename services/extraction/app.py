"""The extraction service: the composition root and the app."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
from fastapi import FastAPI
from podbrief.bus import Subscription, Transport
from podbrief.events import EpisodeTranscribed
from podbrief.events.topics import EPISODE_TRANSCRIBED
from podbrief.service import ServiceContext, ServiceSpec
from podbrief.service import create_app as create_service_app
from podbrief.storage.db import create_engine, migrate
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.adapters.repo import ExtractionRepo
from podbrief_extraction.api import router
from podbrief_extraction.deps import Deps
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.handlers import on_episode_transcribed
from podbrief_extraction.llama_server import EmbeddedLlamaServer
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_extraction.settings import ExtractionSettings
from podbrief_extraction.status import stage_status

log = logging.getLogger(__name__)


def make_build_deps(
    llm_transport: httpx.AsyncBaseTransport | None = None,
) -> Callable[[ServiceContext[ExtractionSettings]], contextlib.AbstractAsyncContextManager[Deps]]:
    """`llm_transport` lets tests put a fake OpenAI server (httpx.MockTransport) behind the real client."""

    @contextlib.asynccontextmanager
    async def build_deps(ctx: ServiceContext[ExtractionSettings]) -> AsyncIterator[Deps]:
        settings = ctx.settings
        metrics = ExtractionMetrics.create(ctx.registry)
        engine = create_engine(settings.db)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(engine.dispose)
            if settings.db.migrate_on_start:
                await migrate(engine, Path(__file__).parent / "migrations", "extraction")
            llama: EmbeddedLlamaServer | None = None
            base_url = settings.llm.base_url
            if base_url is None and llm_transport is None:
                llama = EmbeddedLlamaServer(settings.llama)
                await llama.start()
                stack.push_async_callback(llama.aclose)
                base_url = llama.base_url
            llm = LLMClient(
                settings.llm,
                base_url=base_url or "http://llm.invalid/v1",
                metrics=metrics,
                transport=llm_transport,
                pin_prefix=llama is not None,
            )
            stack.push_async_callback(llm.aclose)
            extractor = Extractor(llm, settings, metrics)
            # Warm, as Whisper is before transcription says it is ready: the embedded server reads the system
            # prompts now, not during the first episode (a minute of a CPU model's time).
            await llm.pin(extractor.system_prompts())
            yield Deps(
                settings=settings,
                repo=ExtractionRepo(engine),
                llm=llm,
                extractor=extractor,
                metrics=metrics,
                publish=ctx.bus.publish,
                llama=llama,
            )

    return build_deps


build_deps = make_build_deps()


def subscriptions(deps: Deps) -> list[Subscription[EpisodeTranscribed]]:
    handler = functools.partial(
        on_episode_transcribed,
        repo=deps.repo,
        extractor=deps.extractor,
        publish=deps.publish,
        metrics=deps.metrics,
    )
    return [Subscription(EPISODE_TRANSCRIBED, EpisodeTranscribed, handler)]


async def ready(deps: Deps) -> bool:
    if deps.llama is not None and not deps.llama.running:
        return False
    return await deps.llm.healthy() and await deps.repo.ping()


def make_spec(llm_transport: httpx.AsyncBaseTransport | None = None) -> ServiceSpec[ExtractionSettings, Deps]:
    return ServiceSpec(
        name="extraction",
        settings_cls=ExtractionSettings,
        build_deps=make_build_deps(llm_transport),
        subscriptions=subscriptions,
        routers=[router],
        ready=ready,
        status=lambda d: stage_status(d.repo.engine),
        description="Turns transcripts into grounded insights through an OpenAI-compatible LLM endpoint.",
    )


SPEC = make_spec()


def create_app(
    settings: ExtractionSettings | None = None,
    *,
    transport: Transport | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
    llm_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    spec = SPEC if llm_transport is None else make_spec(llm_transport)
    return create_service_app(spec, settings, transport=transport, on_fatal=on_fatal)
