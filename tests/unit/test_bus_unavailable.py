"""A dependency that is down for every message (an open circuit breaker) must delay the pipeline, not empty it
into the DLQ: UnavailableError is retried without counting towards `max_attempts`. Found by the fault suite
(tests/faults: the LLM endpoint failing for longer than the bus's backoff dead-lettered an episode)."""

from __future__ import annotations

import asyncio

import pytest
from podbrief.bus import Bus, MemoryTransport, Subscription
from podbrief.errors import RetryableError, UnavailableError
from podbrief.events import BriefDelivered
from podbrief.metrics import BusMetrics, new_registry
from podbrief.settings import BusSettings
from podbrief_testing.bus import numbered_event

pytestmark = pytest.mark.unit


async def _run(failures: list[Exception]) -> tuple[int, list[BriefDelivered], BusMetrics]:
    settings = BusSettings(max_attempts=3, backoff_base_s=0.001, backoff_max_s=0.002)
    metrics = BusMetrics.create("test", new_registry())
    bus = Bus(MemoryTransport(partitions=1), settings, metrics)
    await bus.start()
    calls = 0
    done: list[BriefDelivered] = []

    async def handler(e: BriefDelivered) -> None:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        done.append(e)

    topic = "podbrief.test.unavailable.v1"
    await bus.transport.ensure_topics([topic])
    await bus.publish(numbered_event("k", 0), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group="g")
    task = asyncio.create_task(consumer.run())
    for _ in range(500):
        if done or consumer_dead_lettered(metrics, topic):
            break
        await asyncio.sleep(0.01)
    consumer.stop()
    await asyncio.wait_for(task, 10)
    await bus.stop()
    return calls, done, metrics


def consumer_dead_lettered(metrics: BusMetrics, topic: str) -> bool:
    return any(
        s.value > 0
        for m in metrics.dead_lettered.collect()
        for s in m.samples
        if s.labels.get("topic") == topic and s.name.endswith("_total")
    )


async def test_an_outage_longer_than_max_attempts_is_waited_out_not_dead_lettered() -> None:
    outage = [UnavailableError("circuit open", reason="circuit_open") for _ in range(10)]
    calls, done, metrics = await _run([RetryableError("503", reason="http_5xx"), *outage])
    assert len(done) == 1 and calls == 12
    assert not consumer_dead_lettered(metrics, "podbrief.test.unavailable.v1")


async def test_a_database_refusing_connections_is_waited_out_not_dead_lettered() -> None:
    refused = [ConnectionRefusedError(111, "Connect call failed") for _ in range(6)]
    calls, done, metrics = await _run(refused)
    assert len(done) == 1 and calls == 7
    assert not consumer_dead_lettered(metrics, "podbrief.test.unavailable.v1")


async def test_message_failures_still_dead_letter_after_max_attempts() -> None:
    failures: list[Exception] = [RetryableError("503", reason="http_5xx") for _ in range(3)]
    calls, done, metrics = await _run([UnavailableError("circuit open"), *failures])
    assert not done and calls == 4
    assert consumer_dead_lettered(metrics, "podbrief.test.unavailable.v1")
