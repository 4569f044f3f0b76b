"""The service chassis: one FastAPI app per service whose lifespan builds settings, clients and the consumer,
and tears them down in order. Liveness, readiness and metrics come with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, make_asgi_app

from podbrief import __version__
from podbrief.bus import Bus, Consumer, Subscription, Transport, make_transport
from podbrief.http import BodySizeLimit, install_problem_handlers, install_problem_openapi
from podbrief.metrics import BusMetrics, new_registry
from podbrief.settings import ServiceSettings

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
D = TypeVar("D")


@dataclass
class ServiceContext(Generic[S]):
    """What `build_deps` gets: settings, the bus to publish on, and the app's metrics registry."""

    name: str
    settings: S
    bus: Bus
    registry: CollectorRegistry


@dataclass
class ServiceSpec(Generic[S, D]):
    name: str
    settings_cls: type[S]
    # The composition root: builds every dependency of the handlers and routes, closes them on exit.
    build_deps: Callable[[ServiceContext[S]], AbstractAsyncContextManager[D]]
    subscriptions: Callable[[D], Sequence[Subscription[Any]]] = lambda _d: ()
    # Long-running loops besides the consumer (feed polling, the delivery scheduler).
    background: Callable[[D], Sequence[Callable[[], Coroutine[Any, Any, None]]]] = lambda _d: ()
    routers: Sequence[APIRouter] = ()
    ready: Callable[[D], Awaitable[bool]] | None = None
    consumer_group: str | None = None
    # None: the service's `shutdown_timeout_s` setting.
    drain_timeout_s: float | None = None
    extra_setup: Callable[[FastAPI], None] | None = None
    title: str | None = None
    description: str = ""
    static: dict[str, Any] = field(default_factory=dict)


class ServiceState:
    def __init__(self) -> None:
        self.deps: Any = None
        self.bus: Bus | None = None
        self.consumer: Consumer | None = None
        self.consumer_task: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.fatal: BaseException | None = None
        self.started = False


def create_app(
    spec: ServiceSpec[S, D],
    settings: S | None = None,
    *,
    transport: Transport | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the app. Nothing is constructed until the lifespan runs.

    `transport`, when given, is shared and owned by the caller (the embedded `podbrief run` passes one
    in-memory bus to all five services)."""
    state = ServiceState()
    registry = new_registry()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings if settings is not None else spec.settings_cls()
        app.state.settings = cfg
        metrics = BusMetrics.create(spec.name, registry)
        own_transport = transport is None
        bus = Bus(transport or make_transport(cfg.bus), cfg.bus, metrics)
        state.bus = bus
        if own_transport:
            await bus.start()
        ctx = ServiceContext(spec.name, cfg, bus, registry)
        try:
            async with spec.build_deps(ctx) as deps:
                state.deps = deps
                app.state.deps = deps
                subs = list(spec.subscriptions(deps))
                if subs:
                    state.consumer = bus.consumer(subs, group=spec.consumer_group or spec.name)
                    state.consumer_task = _watch(
                        asyncio.create_task(state.consumer.run(), name=f"{spec.name}-consumer"), state, on_fatal
                    )
                    state.tasks.append(state.consumer_task)
                for loop in spec.background(deps):
                    state.tasks.append(_watch(asyncio.create_task(loop(), name=f"{spec.name}-loop"), state, on_fatal))
                state.started = True
                log.info("service started", extra={"service": spec.name, "version": __version__})
                try:
                    yield
                finally:
                    state.started = False
                    # Background loops (polling, scheduling) are cancelled at once: each step of theirs is
                    # idempotent. The consumer gets time to finish its in-flight handlers; what does not finish
                    # stays uncommitted and is redelivered.
                    if state.consumer:
                        state.consumer.stop()
                    consumer_task = state.consumer_task
                    for t in state.tasks:
                        if t is not consumer_task:
                            t.cancel()
                    if consumer_task is not None and not consumer_task.done():
                        drain_s = spec.drain_timeout_s if spec.drain_timeout_s is not None else cfg.shutdown_timeout_s
                        done, _ = await asyncio.wait([consumer_task], timeout=drain_s)
                        if not done:
                            log.warning(
                                "in-flight messages did not finish in time; leaving them uncommitted",
                                extra={"service": spec.name, "drain_timeout_s": drain_s},
                            )
                        consumer_task.cancel()
                    await asyncio.gather(*state.tasks, return_exceptions=True)
        finally:
            if own_transport:
                await bus.stop()  # flushes the producer
            log.info("service stopped", extra={"service": spec.name})

    app = FastAPI(
        title=spec.title or f"podbrief {spec.name}",
        version=__version__,
        description=spec.description,
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.registry = registry
    install_problem_handlers(app)
    install_problem_openapi(app)

    status_body = {"application/json": {"schema": {"type": "object"}}}

    @app.get(
        "/healthz",
        tags=["ops"],
        summary="Liveness: fails when a core task has died",
        responses={503: {"description": "a core task has died", "content": status_body}},
    )
    async def healthz() -> JSONResponse:
        if state.fatal is not None:
            return JSONResponse({"status": "dead", "error": repr(state.fatal)}, status_code=503)
        return JSONResponse({"status": "ok", "service": spec.name})

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: the consumer runs, the bus answers, models are warm",
        responses={503: {"description": "not ready (the body says which check failed)", "content": status_body}},
    )
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, bool] = {
            "started": state.started,
            "tasks": state.fatal is None and all(not t.done() for t in state.tasks),
        }
        checks["bus"] = bool(state.bus and await state.bus.healthy())
        if spec.ready is not None and state.deps is not None:
            try:
                checks["dependencies"] = await spec.ready(state.deps)
            except Exception:
                checks["dependencies"] = False
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )

    for router in spec.routers:
        app.include_router(router)
    app.mount("/metrics", make_asgi_app(registry))
    if spec.extra_setup:
        spec.extra_setup(app)
    max_body = settings.http.max_body_bytes if settings is not None else 1_000_000
    app.add_middleware(BodySizeLimit, max_bytes=max_body)
    return app


def _watch(
    task: asyncio.Task[None], state: ServiceState, on_fatal: Callable[[BaseException], None] | None
) -> asyncio.Task[None]:
    def done(t: asyncio.Task[None]) -> None:
        if t.cancelled() or not state.started:
            return
        exc = t.exception() or RuntimeError(f"task {t.get_name()} ended unexpectedly")
        state.fatal = exc
        log.error("core task died; the service is no longer ready", exc_info=exc, extra={"task": t.get_name()})
        if on_fatal is not None:
            on_fatal(exc)

    task.add_done_callback(done)
    return task
