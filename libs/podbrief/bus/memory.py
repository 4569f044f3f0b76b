"""The in-process bus: partitioned logs, consumer groups with committed offsets, and redelivery of anything a
consumer fetched but did not commit. It runs `podbrief run` on one machine and the fast half of the bus suite.

Given a `MemoryStore`, it keeps its logs and offsets in a file between processes, as a broker would: what one
`podbrief run` left unprocessed or dead-lettered is still there for the next run and for `podbrief dlq`."""

from __future__ import annotations

import asyncio
import itertools
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from podbrief.bus.base import ConsumerTransport, Headers, Record, TopicPartition, Transport
from podbrief.bus.memory_store import MemoryStore, Snapshot

# A partition's records by offset. A stored log reloaded without its consumed prefix (see MemoryStore) has None
# where those records were, so offsets stay what they were.
Log = list[Record | None]


@dataclass
class _Group:
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    members: list[MemoryConsumer] = field(default_factory=list)
    # Every topic a member of the group ever subscribed to: what the group still needs of a stored log.
    topics: set[str] = field(default_factory=set)


class MemoryTransport(Transport):
    def __init__(self, partitions: int = 4, *, store: MemoryStore | None = None) -> None:
        self.partitions = partitions
        self.store = store
        self._logs: dict[str, list[Log]] = {}
        self._groups: dict[str, _Group] = {}
        self._round_robin = itertools.count()
        self._changed = asyncio.Condition()
        self._started = False

    async def start(self) -> None:
        if self.store is not None and not self._started:
            self._restore(await self.store.load())
        self._started = True

    async def stop(self) -> None:
        if self.store is not None and self._started:
            await self.store.close(self._snapshot)
        self._started = False

    async def save(self) -> None:
        """Write what changed to the store now (it is also written at stop)."""
        if self.store is not None:
            await self.store.save(self._snapshot)

    def _restore(self, snap: Snapshot) -> None:
        if snap.partitions is not None:
            # The layout of the stored logs depends on it; a different setting cannot apply to them.
            self.partitions = snap.partitions
        for topic in snap.topics:
            self._log(topic)
        for (topic, p), end in snap.ends.items():
            self._log(topic)[p].extend([None] * end)
        for r in snap.records:
            self._log(r.topic)[r.partition][r.offset] = r
        for name, offsets in snap.committed.items():
            self._groups.setdefault(name, _Group()).committed.update(offsets)
        for name, topics in snap.subscriptions.items():
            self._groups.setdefault(name, _Group()).topics.update(topics)

    def _snapshot(self, saved: Mapping[TopicPartition, int]) -> Snapshot:
        """What changed since the store last wrote `saved`."""
        snap = Snapshot(partitions=self.partitions, topics=list(self._logs))
        for topic, parts in self._logs.items():
            for p, log in enumerate(parts):
                snap.records.extend(r for r in log[saved.get((topic, p), 0) :] if r is not None)
                snap.ends[(topic, p)] = len(log)
        snap.committed = {name: dict(g.committed) for name, g in self._groups.items()}
        snap.subscriptions = {name: set(g.topics) for name, g in self._groups.items()}
        return snap

    async def healthy(self) -> bool:
        return self._started

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        for t in topics:
            self._log(t)

    def _log(self, topic: str) -> list[Log]:
        if topic not in self._logs:
            self._logs[topic] = [[] for _ in range(self.partitions)]
        return self._logs[topic]

    def partition_for(self, key: bytes | None) -> int:
        # Same idea as Kafka's default partitioner: a stable hash of the key; keyless messages spread out.
        if key is None:
            return next(self._round_robin) % self.partitions
        return zlib.crc32(key) % self.partitions

    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Headers = ()) -> None:
        if not self._started:
            raise RuntimeError("memory bus is not started")
        log = self._log(topic)
        p = self.partition_for(key)
        log[p].append(Record(topic, p, len(log[p]), key, value, tuple(headers), int(time.time() * 1000)))
        async with self._changed:
            self._changed.notify_all()

    def consumer(self, topics: Sequence[str], group: str) -> MemoryConsumer:
        return MemoryConsumer(self, list(topics), group)

    def records(self, topic: str) -> list[Record]:
        """Every record of a topic, for tests and the embedded runner."""
        return [r for part in self._log(topic) for r in part if r is not None]

    def topics(self) -> list[str]:
        return sorted(self._logs)

    async def read(self, topic: str) -> list[Record]:
        return self.records(topic) if topic in self._logs else []

    def end_offsets(self, topic: str) -> list[int]:
        return [len(p) for p in self._log(topic)]

    async def group_lag(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        committed = self.committed(group)
        return {
            t: sum(max(0, len(part) - committed.get((t, p), 0)) for p, part in enumerate(self._log(t))) for t in topics
        }

    # Group membership -------------------------------------------------------------------------------
    def _join(self, member: MemoryConsumer) -> None:
        g = self._groups.setdefault(member.group, _Group())
        g.members.append(member)
        g.topics.update(member.topics)
        self._rebalance(g)

    def _leave(self, member: MemoryConsumer) -> None:
        g = self._groups.get(member.group)
        if g and member in g.members:
            g.members.remove(member)
            self._rebalance(g)

    def _rebalance(self, g: _Group) -> None:
        for m in g.members:
            m.assignment = set()
        if not g.members:
            return
        topics = sorted({t for m in g.members for t in m.topics})
        for t in topics:
            self._log(t)
            interested = [m for m in g.members if t in m.topics]
            for p in range(self.partitions):
                interested[p % len(interested)].assignment.add((t, p))
        for m in g.members:
            # A new owner starts from the group's committed offset: whatever the last owner fetched but did
            # not commit is delivered again.
            m.positions = {tp: g.committed.get(tp, 0) for tp in m.assignment}

    def committed(self, group: str) -> dict[TopicPartition, int]:
        g = self._groups.get(group)
        return dict(g.committed) if g else {}


class MemoryConsumer(ConsumerTransport):
    def __init__(self, transport: MemoryTransport, topics: list[str], group: str) -> None:
        self.transport = transport
        self.topics = topics
        self.group = group
        self.assignment: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self._running = False

    async def start(self) -> None:
        self._running = True
        self.transport._join(self)

    async def stop(self) -> None:
        self._running = False
        self.transport._leave(self)

    def _available(self, max_records: int) -> list[Record]:
        out: list[Record] = []
        for tp in sorted(self.assignment):
            log = self.transport._log(tp[0])[tp[1]]
            pos = self.positions.get(tp, 0)
            take = log[pos : pos + max(0, max_records - len(out))]
            if take:
                out.extend(r for r in take if r is not None)
                self.positions[tp] = pos + len(take)
            if len(out) >= max_records:
                break
        return out

    async def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        if not self._running:
            raise RuntimeError("consumer is not started")
        records = self._available(max_records)
        if records:
            return records
        cond = self.transport._changed
        try:
            async with cond:
                await asyncio.wait_for(cond.wait(), timeout_s)
        except TimeoutError:
            return []
        return self._available(max_records)

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        g = self.transport._groups.get(self.group)
        if g is None:
            return
        for tp, off in offsets.items():
            if tp in self.assignment and off > g.committed.get(tp, 0):
                g.committed[tp] = off

    async def lag(self) -> dict[str, int]:
        lag: dict[str, int] = {}
        g = self.transport._groups.get(self.group)
        committed = g.committed if g else {}
        for t, p in self.assignment:
            end = len(self.transport._log(t)[p])
            lag[t] = lag.get(t, 0) + max(0, end - committed.get((t, p), 0))
        return lag
