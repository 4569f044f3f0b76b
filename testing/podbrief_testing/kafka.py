"""Kafka as a test sees it: every record on a topic, a consumer group's offsets, events published by hand.
Synchronous wrappers, so process-level tests (which wait on OS processes) need no event loop of their own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


async def _partitions(bootstrap: str, topic: str) -> list[Any]:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [desc] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if desc.get("error_code"):
        return []
    return [TopicPartition(topic, p["partition"]) for p in desc.get("partitions", ())]


async def _topic_records(bootstrap: str, topic: str, timeout_s: float) -> list[Any]:
    from aiokafka import AIOKafkaConsumer
    from podbrief.bus.kafka import read_to_end

    tps = await _partitions(bootstrap, topic)
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return await read_to_end(consumer, tps, timeout_s=timeout_s)
    finally:
        await consumer.stop()


def topic_records(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every record on `topic` now (aiokafka ConsumerRecords), read without a consumer group; [] if no topic."""
    import asyncio

    return asyncio.run(_topic_records(bootstrap, topic, timeout_s))


async def _group_offsets(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    from aiokafka import AIOKafkaConsumer

    tps = await _partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        end = await consumer.end_offsets(tps) if tps else {}
        committed = {tp.partition: int((await consumer.committed(tp)) or 0) for tp in tps}
        return committed, {tp.partition: int(off) for tp, off in end.items()}
    finally:
        await consumer.stop()


def group_offsets(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    """(committed, end) offsets of `topic` per partition for consumer `group` (full names, namespace included).
    A member of the group resumes at the committed offset; end minus committed is the group's lag."""
    import asyncio

    return asyncio.run(_group_offsets(bootstrap, topic, group))


async def _publish_events(bootstrap: str, topic: str, events: Sequence[Any], partitions: int) -> list[tuple[int, int]]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError
    from podbrief.events.codec import encode

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=16 << 20)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, encode(e), key=e.key.encode(), headers=[("event_type", e.event_type.encode())])
            for e in events
        ]
        placed = [await f for f in futures]
        return [(int(m.partition), int(m.offset)) for m in placed]
    finally:
        await producer.stop()


def publish_events(bootstrap: str, topic: str, events: Sequence[Any], partitions: int = 6) -> list[tuple[int, int]]:
    """Publish podbrief events in order to `topic` (created with `partitions` if missing, as a service would);
    returns each event's (partition, offset)."""
    import asyncio

    return asyncio.run(_publish_events(bootstrap, topic, events, partitions))
