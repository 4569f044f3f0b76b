"""The bus services use: publish events, and run consumers that decode, call a plain async handler, retry with
backoff, dead-letter what cannot be handled, and commit only what is done."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from podbrief import logging as plog
from podbrief.bus.base import ConsumerTransport, Record, TopicPartition, Transport
from podbrief.bus.dlq import dead_letter_headers
from podbrief.errors import InvalidEventError, PermanentError, classify, is_retryable, is_unavailable, reason_of
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


class _Progress:
    """One partition's fetched offsets: which are not finished yet, and so how far a commit may reach.

    A rebalance can hand the same offsets out again while the first copies are still in flight, hence a count
    per offset rather than a set."""

    def __init__(self) -> None:
        self.unfinished: Counter[int] = Counter()
        self.fetched_to = 0  # one past the highest offset fetched
        self.committed = 0  # the last offset this consumer committed (0: none yet)

    def fetched(self, offset: int) -> None:
        self.unfinished[offset] += 1
        self.fetched_to = max(self.fetched_to, offset + 1)

    def finished(self, offset: int) -> None:
        self.unfinished[offset] -= 1
        if self.unfinished[offset] <= 0:
            del self.unfinished[offset]

    def commit_point(self) -> int | None:
        """The next offset to read after the contiguous run of finished ones; None when nothing new is done."""
        point = min(self.unfinished) if self.unfinished else self.fetched_to
        return point if point > self.committed else None


class Consumer:
    """Runs until stopped. Messages sharing a key are handled in order; different keys run concurrently up to
    `settings.concurrency`, with no barrier between them: a lane per key takes its next message as soon as the
    last one is done, and the fetch loop refills whenever fewer than `settings.max_in_flight` messages are
    waiting or running. The committed offset of a partition only ever covers a contiguous run of handled (or
    dead-lettered) messages, so a crash anywhere means redelivery, never loss; a slow message holds back the
    commit of its partition, never the handling of other keys."""

    def __init__(self, bus: Bus, subscriptions: list[Subscription[Any]], group: str) -> None:
        self.bus = bus
        self.settings = bus.settings
        self.group = group
        self.routes = {s.topic: s for s in subscriptions}
        self._transport: ConsumerTransport | None = None
        self._stopping = asyncio.Event()
        self._sem = asyncio.Semaphore(self.settings.concurrency)
        self._lanes: dict[tuple[str, int, bytes | None], deque[Record]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._progress: dict[TopicPartition, _Progress] = defaultdict(_Progress)
        self._in_flight = 0  # fetched and not yet finished
        self._wake = asyncio.Event()  # a message finished, a worker failed, or stop() was called
        self._dirty = asyncio.Event()  # a partition's finished prefix grew: something to commit
        self._failure: BaseException | None = None
        self.handled = 0

    @property
    def topics(self) -> list[str]:
        return list(self.routes)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        await self.bus.transport.ensure_topics([*self.topics, *(dlq_topic(t) for t in self.topics)])
        self._transport = self.bus.transport.consumer(self.topics, self.group)
        await self._transport.start()
        metrics = self.bus.metrics
        helpers = [self._guard(asyncio.create_task(self._commit_loop(), name=f"{self.group}-commit"))]
        if metrics:
            metrics.consumer_up.set(1)
            helpers.append(asyncio.create_task(self._report_lag(metrics), name=f"{self.group}-lag"))
        graceful = False
        try:
            await self._fetch_loop()
            if self._failure is None and self._workers:
                # Stopping: nothing new starts, the handlers in flight finish (and their lanes end there).
                await asyncio.wait(set(self._workers))
            if self._failure is not None:
                raise self._failure
            graceful = True
        finally:
            for task in (*helpers, *self._workers):
                task.cancel()
            await asyncio.gather(*helpers, *self._workers, return_exceptions=True)
            try:
                if graceful:
                    await self._commit()  # what finished since the last commit
            finally:
                if metrics:
                    metrics.consumer_up.set(0)
                await self._transport.stop()

    async def _fetch_loop(self) -> None:
        assert self._transport is not None
        bound = self.settings.max_in_flight
        while not self._stopping.is_set():
            if self._failure is not None:
                return  # a message could not even be dead-lettered, or a commit failed: the consumer dies
            if self._in_flight >= bound:  # back-pressure: the backlog stays in the broker
                self._wake.clear()
                await self._wake.wait()
                continue
            records = await self._transport.poll(0.5, bound - self._in_flight)
            if self._stopping.is_set():
                return  # fetched after the stop: never started, so never committed
            for record in records:
                self._dispatch(record)

    def _dispatch(self, record: Record) -> None:
        self._progress[(record.topic, record.partition)].fetched(record.offset)
        self._in_flight += 1
        lane_key = (record.topic, record.partition, record.key)
        lane = self._lanes.get(lane_key)
        if lane is not None:
            lane.append(record)  # its worker is running and takes it after the earlier ones
            return
        lane = self._lanes[lane_key] = deque([record])
        worker = self._guard(asyncio.create_task(self._run_lane(lane_key, lane), name=f"{self.group}-lane"))
        self._workers.add(worker)
        worker.add_done_callback(self._workers.discard)

    async def _run_lane(self, lane_key: tuple[str, int, bytes | None], lane: deque[Record]) -> None:
        """One key's messages, in offset order, one at a time; ends when its queue is empty."""
        try:
            while lane and not self._stopping.is_set():
                record = lane[0]
                async with self._sem:
                    # Checked once a slot is free: a lane waiting for a slot must not start after a stop.
                    if self._stopping.is_set() or not await self._handle_record(record):
                        return  # left uncommitted: redelivered to whoever owns the partition next
                lane.popleft()
                self._finished(record)
        finally:
            del self._lanes[lane_key]

    def _finished(self, record: Record) -> None:
        self._in_flight -= 1
        progress = self._progress[(record.topic, record.partition)]
        progress.finished(record.offset)
        if progress.commit_point() is not None:
            self._dirty.set()
        self._wake.set()

    def _guard(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """The first error of a lane or of the committer ends the consumer (run() raises it)."""

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None and self._failure is None:
                self._failure = t.exception()
                self._wake.set()

        task.add_done_callback(done)
        return task

    async def _commit_loop(self) -> None:
        # One commit at a time; completions that land while it is in flight go together into the next one.
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._commit()

    async def _commit(self) -> None:
        assert self._transport is not None
        offsets = {tp: point for tp, p in self._progress.items() if (point := p.commit_point()) is not None}
        if not offsets:
            return
        await self._transport.commit(offsets)
        for tp, point in offsets.items():
            self._progress[tp].committed = point

    async def _report_lag(self, metrics: BusMetrics) -> None:
        # On a timer, not after each message: a slow handler (transcription) can take many minutes, and the lag
        # is what shows a backlog building up behind it.
        assert self._transport is not None
        while True:
            try:
                for topic, lag in (await self._transport.lag()).items():
                    metrics.consumer_lag.labels(topic).set(lag)
            except Exception:
                log.debug("consumer lag not available", exc_info=True)
            await asyncio.sleep(LAG_REFRESH_S)

    async def _handle_record(self, record: Record) -> bool:
        """Handle one message, retrying as its error allows; True once it is handled or dead-lettered, False if a
        stop came during a retry's backoff (it is then left uncommitted)."""
        sub = self.routes[record.topic]
        metrics = self.bus.metrics
        event: Event | None = None
        try:
            event = decode(record.value, sub.model)
        except InvalidEventError as exc:
            await self._dead_letter(record, exc, attempts=0)
            return True
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
                            extra={
                                "topic": record.topic,
                                "attempts": attempt,
                                "error_class": classify(exc),
                                "reason": reason_of(exc),
                            },
                        )
                        await self._dead_letter(record, exc, attempts=attempt)
                        return True
                    # The exponent is capped: an outage may run to thousands of attempts.
                    delay = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** min(attempt - 1, 30))
                    delay *= 0.5 + random.random() / 2  # jitter, so replicas do not retry in lockstep
                    log.warning(
                        "handler failed; retrying",
                        extra={
                            "topic": record.topic,
                            "attempt": attempt,
                            "delay_s": round(delay, 3),
                            "reason": reason_of(exc),
                            "error": str(exc)[:500],
                        },
                    )
                    if metrics:
                        metrics.retries.labels(record.topic).inc()
                    try:
                        await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                    except TimeoutError:
                        continue
                    return False  # shutting down: leave it uncommitted
                else:
                    if metrics:
                        metrics.handler_seconds.labels(record.topic).observe(time.perf_counter() - started)
                        metrics.messages.labels(record.topic, "ok").inc()
                    self.handled += 1
                    return True

    async def _dead_letter(self, record: Record, exc: BaseException, *, attempts: int) -> None:
        headers = dead_letter_headers(record, exc, attempts=attempts, group=self.group)
        # If the DLQ itself cannot be written the consumer must stop here: committing would lose the message.
        await self.bus.transport.send(dlq_topic(record.topic), record.value, key=record.key, headers=headers)
        if self.bus.metrics:
            self.bus.metrics.dead_lettered.labels(record.topic, classify(exc), reason_of(exc)).inc()
            self.bus.metrics.messages.labels(record.topic, "dead_lettered").inc()


def make_transport(settings: BusSettings) -> Transport:
    if settings.kind == "memory":
        from podbrief.bus.memory import MemoryTransport

        return MemoryTransport(partitions=settings.kafka.partitions)
    from podbrief.bus.kafka import KafkaTransport

    return KafkaTransport(settings.kafka)


__all__ = ["Bus", "Consumer", "Handler", "PermanentError", "Publish", "Subscription", "make_transport"]
