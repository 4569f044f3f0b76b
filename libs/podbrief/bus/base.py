"""What a bus transport must provide. Two implementations share it: Kafka (aiokafka) and an in-process
twin with the same semantics (per-key ordering, consumer groups, redelivery of what was not committed)."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Headers = tuple[tuple[str, bytes], ...]
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers = field(default=())
    # When the broker appended it (ms since the epoch), where the transport knows.
    timestamp_ms: int | None = None

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return None


class ConsumerTransport(abc.ABC):
    """One member of a consumer group."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        """Records from assigned partitions, in offset order per partition; [] on timeout."""

    @abc.abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read for each partition. Partitions no longer owned are skipped."""

    async def lag(self) -> dict[str, int]:
        """Messages behind the end of each subscribed topic, over the partitions this member owns."""
        return {}


class Transport(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Flush pending sends and close."""

    @abc.abstractmethod
    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Headers = ()) -> None:
        """Return once the broker has the message (acks=all on Kafka)."""

    @abc.abstractmethod
    def consumer(self, topics: Sequence[str], group: str) -> ConsumerTransport: ...

    @abc.abstractmethod
    async def ensure_topics(self, topics: Sequence[str]) -> None: ...

    @abc.abstractmethod
    async def healthy(self) -> bool: ...

    @abc.abstractmethod
    async def read(self, topic: str) -> list[Record]:
        """Every record `topic` holds now, in (partition, offset) order, read outside any consumer group (so
        nobody's offsets move); [] when the topic does not exist. For operators' tools (dead letters, status),
        not for processing."""

    @abc.abstractmethod
    async def group_lag(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        """Messages of each topic that consumer `group` has not committed yet, over all partitions (whoever owns
        them); a topic the group never committed on counts from its beginning."""
