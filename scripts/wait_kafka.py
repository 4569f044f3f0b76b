#!/usr/bin/env python3
"""Block until a Kafka broker can really serve clients, or fail.

An open port is not enough: a fresh KRaft broker accepts connections before the
controller has elected itself and before metadata reaches the broker, so the
first produce/commit in a test would flake.  Readiness here means a full round
trip through the same client library the services use: create+describe a topic
with a leader, produce one record, fetch that exact record back, and commit an
offset for a group (which forces the group coordinator and __consumer_offsets
up, otherwise the first test's group join hits GroupCoordinatorNotAvailable).

Usage: wait_kafka.py [--bootstrap 127.0.0.1:9092] [--timeout 90] [--pid PID]
Exit 0 when ready, 1 on deadline or if --pid dies. Messages go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

TOPIC = "__podbrief_readiness"
GROUP = "__podbrief_readiness"
TOPIC_ALREADY_EXISTS = 36


async def probe(bootstrap: str) -> None:
    # Short client timeouts so one attempt against a half-started broker fails
    # fast and the outer loop retries, instead of one attempt eating the deadline.
    common = {"bootstrap_servers": bootstrap, "request_timeout_ms": 5000}
    admin = AIOKafkaAdminClient(**common)
    await admin.start()
    try:
        resp = await admin.create_topics(
            [NewTopic(TOPIC, num_partitions=1, replication_factor=1)], timeout_ms=5000
        )
        for err in resp.topic_errors:
            code = err[1]
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"create_topics({TOPIC}) error code {code}: {err}")
        (meta,) = await admin.describe_topics([TOPIC])
        leaders = [p["leader"] for p in meta.get("partitions", [])]
        if meta["error_code"] != 0 or not leaders or min(leaders) < 0:
            raise RuntimeError(f"topic {TOPIC} has no leader yet: {meta}")
    finally:
        await admin.close()

    payload = uuid.uuid4().bytes
    producer = AIOKafkaProducer(acks="all", **common)
    await producer.start()
    try:
        md = await producer.send_and_wait(TOPIC, payload, partition=0)
    finally:
        await producer.stop()

    # assign+seek rather than subscribe: reads exactly the record it wrote and
    # skips a group join/rebalance; the commit alone exercises the coordinator.
    consumer = AIOKafkaConsumer(group_id=GROUP, enable_auto_commit=False, **common)
    await consumer.start()
    try:
        tp = TopicPartition(TOPIC, md.partition)
        consumer.assign([tp])
        consumer.seek(tp, md.offset)
        msg = await asyncio.wait_for(consumer.getone(), timeout=10)
        if msg.value != payload:
            raise RuntimeError(f"read back a different record at offset {md.offset}")
        await consumer.commit({tp: md.offset + 1})
    finally:
        await consumer.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A crashed child of our shell lingers as a zombie; that is dead too.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    port = os.environ.get("PODBRIEF_KAFKA_PORT", "9092")
    ap.add_argument("--bootstrap", default=f"127.0.0.1:{port}")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds")
    ap.add_argument("--pid", type=int, help="give up at once if this process exits")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    # Connection-refused retries are expected while the broker boots; without
    # this, aiokafka's warnings bury the one line that matters.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)

    deadline = time.monotonic() + args.timeout
    last: BaseException | None = None
    attempt = 0
    while time.monotonic() < deadline:
        if args.pid and not pid_alive(args.pid):
            sys.stderr.write(f"kafka process {args.pid} exited while waiting\n")
            return 1
        attempt += 1
        try:
            remaining = max(1.0, deadline - time.monotonic())
            await asyncio.wait_for(probe(args.bootstrap), timeout=min(30.0, remaining))
            sys.stderr.write(f"kafka ready at {args.bootstrap} (attempt {attempt})\n")
            return 0
        except Exception as exc:  # any failure just means "not ready yet"
            last = exc
            await asyncio.sleep(1.0)
    sys.stderr.write(
        f"kafka NOT ready at {args.bootstrap} after {args.timeout:.0f}s "
        f"({attempt} attempts); last error: {type(last).__name__}: {last}\n"
    )
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
