"""The bus services use: publish events, and run consumers that decode, call a plain async handler, retry with
backoff, dead-letter what cannot be handled, and commit only what is done."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from podbrief import logging as plog
from podbrief.bus.base import ConsumerTransport, Record, TopicPartition, Transport
from podbrief.errors import InvalidEventError, PermanentError, classify, is_retryable, is_unavailable
from podbrief.events.base import Event
from podbrief.events.codec import decode, encode
from podbrief.events.topics import dlq_topic, topic_for
from podbrief.metrics import BusMetrics
from podbrief.settings import BusSettings

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)
LAG_REFRESH_S = 5.0
Handler = Callable[[E], Awaitable[None]]
# What handlers and domain code get to send events with (`Bus.publish`, or a fake in tests).
Publish = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class Subscription(Generic[E]):
    topic: str
    model: type[E]
    handler: Callable[[E], Awaitable[None]]


class Bus:
    def __init__(self, transport: Transport, settings: BusSettings, metrics: BusMetrics | None = None) -> None:
        self.transport = transport
        self.settings = settings
        self.metrics = metrics

    async def start(self) -> None:
        await self.transport.start()

    async def stop(self) -> None:
        await self.transport.stop()

    async def healthy(self) -> bool:
        return await self.transport.healthy()

    async def publish(self, event: Event, *, topic: str | None = None) -> None:
        topic = topic or topic_for(event.event_type)
        headers = (
            ("event_type", event.event_type.encode()),
            ("schema_version", str(event.schema_version).encode()),
            ("event_id", str(event.event_id).encode()),
            ("correlation_id", str(event.correlation_id).encode()),
        )
        await self.transport.send(topic, encode(event), key=event.key.encode(), headers=headers)
        if self.metrics:
            self.metrics.published.labels(topic).inc()

    def consumer(self, subscriptions: Sequence[Subscription[Any]], group: str) -> Consumer:
        return Consumer(self, list(subscriptions), group)


class Consumer:
    """Runs until stopped. Messages sharing a key are handled in order; different keys run concurrently up to
    `settings.concurrency`. The committed offset of a partition only ever covers handled (or dead-lettered)
    messages, so a crash anywhere means redelivery, never loss."""

    def __init__(self, bus: Bus, subscriptions: list[Subscription[Any]], group: str) -> None:
        self.bus = bus
        self.settings = bus.settings
        self.group = group
        self.routes = {s.topic: s for s in subscriptions}
        self._transport: ConsumerTransport | None = None
        self._stopping = asyncio.Event()
        self._sem = asyncio.Semaphore(self.settings.concurrency)
        self.handled = 0

    @property
    def topics(self) -> list[str]:
        return list(self.routes)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        await self.bus.transport.ensure_topics([*self.topics, *(dlq_topic(t) for t in self.topics)])
        self._transport = self.bus.transport.consumer(self.topics, self.group)
        await self._transport.start()
        metrics = self.bus.metrics
        reporter: asyncio.Task[None] | None = None
        if metrics:
            metrics.consumer_up.set(1)
            reporter = asyncio.create_task(self._report_lag(metrics), name=f"{self.group}-lag")
        try:
            while not self._stopping.is_set():
                records = await self._transport.poll(0.5, self.bus.settings.kafka.max_poll_records)
                if records:
                    await self._handle_batch(records)
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
            if metrics:
                metrics.consumer_up.set(0)
            await self._transport.stop()

    async def _report_lag(self, metrics: BusMetrics) -> None:
        # On a timer, not after each batch: a batch of slow handlers (transcription) can take many minutes, and
        # the lag is what shows a backlog building up behind it.
        assert self._transport is not None
        while True:
            try:
                for topic, lag in (await self._transport.lag()).items():
                    metrics.consumer_lag.labels(topic).set(lag)
            except Exception:
                log.debug("consumer lag not available", exc_info=True)
            await asyncio.sleep(LAG_REFRESH_S)

    async def _handle_batch(self, records: list[Record]) -> None:
        assert self._transport is not None
        lanes: dict[tuple[str, int, bytes | None], list[Record]] = defaultdict(list)
        for r in records:
            lanes[(r.topic, r.partition, r.key)].append(r)
        done: dict[TopicPartition, set[int]] = defaultdict(set)

        async def run_lane(lane: list[Record]) -> None:
            for r in lane:
                async with self._sem:
                    # Checked once a slot is free: every lane of the batch waits on the semaphore, so a check
                    # before it would let the whole batch, not just the in-flight handlers, run after a stop.
                    if self._stopping.is_set():
                        return  # left uncommitted: redelivered to whoever owns the partition next
                    await self._handle_record(r)
                done[(r.topic, r.partition)].add(r.offset)

        await asyncio.gather(*(run_lane(lane) for lane in lanes.values()))
        # Commit, per partition, the contiguous run of handled offsets from the batch's first offset.
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = (r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        commits: dict[TopicPartition, int] = {}
        for tp, start in first.items():
            nxt = start
            while nxt in done[tp]:
                nxt += 1
            if nxt > start:
                commits[tp] = nxt
        if commits:
            await self._transport.commit(commits)

    async def _handle_record(self, record: Record) -> None:
        sub = self.routes[record.topic]
        metrics = self.bus.metrics
        event: Event | None = None
        try:
            event = decode(record.value, sub.model)
        except InvalidEventError as exc:
            await self._dead_letter(record, exc, attempts=0)
            return
        with plog.bind(
            event_id=str(event.event_id),
            correlation_id=str(event.correlation_id),
            event_type=event.event_type,
            key=event.key,
        ):
            attempt = 0
            counted = 0  # attempts that count towards dead-lettering: not those refused by a down dependency
            while True:
                attempt += 1
                started = time.perf_counter()
                try:
                    await sub.handler(event)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    elapsed = time.perf_counter() - started
                    if metrics:
                        metrics.handler_seconds.labels(record.topic).observe(elapsed)
                    if not is_unavailable(exc):
                        counted += 1
                    if not is_retryable(exc) or counted >= self.settings.max_attempts:
                        log.error(
                            "handler failed; dead-lettering",
                            exc_info=exc,
                            extra={"topic": record.topic, "attempts": attempt, "error_class": classify(exc)},
                        )
                        await self._dead_letter(record, exc, attempts=attempt)
                        return
                    # The exponent is capped: an outage may run to thousands of attempts.
                    delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** min(attempt - 1, 30))
                    delay *= 0.5 + random.random() / 2  # jitter, so replicas do not retry in lockstep
                    log.warning(
                        "handler failed; retrying",
                        extra={
                            "topic": record.topic,
                            "attempt": attempt,
                            "delay_s": round(delay, 3),
                            "error": str(exc)[:500],
                        },
                    )
                    if metrics:
                        metrics.retries.labels(record.topic).inc()
                    try:
                        await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                    except TimeoutError:
                        continue
                    raise asyncio.CancelledError from exc  # shutting down: leave it uncommitted
                else:
                    if metrics:
                        metrics.handler_seconds.labels(record.topic).observe(time.perf_counter() - started)
                        metrics.messages.labels(record.topic, "ok").inc()
                    self.handled += 1
                    return

    async def _dead_letter(self, record: Record, exc: BaseException, *, attempts: int) -> None:
        error_class = classify(exc)
        headers = (
            *((k, v) for k, v in record.headers if not k.startswith("x-")),
            ("x-error-class", error_class.encode()),
            ("x-error-type", type(exc).__name__.encode()),
            ("x-error-message", str(exc)[:2000].encode("utf-8", "replace")),
            ("x-error-reason", getattr(exc, "reason", type(exc).__name__).encode()),
            ("x-original-topic", record.topic.encode()),
            ("x-original-partition", str(record.partition).encode()),
            ("x-original-offset", str(record.offset).encode()),
            ("x-attempts", str(attempts).encode()),
            ("x-consumer-group", self.group.encode()),
        )
        # If the DLQ itself cannot be written the consumer must stop here: committing would lose the message.
        await self.bus.transport.send(dlq_topic(record.topic), record.value, key=record.key, headers=headers)
        if self.bus.metrics:
            self.bus.metrics.dead_lettered.labels(record.topic, error_class).inc()
            self.bus.metrics.messages.labels(record.topic, "dead_lettered").inc()


def make_transport(settings: BusSettings) -> Transport:
    if settings.kind == "memory":
        from podbrief.bus.memory import MemoryTransport

        return MemoryTransport(partitions=settings.kafka.partitions)
    from podbrief.bus.kafka import KafkaTransport

    return KafkaTransport(settings.kafka)


__all__ = ["Bus", "Consumer", "Handler", "PermanentError", "Publish", "Subscription", "make_transport"]
