"""The Kafka transport (aiokafka): idempotent zstd producer with acks=all, consumer groups with auto-commit
off, so an offset is committed only after its message was handled."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
)
from aiokafka.helpers import create_ssl_context

from podbrief.bus.base import ConsumerTransport, Headers, Record, Transport
from podbrief.bus.base import TopicPartition as TP
from podbrief.errors import RetryableError
from podbrief.settings import KafkaSettings

log = logging.getLogger(__name__)


def _common(settings: KafkaSettings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = create_ssl_context()
    if settings.sasl_mechanism:
        opts["sasl_mechanism"] = settings.sasl_mechanism
        opts["sasl_plain_username"] = settings.sasl_username
        opts["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    return opts


class KafkaTransport(Transport):
    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._known_topics: set[str] = set()
        self._ns = settings.namespace

    async def start(self) -> None:
        common = _common(self.settings)
        self._producer = AIOKafkaProducer(
            **common,
            acks="all",
            enable_idempotence=True,
            compression_type="zstd",
            linger_ms=5,
            max_request_size=self.settings.max_message_bytes,
        )
        self._admin = AIOKafkaAdminClient(**common)
        try:
            await self._producer.start()
            await self._admin.start()
        except KafkaError as exc:
            await self.stop()
            raise RetryableError(
                f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}", reason="kafka_unreachable"
            ) from exc

    async def stop(self) -> None:
        if self._producer is not None:
            try:
                await self._producer.flush()
            except KafkaError:
                log.warning("producer flush failed during shutdown", exc_info=True)
            await self._producer.stop()
            self._producer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None

    async def send(self, topic: str, value: bytes, *, key: bytes | None, headers: Headers = ()) -> None:
        if self._producer is None:
            raise RuntimeError("Kafka transport is not started")
        try:
            await self._producer.send_and_wait(self._ns + topic, value, key=key, headers=list(headers))
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            raise RetryableError(f"publish to {topic} failed: {exc}", reason="kafka_publish") from exc

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        missing = [t for t in topics if t not in self._known_topics]
        if not missing or self._admin is None:
            return
        new = [
            NewTopic(
                self._ns + t,
                num_partitions=self.settings.partitions,
                replication_factor=self.settings.replication_factor,
            )
            for t in missing
        ]
        try:
            await self._admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass
        except KafkaError as exc:
            # Several topics in one call: some may exist already. Create the rest one by one.
            for topic in new:
                try:
                    await self._admin.create_topics([topic])
                except TopicAlreadyExistsError:
                    pass
                except KafkaError:
                    log.warning("could not create topic", extra={"topic": topic.name, "error": str(exc)})
                    raise
        self._known_topics.update(missing)

    async def healthy(self) -> bool:
        if self._admin is None:
            return False
        try:
            await asyncio.wait_for(self._admin.describe_cluster(), timeout=3.0)
            return True
        except Exception:
            return False

    def consumer(self, topics: Sequence[str], group: str) -> KafkaConsumer:
        return KafkaConsumer(self.settings, list(topics), group)

    async def _partitions(self, topic: str) -> list[TopicPartition]:
        if self._admin is None:
            raise RuntimeError("Kafka transport is not started")
        [desc] = await self._admin.describe_topics([self._ns + topic])
        if desc.get("error_code"):
            return []
        return [TopicPartition(self._ns + topic, p["partition"]) for p in desc.get("partitions", ())]

    async def read(self, topic: str) -> list[Record]:
        tps = await self._partitions(topic)
        if not tps:
            return []
        reader = AIOKafkaConsumer(
            **_common(self.settings),
            enable_auto_commit=False,
            fetch_max_bytes=max(52_428_800, self.settings.max_message_bytes),
            max_partition_fetch_bytes=self.settings.max_message_bytes,
        )
        await reader.start()
        try:
            found = await read_to_end(reader, tps, timeout_s=self.settings.request_timeout_ms / 1000 * 4)
        finally:
            await reader.stop()
        return sorted(
            (
                Record(topic, m.partition, m.offset, m.key, m.value or b"", tuple(m.headers or ()), int(m.timestamp))
                for m in found
            ),
            key=lambda r: (r.partition, r.offset),
        )

    async def group_lag(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        if self._admin is None:
            raise RuntimeError("Kafka transport is not started")
        committed = await self._admin.list_consumer_group_offsets(self._ns + group)
        tps = [tp for t in topics for tp in await self._partitions(t)]
        if not tps:
            return {t: 0 for t in topics}
        reader = AIOKafkaConsumer(**_common(self.settings), enable_auto_commit=False)
        await reader.start()
        try:
            end = await reader.end_offsets(tps)
        finally:
            await reader.stop()
        lag = dict.fromkeys(topics, 0)
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[tp.topic[len(self._ns) :]] += max(0, end.get(tp, 0) - done)
        return lag


async def read_to_end(consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], *, timeout_s: float) -> list[Any]:
    """Every record of the partitions `tps` up to their end offsets now (aiokafka ConsumerRecords), read by a
    started consumer that has no group."""
    consumer.assign(list(tps))
    begin = await consumer.beginning_offsets(list(tps))
    end = await consumer.end_offsets(list(tps))
    for tp in tps:
        # An explicit offset, not seek_to_beginning(): its lazy reset races the fetcher, which can then move the
        # position past records it never hands out.
        consumer.seek(tp, begin[tp])
    # Progress is counted from the records returned, not from position(): the fetcher may move a position past
    # records it prefetched but has not handed out yet, which would end the read early and empty.
    following = {tp: begin[tp] for tp in tps}
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while any(following[tp] < end[tp] for tp in tps):
        if time.monotonic() > deadline:
            raise RetryableError(f"could not read {tps[0].topic} to its end in {timeout_s:.0f}s", reason="timeout")
        for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
            for m in msgs:
                if m.offset < end[tp]:
                    out.append(m)
                following[tp] = max(following[tp], m.offset + 1)
    return out


class KafkaConsumer(ConsumerTransport):
    def __init__(self, settings: KafkaSettings, topics: list[str], group: str) -> None:
        self.settings = settings
        self.topics = topics
        self.group = group
        self._ns = settings.namespace
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            *(self._ns + t for t in self.topics),
            **_common(self.settings),
            group_id=self._ns + self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.max_poll_records,
            max_poll_interval_ms=self.settings.max_poll_interval_ms,
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.settings.session_timeout_ms // 10),
            fetch_max_bytes=max(52_428_800, self.settings.max_message_bytes),
            max_partition_fetch_bytes=self.settings.max_message_bytes,
        )
        try:
            await self._consumer.start()
        except KafkaError as exc:
            raise RetryableError(f"consumer cannot reach Kafka: {exc}", reason="kafka_unreachable") from exc

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        assert self._consumer is not None, "consumer not started"
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[Record] = []
        for tp, msgs in batches.items():
            for m in msgs:
                out.append(
                    Record(
                        tp.topic[len(self._ns) :], tp.partition, m.offset, m.key, m.value or b"", tuple(m.headers or ())
                    )
                )
        return out

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        assert self._consumer is not None, "consumer not started"
        owned = self._consumer.assignment()
        to_commit = {tp: off for (t, p), off in offsets.items() if (tp := TopicPartition(self._ns + t, p)) in owned}
        if not to_commit:
            return
        try:
            await self._consumer.commit(to_commit)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partition away: its new owner re-reads from the last commit (at-least-once).
            log.warning("commit rejected after rebalance; messages will be redelivered", extra={"error": str(exc)})

    async def lag(self) -> dict[str, int]:
        # End offset minus committed offset, as Kafka's own tools count it (and as the memory twin does). The
        # highwater of fetch responses is not used: aiokafka does not fetch a partition again while records
        # it prefetched are still waiting, so behind a slow handler it goes stale and hides the backlog.
        if self._consumer is None:
            return {}
        owned = list(self._consumer.assignment())
        if not owned:
            return {}
        try:
            end = await self._consumer.end_offsets(owned)
        except (KafkaError, IllegalStateError):
            return {}
        lag: dict[str, int] = {}
        for tp in owned:
            try:
                committed = await self._consumer.committed(tp)
            except (KafkaError, IllegalStateError):
                continue
            topic = tp.topic[len(self._ns) :]
            lag[topic] = lag.get(topic, 0) + max(0, end.get(tp, 0) - (committed or 0))
        return lag
