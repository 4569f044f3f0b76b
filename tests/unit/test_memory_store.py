"""The in-process bus kept in a file between processes: logs, offsets and dead letters survive, a group resumes
where it committed, consumed records are dropped from the file without moving offsets, one process at a time."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from podbrief.bus import Bus, MemoryTransport, Subscription, dlq
from podbrief.bus.memory_store import MemoryStore, StoreBusyError
from podbrief.errors import PermanentError
from podbrief.events import BriefDelivered
from podbrief.settings import BusSettings
from podbrief_testing.bus import numbered_event as event

pytestmark = pytest.mark.unit

TOPIC = "podbrief.test.store.v1"


def settings() -> BusSettings:
    return BusSettings(max_attempts=1, backoff_base_s=0.01, backoff_max_s=0.01)


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def consume(path: Path, group: str, *, fail: frozenset[int] = frozenset(), want: int) -> list[int]:
    """One "process": open the stored bus, handle `want` messages of TOPIC in `group`, close it."""
    transport = MemoryTransport(partitions=3, store=MemoryStore(path))
    bus = Bus(transport, settings())
    await bus.start()
    got: list[int] = []

    async def handler(e: BriefDelivered) -> None:
        n = int(e.payload.detail or 0)
        if n in fail:
            raise PermanentError("bad audio", reason="corrupt_audio")
        got.append(n)

    dead_before = len(transport.records(TOPIC + ".dlq"))
    consumer = bus.consumer([Subscription(TOPIC, BriefDelivered, handler)], group=group)
    task = asyncio.create_task(consumer.run())
    try:
        await until(lambda: len(got) + len(transport.records(TOPIC + ".dlq")) - dead_before >= want)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
        await bus.stop()
    return got


async def publish(path: Path, events: list[BriefDelivered]) -> None:
    transport = MemoryTransport(partitions=3, store=MemoryStore(path))
    bus = Bus(transport, settings())
    await bus.start()
    await transport.ensure_topics([TOPIC])
    for e in events:
        await bus.publish(e, topic=TOPIC)
    await bus.stop()


async def test_a_group_resumes_where_it_committed_in_an_earlier_process(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    await publish(path, [event(f"k{i}", i) for i in range(5)])
    first = await consume(path, "g", want=5)
    assert sorted(first) == [0, 1, 2, 3, 4]
    await publish(path, [event("k9", 9)])
    again = await consume(path, "g", want=1)
    assert again == [9]  # nothing before the committed offsets comes back
    reopened = MemoryTransport(store=MemoryStore(path))
    await reopened.start()
    try:
        assert reopened.partitions == 3  # the stored layout wins over the constructor's
        assert await reopened.group_lag("g", [TOPIC]) == {TOPIC: 0}
        assert sum(reopened.end_offsets(TOPIC)) == 6  # offsets kept, though consumed records left the file
    finally:
        await reopened.stop()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM records WHERE topic = ?", (TOPIC,)).fetchone() == (0,)


async def test_a_topic_nobody_reads_keeps_everything_and_a_new_group_reads_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    await publish(path, [event(f"k{i}", i) for i in range(4)])
    assert sorted(await consume(path, "late", want=4)) == [0, 1, 2, 3]


async def test_dead_letters_survive_and_a_replay_waits_for_the_next_process(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    await publish(path, [event(f"k{i}", i) for i in range(3)])
    assert sorted(await consume(path, "g", fail=frozenset({1}), want=3)) == [0, 2]

    tool = MemoryTransport(store=MemoryStore(path))  # `podbrief dlq replay` in a process of its own
    await tool.start()
    try:
        [letter] = await dlq.dead_letters(tool, TOPIC)
        assert letter.reason == "corrupt_audio" and letter.consumer_group == "g"
        assert (await dlq.replay(tool, TOPIC)).replayed == [letter.id]
    finally:
        await tool.stop()

    assert await consume(path, "g", want=1) == [1]  # the next run handles the replayed message
    tool = MemoryTransport(store=MemoryStore(path))
    await tool.start()
    try:
        assert (await dlq.replay(tool, TOPIC)).already == [letter.id]  # and it is never sent twice
    finally:
        await tool.stop()


async def test_one_process_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "bus.sqlite"
    first = MemoryTransport(store=MemoryStore(path))
    await first.start()
    try:
        second = MemoryTransport(store=MemoryStore(path))
        with pytest.raises(StoreBusyError, match=str(path)):
            await second.start()
    finally:
        await first.stop()
    third = MemoryTransport(store=MemoryStore(path))
    await third.start()  # free again once the first closed it
    await third.stop()
