"""`GET /v1/status`, which every service's chassis serves: the stage's own counts, its consumer group's lag and its
dead letters by reason, behind the admin key; and `podbrief status` reading it from running services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from podbrief.bus import Bus, MemoryTransport, Subscription
from podbrief.errors import PermanentError
from podbrief.events import BriefDelivered
from podbrief.service import ServiceContext, ServiceSpec, create_app
from podbrief.settings import BusSettings, HttpSettings, ServiceSettings
from podbrief.status import ServiceStatus, StageStatus
from podbrief_cli.status import remote_status
from podbrief_testing.bus import numbered_event
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

pytestmark = pytest.mark.unit

KEY = "status-test-admin-key-0123456789"
TOPIC = "podbrief.test.status.v1"


class FakeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PODBRIEF_STATUS_TEST_")


@dataclass
class Deps:
    handled: list[int]


async def handler(event: BriefDelivered, *, deps: Deps) -> None:
    n = int(event.payload.detail or 0)
    if n == 1:
        raise PermanentError("the audio is corrupt", reason="corrupt_audio")
    deps.handled.append(n)


@contextlib.asynccontextmanager
async def build_deps(_ctx: ServiceContext[FakeSettings]) -> AsyncIterator[Deps]:
    yield Deps([])


async def stage(deps: Deps) -> StageStatus:
    return StageStatus(episodes={"handled": len(deps.handled)}, failures={"episodes": {"timeout": 2}})


SPEC: ServiceSpec[FakeSettings, Deps] = ServiceSpec(
    name="fake",
    settings_cls=FakeSettings,
    build_deps=build_deps,
    subscriptions=lambda d: [Subscription(TOPIC, BriefDelivered, lambda e: handler(e, deps=d))],
    status=stage,
)


async def test_status_gives_counts_lag_and_dead_letters_behind_the_admin_key() -> None:
    settings = FakeSettings(
        bus=BusSettings(kind="memory", max_attempts=1),
        http=HttpSettings(admin_api_key=SecretStr(KEY)),
    )
    transport = MemoryTransport(partitions=2)
    await transport.start()
    app = create_app(SPEC, settings, transport=transport)
    async with app.router.lifespan_context(app):
        bus = Bus(transport, settings.bus)
        await transport.ensure_topics([TOPIC])
        for n in range(3):
            await bus.publish(numbered_event(f"k{n}", n), topic=TOPIC)
        deps: Any = app.state.deps
        deadline = asyncio.get_running_loop().time() + 10
        while len(deps.handled) < 2 or not transport.records(TOPIC + ".dlq"):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        asgi = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=asgi, base_url="http://fake") as client:
            assert (await client.get("/v1/status")).status_code == 401
            assert (await client.get("/v1/status", headers={"X-API-Key": "wrong"})).status_code == 401
            body = (await client.get("/v1/status", headers={"X-API-Key": KEY})).json()
        status = ServiceStatus.model_validate(body)
        assert status.service == "fake"
        assert status.stage.episodes == {"handled": 2}
        assert status.stage.failures == {"episodes": {"timeout": 2}}
        assert status.consumer is not None and status.consumer.group == "fake" and TOPIC in status.consumer.lag
        assert status.dead_letters == {TOPIC: {"corrupt_audio": 1}}

        [remote] = await remote_status({"ingest": "http://fake"}, KEY, transport=asgi)
        assert isinstance(remote, ServiceStatus) and remote.dead_letters == status.dead_letters
        [refused] = await remote_status({"ingest": "http://fake"}, "wrong", transport=asgi)
        assert isinstance(refused, str) and "401" in refused
    await transport.stop()


async def test_status_is_closed_without_an_admin_key() -> None:
    settings = FakeSettings(bus=BusSettings(kind="memory"))
    transport = MemoryTransport()
    await transport.start()
    app = create_app(SPEC, settings, transport=transport)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://fake") as client:
            r = await client.get("/v1/status", headers={"X-API-Key": KEY})
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    await transport.stop()
