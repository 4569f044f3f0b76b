"""The bus suite, written once and run on both transports: the in-process twin and a real Kafka broker."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import pytest
from aiokafka.partitioner import DefaultPartitioner
from podbrief.bus import Bus, Consumer, ConsumerTransport, MemoryTransport, Record, Subscription, Transport, dlq
from podbrief.bus.base import Headers, TopicPartition
from podbrief.bus.kafka import KafkaTransport
from podbrief.errors import PermanentError, RetryableError
from podbrief.events import BriefDelivered
from podbrief.metrics import BusMetrics, new_registry
from podbrief.settings import BusSettings, KafkaSettings
from podbrief_testing.bus import numbered_event


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


event = numbered_event


@pytest.fixture
def topic(unique: str) -> str:
    return f"podbrief.test.{unique}.v1"


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
    redelivered: list[int] = []
    block = asyncio.Event()

    async def first_handler(e: BriefDelivered) -> None:
        nonlocal calls
        calls += 1
        effects[e.event_id] = int(e.payload.detail or 0)
        if calls >= 7:
            await block.wait()  # the process "dies" here, inside the seventh message's handler

    async def second_handler(e: BriefDelivered) -> None:
        effects[e.event_id] = int(e.payload.detail or 0)
        redelivered.append(int(e.payload.detail or 0))

    await bus.transport.ensure_topics([topic])
    sent = [event("same-episode", i) for i in range(10)]
    for e in sent:
        await bus.publish(e, topic=topic)
    group = f"g-{unique}"
    crashing = bus.consumer([Subscription(topic, BriefDelivered, first_handler)], group=group)
    task = await start(crashing)
    await wait_until(lambda: calls >= 7)
    task.cancel()  # a crash: no drain, no final commit
    with pytest.raises(asyncio.CancelledError):
        await task

    survivor = bus.consumer([Subscription(topic, BriefDelivered, second_handler)], group=group)
    task2 = await start(survivor)
    await wait_until(lambda: {6, 7, 8, 9} <= set(redelivered), timeout=60)
    await stop(survivor, task2)
    assert sorted(effects.values()) == list(range(10))  # nothing lost
    assert len(effects) == 10  # no duplicate effects
    # The message in flight at the crash, and everything after it, came again: redelivery resumes from the
    # committed offset, which never passed an unfinished message (some finished ones may come twice).
    assert redelivered == list(range(redelivered[0], 10)) and redelivered[0] <= 6

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


# --- no barrier between messages -----------------------------------------------------------------------------


class Spy(Transport):
    """Wraps a started transport; its consumers note every record they fetch and every commit, and check at each
    commit that no offset below it is unfinished (`finished` holds the event ids whose handler returned)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.fetched: list[Record] = []
        self.commits: list[dict[TopicPartition, int]] = []
        self.finished: set[str] = set()
        self.violations: list[str] = []

    async def start(self) -> None:  # the wrapped transport is started by the fixture
        pass

    async def stop(self) -> None:
        pass

    async def healthy(self) -> bool:
        return await self.inner.healthy()

    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Headers = ()) -> None:
        await self.inner.send(topic, value, key=key, headers=headers)

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        await self.inner.ensure_topics(topics)

    async def read(self, topic: str) -> list[Record]:
        return await self.inner.read(topic)

    async def group_lag(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        return await self.inner.group_lag(group, topics)

    def consumer(self, topics: Sequence[str], group: str) -> ConsumerTransport:
        return SpyConsumer(self, self.inner.consumer(topics, group))

    def in_flight(self) -> int:
        return len({r.header("event_id") for r in self.fetched} - self.finished)

    def committed(self, tp: TopicPartition) -> int:
        return max((c[tp] for c in self.commits if tp in c), default=0)

    def offset_of(self, e: BriefDelivered) -> tuple[TopicPartition, int]:
        r = next(r for r in self.fetched if r.header("event_id") == str(e.event_id))
        return (r.topic, r.partition), r.offset

    def fetched_to(self, tp: TopicPartition) -> int:
        return max(r.offset for r in self.fetched if (r.topic, r.partition) == tp) + 1


class SpyConsumer(ConsumerTransport):
    def __init__(self, spy: Spy, inner: ConsumerTransport) -> None:
        self.spy, self.inner = spy, inner

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()

    async def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        records = await self.inner.poll(timeout_s, max_records)
        self.spy.fetched.extend(records)
        return records

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        for tp, off in offsets.items():
            for r in self.spy.fetched:
                if (r.topic, r.partition) == tp and r.offset < off and r.header("event_id") not in self.spy.finished:
                    self.spy.violations.append(f"commit {tp}@{off} passes unfinished offset {r.offset}")
        self.spy.commits.append(dict(offsets))
        await self.inner.commit(offsets)


def spied(bus: Bus, **settings: int) -> tuple[Bus, Spy]:
    spy = Spy(bus.transport)
    return Bus(spy, bus.settings.model_copy(update=settings)), spy


def partition_of(bus: Bus, key: str) -> int:
    if isinstance(bus.transport, MemoryTransport):
        return bus.transport.partition_for(key.encode())
    partitions = list(range(bus.settings.kafka.partitions))
    return int(DefaultPartitioner()(key.encode(), partitions, partitions))  # the producer's own choice


async def test_a_slow_message_does_not_hold_back_later_messages_of_other_keys(
    bus: Bus, topic: str, unique: str
) -> None:
    """Messages published while a slow one runs are fetched and handled at once, on its partition too; that
    partition's commit waits below the slow message, the others' reach their end."""
    bus, spy = spied(bus)
    release, slow_started = asyncio.Event(), asyncio.Event()
    done: list[tuple[str, int]] = []

    async def handler(e: BriefDelivered) -> None:
        if e.key == "slow":
            slow_started.set()
            await release.wait()
        done.append((e.key, int(e.payload.detail or 0)))
        spy.finished.add(str(e.event_id))

    slow_partition = partition_of(bus, "slow")
    candidates = [f"episode-{i}" for i in range(200)]
    same = [k for k in candidates if partition_of(bus, k) == slow_partition][:4]
    other = [k for k in candidates if partition_of(bus, k) != slow_partition][:4]
    await bus.transport.ensure_topics([topic])
    slow = event("slow", 0)
    await bus.publish(slow, topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    await asyncio.wait_for(slow_started.wait(), 30)

    later = [event(k, n) for n in range(3) for k in [*same, *other]]
    for e in [*later, event("slow", 1)]:
        await bus.publish(e, topic=topic)
    await wait_until(lambda: len(done) == len(later))
    assert sorted(done) == sorted((k, n) for n in range(3) for k in [*same, *other])
    assert ("slow", 1) not in done  # its key's order: behind the slow one
    slow_tp, slow_offset = spy.offset_of(slow)
    other_tps = {(r.topic, r.partition) for r in spy.fetched} - {slow_tp}
    await wait_until(lambda: all(spy.committed(tp) == spy.fetched_to(tp) for tp in other_tps))
    assert spy.committed(slow_tp) <= slow_offset

    release.set()
    await wait_until(lambda: len(done) == len(later) + 2)
    await wait_until(lambda: spy.committed(slow_tp) == spy.fetched_to(slow_tp))
    await stop(consumer, task)
    assert done[-2:] == [("slow", 0), ("slow", 1)]
    assert spy.violations == []


async def test_commits_never_skip_an_unfinished_offset(bus: Bus, topic: str, unique: str) -> None:
    """Uneven handler times on many keys, messages arriving while others run: every commit the consumer makes
    covers only finished messages, and in the end everything is committed."""
    bus, spy = spied(bus)
    rng = random.Random(17)
    delays = [rng.choice((0.0, 0.001, 0.005, 0.02, 0.08)) for _ in range(200)]

    async def handler(e: BriefDelivered) -> None:
        await asyncio.sleep(delays[int(e.payload.detail or 0)])
        spy.finished.add(str(e.event_id))

    await bus.transport.ensure_topics([topic])
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    for n in range(200):
        await bus.publish(event(f"episode-{n % 9}", n), topic=topic)
        if n % 25 == 0:
            await asyncio.sleep(0.05)  # waves: the pipeline refills while earlier messages still run
    await wait_until(lambda: len(spy.finished) == 200)
    tps = {(r.topic, r.partition) for r in spy.fetched}
    await wait_until(lambda: all(spy.committed(tp) == spy.fetched_to(tp) for tp in tps))
    await stop(consumer, task)
    assert spy.violations == []
    assert len(spy.commits) > 1  # committed as it went, not once at the end


async def test_per_key_order_holds_while_the_pipeline_refills(bus: Bus, topic: str, unique: str) -> None:
    """Keys whose handlers are slow and keys whose handlers are fast share partitions; messages keep arriving.
    Each key's messages are still handled one at a time, in order, each exactly once."""
    seen: dict[str, list[int]] = {}
    running: set[str] = set()
    overlaps: list[str] = []

    async def handler(e: BriefDelivered) -> None:
        if e.key in running:
            overlaps.append(e.key)
        running.add(e.key)
        await asyncio.sleep(0.03 if e.key.startswith("slow") else 0.001)
        seen.setdefault(e.key, []).append(int(e.payload.detail or 0))
        running.discard(e.key)

    await bus.transport.ensure_topics([topic])
    keys = [f"slow-{i}" for i in range(3)] + [f"fast-{i}" for i in range(6)]
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    for n in range(12):
        for k in keys:
            await bus.publish(event(k, n), topic=topic)
        await asyncio.sleep(0.02)
    await wait_until(lambda: sum(len(v) for v in seen.values()) == 12 * len(keys))
    await stop(consumer, task)
    assert overlaps == []
    assert all(seen[k] == list(range(12)) for k in keys)


async def test_stop_drains_in_flight_handlers_only(bus: Bus, topic: str, unique: str) -> None:
    """On stop, the handlers already running finish and are committed; queued messages never start, stay
    uncommitted, and are what the next member of the group gets."""
    bus, spy = spied(bus, concurrency=2)
    release = asyncio.Event()
    first: list[str] = []

    async def blocking(e: BriefDelivered) -> None:
        await release.wait()
        first.append(str(e.event_id))
        spy.finished.add(str(e.event_id))

    await bus.transport.ensure_topics([topic])
    sent = [event(f"episode-{i % 4}", i) for i in range(12)]
    for e in sent:
        await bus.publish(e, topic=topic)
    group = f"g-{unique}"
    consumer = bus.consumer([Subscription(topic, BriefDelivered, blocking)], group=group)
    task = await start(consumer)
    await wait_until(lambda: len(spy.fetched) == 12)
    await asyncio.sleep(0.2)  # two handlers are now blocked, the other ten wait for a slot or for their key
    consumer.stop()
    release.set()
    await asyncio.wait_for(task, 30)
    assert len(first) == 2  # only the in-flight ones ran
    assert spy.violations == []

    second: list[str] = []

    async def recording(e: BriefDelivered) -> None:
        second.append(str(e.event_id))

    rest = {str(e.event_id) for e in sent} - set(first)
    survivor = Bus(spy.inner, bus.settings).consumer([Subscription(topic, BriefDelivered, recording)], group=group)
    task2 = await start(survivor)
    await wait_until(lambda: rest <= set(second))
    await stop(survivor, task2)
    # What the first member committed is not delivered again; the rest is, every message of it.
    committed = {str(e.event_id) for e in sent if spy.offset_of(e)[1] < spy.committed(spy.offset_of(e)[0])}
    assert committed <= set(first)
    assert not committed & set(second)


async def test_back_pressure_bounds_the_messages_in_flight(bus: Bus, topic: str, unique: str) -> None:
    """With every handler stuck, the consumer holds at most `max_in_flight` messages; the rest stays in the
    broker until some finish."""
    bus, spy = spied(bus, concurrency=2, max_in_flight=5)
    release = asyncio.Event()
    peak = 0

    async def handler(e: BriefDelivered) -> None:
        nonlocal peak
        peak = max(peak, spy.in_flight())
        await release.wait()
        spy.finished.add(str(e.event_id))

    await bus.transport.ensure_topics([topic])
    for i in range(30):
        await bus.publish(event(f"episode-{i}", i), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    await wait_until(lambda: len(spy.fetched) == 5)
    await asyncio.sleep(1.5)  # several poll intervals: nothing more is fetched while all five are unfinished
    assert len(spy.fetched) == 5
    release.set()
    await wait_until(lambda: len(spy.finished) == 30)
    await stop(consumer, task)
    assert peak <= 5
    assert len({r.header("event_id") for r in spy.fetched}) == 30


async def test_read_returns_a_topic_without_moving_any_group(bus: Bus, topic: str, unique: str) -> None:
    assert await bus.transport.read(topic + ".absent") == []
    await bus.transport.ensure_topics([topic])
    sent = [event(f"k{i % 3}", i) for i in range(7)]
    for e in sent:
        await bus.publish(e, topic=topic)
    first = await bus.transport.read(topic)
    second = await bus.transport.read(topic)
    assert first == second
    assert sorted(r.header("event_id") or "" for r in first) == sorted(str(e.event_id) for e in sent)
    assert [(r.partition, r.offset) for r in first] == sorted((r.partition, r.offset) for r in first)
    assert all(r.timestamp_ms is not None and r.timestamp_ms > 1_700_000_000_000 for r in first)
    assert await bus.transport.group_lag(f"g-{unique}", [topic]) == {topic: 7}


async def test_group_lag_counts_what_the_group_has_not_committed(bus: Bus, topic: str, unique: str) -> None:
    got: list[int] = []

    async def handler(e: BriefDelivered) -> None:
        got.append(int(e.payload.detail or 0))

    group = f"g-{unique}"
    await bus.transport.ensure_topics([topic])
    for i in range(6):
        await bus.publish(event(f"k{i}", i), topic=topic)
    assert await bus.transport.group_lag(group, [topic]) == {topic: 6}
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=group)
    task = await start(consumer)
    await wait_until(lambda: len(got) == 6)
    await stop(consumer, task)  # commits what finished
    assert await bus.transport.group_lag(group, [topic]) == {topic: 0}
    await bus.publish(event("k", 9), topic=topic)
    assert await bus.transport.group_lag(group, [topic]) == {topic: 1}


async def test_dlq_replay_after_the_fault_is_fixed_delivers_exactly_once(bus: Bus, topic: str, unique: str) -> None:
    """A message fails until its fault is fixed: it is dead-lettered, listed with its error, replayed into its
    topic after the fix and handled once; replaying again (by id or all) sends nothing more."""
    fixed = False
    handled: list[int] = []

    async def handler(e: BriefDelivered) -> None:
        n = int(e.payload.detail or 0)
        if n == 2 and not fixed:
            raise PermanentError("the enclosure is not audio", reason="bad_content_type")
        handled.append(n)

    await bus.transport.ensure_topics([topic])
    for i in range(4):
        await bus.publish(event("k", i), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    try:
        await wait_until(lambda: handled == [0, 1, 3])
        [letter] = await wait_for_letters(bus, topic, 1)
        assert (letter.topic, letter.reason, letter.error_class, letter.attempts) == (
            topic,
            "bad_content_type",
            "permanent",
            1,
        )
        assert letter.key == "k" and letter.event_type == "brief.delivered" and "not audio" in letter.message
        assert letter.consumer_group == f"g-{unique}" and letter.replayed_at is None
        assert letter.dead_lettered_at is not None

        fixed = True
        report = await dlq.replay(bus.transport, topic, ids=[letter.id])
        assert report.replayed == [letter.id] and report.already == [] and report.unknown == []
        await wait_until(lambda: handled == [0, 1, 3, 2])

        again = await dlq.replay(bus.transport, topic)  # all of them: the one already replayed is not resent
        by_id = await dlq.replay(bus.transport, topic + ".dlq", ids=[letter.id, "0:999999"])
        assert again.replayed == [] and again.already == [letter.id]
        assert by_id.replayed == [] and by_id.unknown == ["0:999999"]
        await asyncio.sleep(2)  # several polls: nothing else arrives
        assert handled == [0, 1, 3, 2]
    finally:
        await stop(consumer, task)
    [listed] = await dlq.dead_letters(bus.transport, topic)
    assert listed.replayed_at is not None
    replayed = [r for r in await bus.transport.read(topic) if r.header(dlq.REPLAYED_FROM)]
    assert len(replayed) == 1 and replayed[0].header("event_id") == letter.event_id


async def test_dlq_replay_selects_by_reason(bus: Bus, topic: str, unique: str) -> None:
    failing = {1: PermanentError("bad", reason="corrupt_audio"), 2: PermanentError("gone", reason="http_410")}
    handled: list[int] = []

    async def handler(e: BriefDelivered) -> None:
        n = int(e.payload.detail or 0)
        if n in failing:
            raise failing[n]
        handled.append(n)

    await bus.transport.ensure_topics([topic])
    for i in range(3):
        await bus.publish(event(f"k{i}", i), topic=topic)
    consumer = bus.consumer([Subscription(topic, BriefDelivered, handler)], group=f"g-{unique}")
    task = await start(consumer)
    try:
        letters = await wait_for_letters(bus, topic, 2)
        assert sorted(d.reason for d in letters) == ["corrupt_audio", "http_410"]
        failing.clear()
        report = await dlq.replay(bus.transport, topic, reasons={"http_410"})
        assert [d.reason for d in letters if d.id in report.replayed] == ["http_410"]
        await wait_until(lambda: sorted(handled) == [0, 2])
        await asyncio.sleep(1)
        assert sorted(handled) == [0, 2]
    finally:
        await stop(consumer, task)


async def wait_for_letters(bus: Bus, topic: str, count: int, timeout: float = 30.0) -> list[dlq.DeadLetter]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        letters = await dlq.dead_letters(bus.transport, topic)
        if len(letters) >= count or asyncio.get_running_loop().time() > deadline:
            assert len(letters) == count, letters
            return letters
        await asyncio.sleep(0.2)


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
