"""The service chassis: one FastAPI app per service whose lifespan builds settings, clients and the consumer,
runs the background loops under one failure policy, and tears them down in order. Liveness, readiness and
metrics come with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, make_asgi_app

from podbrief import __version__
from podbrief.bus import Bus, Consumer, Subscription, Transport, make_transport
from podbrief.errors import reason_of
from podbrief.http import (
    BodySizeLimit,
    deps_of,
    install_problem_handlers,
    install_problem_openapi,
    problems,
    require_admin,
)
from podbrief.metrics import BusMetrics, new_registry
from podbrief.settings import HttpSettings, LoopSettings, ServiceSettings
from podbrief.status import ConsumerStatus, ServiceStatus, StageStatus, bus_status

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


@dataclass(frozen=True)
class Loop:
    """A long-running job beside the consumer (feed polling, the outbox sweep, the delivery scheduler,
    re-clustering): the chassis runs `step` every `interval_s` seconds, and applies the one failure policy
    (`LoopSettings`) to it. Each step must be safe to cancel at shutdown and to run again."""

    name: str
    step: Callable[[], Awaitable[object]]
    interval_s: float
    # Wait one interval before the first step (re-clustering has nothing to do at start-up).
    delay_first: bool = False


@dataclass
class LoopHealth:
    consecutive_failures: int = 0
    last_error: str | None = None


@dataclass
class ServiceSpec(Generic[S, D]):
    name: str
    settings_cls: type[S]
    # The composition root: builds every dependency of the handlers and routes, closes them on exit.
    build_deps: Callable[[ServiceContext[S]], AbstractAsyncContextManager[D]]
    # The consumer (its group is the service's name) handles these.
    subscriptions: Callable[[D], Sequence[Subscription[Any]]] = lambda _d: ()
    background: Callable[[D], Sequence[Loop]] = lambda _d: ()
    routers: Sequence[APIRouter] = ()
    ready: Callable[[D], Awaitable[bool]] | None = None
    # Episodes per state and failures by reason from the service's store, for `GET /v1/status`.
    status: Callable[[D], Awaitable[StageStatus]] | None = None
    description: str = ""


class ServiceState:
    def __init__(self) -> None:
        self.deps: Any = None
        self.bus: Bus | None = None
        self.consumer: Consumer | None = None
        self.consumer_task: asyncio.Task[None] | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.loops: dict[str, LoopHealth] = {}
        self.fatal: BaseException | None = None
        self.started = False

    def failing_loops(self, policy: LoopSettings) -> dict[str, LoopHealth]:
        return {n: h for n, h in self.loops.items() if h.consecutive_failures >= policy.unhealthy_after}


async def run_loop(loop: Loop, health: LoopHealth, policy: LoopSettings) -> None:
    """Run `loop` until cancelled. A failed step is logged, counted and tried again after a backoff that doubles
    from `policy.backoff_base_s` (capped by `policy.backoff_max_s` and the loop's interval); a step that succeeds
    clears the count."""
    if loop.delay_first:
        await asyncio.sleep(loop.interval_s)
    while True:
        try:
            await loop.step()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            health.consecutive_failures += 1
            # What /healthz shows (it answers anyone): the kind of failure, never its message; the log has that.
            health.last_error = f"{type(exc).__name__} ({reason_of(exc)})"
            failures = health.consecutive_failures
            delay = min(loop.interval_s, policy.backoff_max_s, policy.backoff_base_s * 2 ** min(failures - 1, 30))
            extra = {"loop": loop.name, "consecutive_failures": failures, "retry_in_s": round(delay, 3)}
            if failures == policy.unhealthy_after:
                log.error("background loop keeps failing; /healthz fails until it succeeds", exc_info=exc, extra=extra)
            else:
                log.warning("background loop step failed; retrying", exc_info=exc, extra=extra)
        else:
            if health.consecutive_failures:
                log.info("background loop recovered", extra={"loop": loop.name, "after": health.consecutive_failures})
            health.consecutive_failures, health.last_error = 0, None
            delay = loop.interval_s
        await asyncio.sleep(delay)


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
                    state.consumer = bus.consumer(subs, group=spec.name)
                    state.consumer_task = _watch(
                        asyncio.create_task(state.consumer.run(), name=f"{spec.name}-consumer"), state, on_fatal
                    )
                    state.tasks.append(state.consumer_task)
                for loop in spec.background(deps):
                    health = state.loops[loop.name] = LoopHealth()
                    task = asyncio.create_task(run_loop(loop, health, cfg.loops), name=f"{spec.name}-{loop.name}")
                    state.tasks.append(_watch(task, state, on_fatal))
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
                        drain_s = cfg.shutdown_timeout_s
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
        title=f"podbrief {spec.name}",
        version=__version__,
        description=spec.description,
        lifespan=lifespan,
    )
    app.state.service = state
    app.state.registry = registry
    install_problem_handlers(app)
    install_problem_openapi(app)

    status_body = {"application/json": {"schema": {"type": "object"}}}

    def policy() -> LoopSettings:
        cfg = getattr(app.state, "settings", None)
        return cfg.loops if cfg is not None else LoopSettings()

    @app.get(
        "/healthz",
        tags=["ops"],
        summary="Liveness: fails when a core task has died or a background loop keeps failing",
        responses={
            503: {"description": "a core task has died, or a loop failed too often in a row", "content": status_body}
        },
    )
    async def healthz() -> JSONResponse:
        if state.fatal is not None:
            return JSONResponse({"status": "dead", "error": repr(state.fatal)}, status_code=503)
        failing = state.failing_loops(policy())
        if failing:
            loops = {
                n: {"consecutive_failures": h.consecutive_failures, "error": h.last_error} for n, h in failing.items()
            }
            return JSONResponse({"status": "failing", "service": spec.name, "loops": loops}, status_code=503)
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
            "loops": not state.failing_loops(policy()),
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

    @app.get(
        "/v1/status",
        tags=["ops"],
        summary="Episodes per state, failures by reason, consumer lag and dead letters (admin)",
        dependencies=[Depends(require_admin)],
        responses=problems(401, 403, 503),
    )
    async def service_status(request: Request) -> ServiceStatus:
        deps = deps_of(request)
        stage = await spec.status(deps) if spec.status is not None else StageStatus()
        consumer: ConsumerStatus | None = None
        dead: dict[str, dict[str, int]] = {}
        if state.consumer is not None and state.bus is not None:
            consumer, dead = await bus_status(state.bus.transport, state.consumer.group, state.consumer.topics)
        return ServiceStatus(service=spec.name, stage=stage, consumer=consumer, dead_letters=dead)

    for router in spec.routers:
        app.include_router(router)
    app.mount("/metrics", make_asgi_app(registry))

    def max_body_bytes() -> int:
        # The settings the lifespan built (from the environment, when none were given); the default before that.
        cfg = getattr(app.state, "settings", None) or settings
        return cfg.http.max_body_bytes if cfg is not None else HttpSettings().max_body_bytes

    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
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
