"""The bus suite, written once and run on both transports: the in-process twin and a real Kafka broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from podbrief.bus import Bus, Consumer, MemoryTransport, Record, Subscription, Transport
from podbrief.bus.kafka import KafkaTransport
from podbrief.errors import PermanentError, RetryableError
from podbrief.events import BriefDelivered, BriefDeliveredPayload, new_event
from podbrief.metrics import BusMetrics, new_registry
from podbrief.settings import BusSettings, KafkaSettings


def _settings(bootstrap: str = "127.0.0.1:9092") -> BusSettings:
    return BusSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, partitions=3, max_poll_records=20),
        max_attempts=3,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        concurrency=4,
    )


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.integration)])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    transport: Transport
    if request.param == "memory":
        settings = _settings()
        transport = MemoryTransport(partitions=3)
    else:
        settings = _settings(request.getfixturevalue("kafka_bootstrap"))
        transport = KafkaTransport(settings.kafka)
    b = Bus(transport, settings, BusMetrics.create("test", new_registry()))
    await b.start()
    yield b
    await b.stop()


@pytest.fixture
def topic(unique: str) -> str:
    return f"podbrief.test.{unique}.v1"


def event(key: str, n: int) -> BriefDelivered:
    return new_event(
        BriefDelivered,
        BriefDeliveredPayload(
            brief_id=uuid.uuid4(),
            subscriber_id=uuid.uuid4(),
            brief_date=datetime.now(UTC).date(),
            insight_ids=(),
            status="sent",
            detail=str(n),
        ),
        key=key,
    )


async def wait_until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def read_all(bus: Bus, topic: str, count: int, timeout: float = 30.0) -> list[Record]:
    """Read `count` raw records from a topic with a throwaway group (used for DLQ checks)."""
    consumer = bus.transport.consumer([topic], f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    out: list[Record] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(out) < count and asyncio.get_running_loop().time() < deadline:
            out.extend(await consumer.poll(0.5, 100))
    finally:
        await consumer.stop()
    return out


async def start(consumer: Consumer) -> asyncio.Task[None]:
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0)
    return task


async def stop(consumer: Consumer, task: asyncio.Task[None]) -> None:
    consumer.stop()
    await asyncio.wait_for(task, 30)


async def test_round_trip_with_typed_events_and_headers(bus: Bus, topic: str, unique: str) -> None:
    got: list[BriefDelivered] = []

    async def handler(e: BriefDelivered) -> None:
        got.append(e)

    sent = [event("k", i) for i in range(5)]
    await bus.transport.ensure_topics([topic])
    for e in sent:
        await bus.publish(e, topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    await wait_until(lambda: len(got) == 5)
    await stop(consumer, task)
    assert got == sent
    records = await read_all(bus, topic, 5)
    assert records[0].header("event_type") == "brief.delivered"
    assert records[0].header("correlation_id") == str(sent[0].correlation_id)


async def test_per_key_order_holds_under_concurrency(bus: Bus, topic: str, unique: str) -> None:
    seen: dict[str, list[int]] = {}

    async def handler(e: BriefDelivered) -> None:
        await asyncio.sleep(0.001 * (hash(e.event_id) % 5))  # uneven handler times invite reordering
        seen.setdefault(e.key, []).append(int(e.payload.detail or 0))

    await bus.transport.ensure_topics([topic])
    keys = [f"episode-{i}" for i in range(6)]
    for n in range(20):
        for k in keys:
            await bus.publish(event(k, n), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    await wait_until(lambda: sum(len(v) for v in seen.values()) == 120)
    await stop(consumer, task)
    assert all(seen[k] == list(range(20)) for k in keys)


async def test_crash_before_commit_redelivers_without_loss_or_duplicate_effects(
    bus: Bus, topic: str, unique: str
) -> None:
    effects: dict[uuid.UUID, int] = {}  # an idempotent store: the side effect is keyed by event id
    calls = 0
    block = asyncio.Event()

    async def first_handler(e: BriefDelivered) -> None:
        nonlocal calls
        calls += 1
        effects[e.event_id] = int(e.payload.detail or 0)
        if calls >= 7:
            await block.wait()  # the process "dies" here: the batch is never committed

    async def second_handler(e: BriefDelivered) -> None:
        nonlocal calls
        calls += 1
        effects[e.event_id] = int(e.payload.detail or 0)

    await bus.transport.ensure_topics([topic])
    sent = [event("same-episode", i) for i in range(10)]
    for e in sent:
        await bus.publish(e, topic=topic)
    group = f"g-{unique}"
    crashing = bus.consumer([Subscription(topic, BriefDelivered, first_handler)], group=group)
    task = await start(crashing)
    await wait_until(lambda: calls >= 7)
    task.cancel()  # a crash: no drain, no commit
    with pytest.raises(asyncio.CancelledError):
        await task
    calls_before = calls

    survivor = bus.consumer([Subscription(topic, BriefDelivered, second_handler)], group=group)
    task2 = await start(survivor)
    await wait_until(lambda: survivor.handled >= 10 - 0 and len(effects) == 10, timeout=60)
    await stop(survivor, task2)
    assert sorted(effects.values()) == list(range(10))  # nothing lost
    assert len(effects) == 10  # no duplicate effects
    assert calls > 10 and calls - calls_before >= 7  # the uncommitted ones really were delivered again

    # And what the survivor committed is not delivered a third time.
    again: list[BriefDelivered] = []

    async def third_handler(e: BriefDelivered) -> None:
        again.append(e)

    third = bus.consumer([Subscription(topic, BriefDelivered, third_handler)], group=group)
    task3 = await start(third)
    await asyncio.sleep(3)
    await stop(third, task3)
    assert again == []


async def test_permanent_failure_goes_to_dlq_and_the_partition_keeps_flowing(bus: Bus, topic: str, unique: str) -> None:
    ok: list[int] = []

    async def handler(e: BriefDelivered) -> None:
        if e.payload.detail == "2":
            raise PermanentError("corrupt audio", reason="corrupt_audio")
        ok.append(int(e.payload.detail or 0))

    await bus.transport.ensure_topics([topic])
    for i in range(5):
        await bus.publish(event("k", i), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    await wait_until(lambda: len(ok) == 4)
    await stop(consumer, task)
    assert ok == [0, 1, 3, 4]
    dlq = await read_all(bus, topic + ".dlq", 1)
    assert len(dlq) == 1
    assert dlq[0].header("x-error-class") == "permanent"
    assert dlq[0].header("x-error-reason") == "corrupt_audio"
    assert dlq[0].header("x-original-topic") == topic
    assert dlq[0].header("x-attempts") == "1"


async def test_retryable_failure_is_retried_then_succeeds(bus: Bus, topic: str, unique: str) -> None:
    attempts = 0
    done: list[BriefDelivered] = []

    async def handler(e: BriefDelivered) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RetryableError("LLM endpoint 503", reason="http_5xx")
        done.append(e)

    await bus.transport.ensure_topics([topic])
    await bus.publish(event("k", 0), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    await wait_until(lambda: len(done) == 1)
    await stop(consumer, task)
    assert attempts == 3


async def test_exhausted_retries_and_poison_messages_are_dead_lettered(bus: Bus, topic: str, unique: str) -> None:
    after: list[int] = []

    async def handler(e: BriefDelivered) -> None:
        if e.payload.detail == "0":
            raise TimeoutError("always times out")  # an unknown error counts as retryable
        after.append(int(e.payload.detail or 0))

    await bus.transport.ensure_topics([topic])
    await bus.publish(event("k", 0), topic=topic)
    await bus.transport.send(topic, b"\x00not an event", key=b"k")
    await bus.publish(event("k", 1), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    await wait_until(lambda: after == [1])
    await stop(consumer, task)
    dlq = await read_all(bus, topic + ".dlq", 2)
    classes = sorted(r.header("x-error-class") or "" for r in dlq)
    assert classes == ["invalid_event", "retryable"]
    exhausted = next(r for r in dlq if r.header("x-error-class") == "retryable")
    assert exhausted.header("x-attempts") == "3"
    assert exhausted.header("x-error-type") == "TimeoutError"


@pytest.mark.integration
async def test_kafka_namespace_isolates_two_deployments_on_one_cluster(kafka_bootstrap: str, unique: str) -> None:
    """Two deployments with different namespaces publish to the same logical topic; each consumer sees only its
    own messages, and the broker holds them under prefixed names."""
    topic = f"podbrief.test.{unique}.v1"
    buses = []
    for ns in ("blue.", "green."):
        s = _settings(kafka_bootstrap)
        s = s.model_copy(update={"kafka": s.kafka.model_copy(update={"namespace": f"{ns}{unique}."})})
        b = Bus(KafkaTransport(s.kafka), s)
        await b.start()
        buses.append(b)
    try:
        for n, b in enumerate(buses):
            await b.transport.ensure_topics([topic])
            await b.publish(event(f"k{n}", n), topic=topic)
        for n, b in enumerate(buses):
            records = await read_all(b, topic, 1, timeout=20)
            assert [r.topic for r in records] == [topic]
            assert [r.key for r in records] == [f"k{n}".encode()]
            # Nothing else arrives: the other deployment's message lives under its own prefix.
            consumer = b.transport.consumer([topic], f"late-{unique}")
            await consumer.start()
            try:
                seen: list[Record] = []
                for _ in range(6):
                    seen.extend(await consumer.poll(0.5, 100))
                assert [r.key for r in seen] == [f"k{n}".encode()]
            finally:
                await consumer.stop()
        admin_topics = await buses[0].transport._admin.list_topics()  # type: ignore[attr-defined]
        assert {f"blue.{unique}.{topic}", f"green.{unique}.{topic}"} <= set(admin_topics)
        assert topic not in admin_topics
    finally:
        for b in buses:
            await b.stop()
