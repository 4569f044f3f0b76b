"""The service chassis on a minimal service: the one background-loop policy (retry with backoff, /healthz and
/readyz fail after N consecutive failures and recover), and the body limit read from the settings the lifespan
built."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient
from podbrief.service import Loop, LoopHealth, ServiceContext, ServiceSpec, create_app, run_loop
from podbrief.settings import BusSettings, HttpSettings, LoopSettings, ServiceSettings
from pydantic_settings import SettingsConfigDict

pytestmark = pytest.mark.unit


class ToySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="TOY_", env_nested_delimiter="__", frozen=True, extra="ignore")

    bus: BusSettings = BusSettings(kind="memory")


@dataclass
class Flaky:
    """A loop step that fails while `failing` is set, counting calls and when they happened."""

    failing: bool = True
    calls: list[float] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    async def step(self) -> None:
        self.calls.append(time.monotonic())
        self.called.set()
        if self.failing:
            raise ConnectionError("database unreachable")

    async def wait_calls(self, n: int) -> None:
        while len(self.calls) < n:
            self.called.clear()
            await asyncio.wait_for(self.called.wait(), 10)


router = APIRouter()


@router.post("/echo")
async def echo(request: Request) -> dict[str, int]:
    return {"bytes": len(await request.body())}


def toy_app(step: Flaky, settings: ToySettings | None = None, interval_s: float = 0.05) -> Any:
    @contextlib.asynccontextmanager
    async def build_deps(_ctx: ServiceContext[ToySettings]) -> AsyncIterator[Flaky]:
        yield step

    spec: ServiceSpec[ToySettings, Flaky] = ServiceSpec(
        name="toy",
        settings_cls=ToySettings,
        build_deps=build_deps,
        background=lambda d: [Loop("flaky", d.step, interval_s)],
        routers=[router],
    )
    return create_app(spec, settings)


def wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.fixture
def policy() -> LoopSettings:
    return LoopSettings(backoff_base_s=0.01, backoff_max_s=0.05, unhealthy_after=3)


@pytest.fixture
def client(policy: LoopSettings) -> Iterator[tuple[TestClient, Flaky]]:
    step = Flaky()
    with TestClient(toy_app(step, ToySettings(loops=policy))) as c:
        yield c, step


def test_a_failing_loop_fails_liveness_after_n_in_a_row_and_recovers(client: tuple[TestClient, Flaky]) -> None:
    c, step = client
    wait_for(lambda: len(step.calls) >= 3)
    health = c.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "failing" and body["loops"]["flaky"]["consecutive_failures"] >= 3
    # The kind of failure, not its message (the endpoint answers anyone; the log has the message).
    assert body["loops"]["flaky"]["error"] == "ConnectionError (unavailable)"
    assert "database unreachable" not in health.text
    ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["loops"] is False
    # The loop kept trying, and one success clears it.
    step.failing = False
    wait_for(lambda: c.get("/healthz").status_code == 200)
    assert c.get("/readyz").json()["checks"]["loops"] is True


def test_fewer_failures_than_the_threshold_keep_the_service_alive(policy: LoopSettings) -> None:
    step = Flaky()
    lenient = ToySettings(loops=policy.model_copy(update={"unhealthy_after": 1000}))
    with TestClient(toy_app(step, lenient)) as c:
        wait_for(lambda: len(step.calls) >= 5)
        assert c.get("/healthz").status_code == 200


async def test_failed_steps_are_retried_with_a_doubling_backoff_capped_by_the_interval() -> None:
    step = Flaky()
    policy = LoopSettings(backoff_base_s=0.02, backoff_max_s=10.0, unhealthy_after=100)
    health = LoopHealth()
    task = asyncio.create_task(run_loop(Loop("flaky", step.step, interval_s=0.15), health, policy))
    await step.wait_calls(6)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    gaps = [b - a for a, b in zip(step.calls, step.calls[1:], strict=False)]
    # 0.02, 0.04, 0.08, then the interval (0.15) caps it; sleeps are never shorter than asked.
    for gap, floor in zip(gaps, (0.02, 0.04, 0.08, 0.15, 0.15), strict=False):
        assert gap >= floor * 0.95, gaps
    assert max(gaps) < 1.0, gaps
    assert health.consecutive_failures == len(step.calls)


async def test_a_loop_that_waits_first_does_nothing_until_its_interval_passed() -> None:
    step = Flaky(failing=False)
    task = asyncio.create_task(run_loop(Loop("later", step.step, 0.2, delay_first=True), LoopHealth(), LoopSettings()))
    await asyncio.sleep(0.1)
    assert step.calls == []
    await step.wait_calls(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_the_body_limit_comes_from_the_settings_the_lifespan_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings given: the lifespan reads the environment, and the limit follows what it read."""
    monkeypatch.setenv("TOY_HTTP__MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("TOY_BUS__KIND", "memory")
    with TestClient(toy_app(Flaky(failing=False))) as c:
        assert c.post("/echo", content=b"x" * 2000).json() == {"bytes": 2000}
        over = c.post("/echo", content=b"x" * 3000)
        assert over.status_code == 413 and "2048" in over.json()["detail"]
        # Streamed without a declared length, it is cut off the same.
        streamed = c.post("/echo", content=iter([b"x" * 1500, b"x" * 1500]))
        assert streamed.status_code == 413


def test_explicit_settings_set_the_body_limit() -> None:
    settings = ToySettings(http=HttpSettings(max_body_bytes=1024))
    with TestClient(toy_app(Flaky(failing=False), settings)) as c:
        assert c.post("/echo", content=b"x" * 1000).status_code == 200
        assert c.post("/echo", content=b"x" * 1100).status_code == 413
