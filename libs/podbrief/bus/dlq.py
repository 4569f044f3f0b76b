"""Dead letters: what a consumer writes to `<topic>.dlq` when a message keeps failing (the message as it was,
the error in its headers), and what an operator does with them: list, show, and replay into the source topic
once the cause is fixed. Works on any transport (Kafka, the in-process bus and its file store).

Replay is idempotent: each dead letter replayed is recorded on `<topic>.dlq.replayed`, keyed by its place in
the DLQ, and one recorded there is not sent again, however often replay runs. A crash between the send and the
record sends it once more at the next replay; the handlers are idempotent (deterministic ids, write before
publish), so that costs no duplicate effect. A replayed message that fails again is dead-lettered again, as a
new dead letter that a later replay can send.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from podbrief.bus.base import Headers, Record, Transport
from podbrief.clock import utcnow
from podbrief.errors import classify, reason_of
from podbrief.events.topics import TOPICS, dlq_topic

# The headers a dead letter carries besides the message's own (which start with no "x-").
ERROR_CLASS = "x-error-class"
ERROR_TYPE = "x-error-type"
ERROR_MESSAGE = "x-error-message"
ERROR_REASON = "x-error-reason"
ORIGINAL_TOPIC = "x-original-topic"
ORIGINAL_PARTITION = "x-original-partition"
ORIGINAL_OFFSET = "x-original-offset"
ATTEMPTS = "x-attempts"
CONSUMER_GROUP = "x-consumer-group"
# On a replayed message: the dead letter it came from ("<dlq topic>:<partition>:<offset>").
REPLAYED_FROM = "x-replayed-from"


def dead_letter_headers(record: Record, exc: BaseException, *, attempts: int, group: str) -> Headers:
    """The headers of `record` dead-lettered after `exc`: its own, and the error."""
    return (
        *((k, v) for k, v in record.headers if not k.startswith("x-")),
        (ERROR_CLASS, classify(exc).encode()),
        (ERROR_TYPE, type(exc).__name__.encode()),
        (ERROR_MESSAGE, str(exc)[:2000].encode("utf-8", "replace")),
        (ERROR_REASON, reason_of(exc).encode()),
        (ORIGINAL_TOPIC, record.topic.encode()),
        (ORIGINAL_PARTITION, str(record.partition).encode()),
        (ORIGINAL_OFFSET, str(record.offset).encode()),
        (ATTEMPTS, str(attempts).encode()),
        (CONSUMER_GROUP, group.encode()),
    )


def replay_ledger(source_topic: str) -> str:
    return dlq_topic(source_topic) + ".replayed"


def source_topic(name: str) -> str:
    """The topic whose dead letters `name` means: a topic, its `.dlq`, or a short name (`episode.discovered`)."""
    name = name.strip()
    name = name.removesuffix(".replayed").removesuffix(".dlq")
    return TOPICS.get(name, name)


@dataclass(frozen=True)
class DeadLetter:
    record: Record  # as it sits on the DLQ topic
    replayed_at: str | None = None  # when a replay sent it back, if one did

    @property
    def id(self) -> str:
        """Its place in the DLQ, `<partition>:<offset>`: what `show` and `replay` select by."""
        return f"{self.record.partition}:{self.record.offset}"

    def _h(self, name: str, default: str = "") -> str:
        value = self.record.header(name)
        return value if value is not None else default

    @property
    def topic(self) -> str:
        return self._h(ORIGINAL_TOPIC) or source_topic(self.record.topic)

    @property
    def reason(self) -> str:
        return self._h(ERROR_REASON, "unexpected")

    @property
    def error_class(self) -> str:
        return self._h(ERROR_CLASS)

    @property
    def error_type(self) -> str:
        return self._h(ERROR_TYPE)

    @property
    def message(self) -> str:
        return self._h(ERROR_MESSAGE)

    @property
    def attempts(self) -> int:
        raw = self._h(ATTEMPTS, "0")
        return int(raw) if raw.isdigit() else 0

    @property
    def consumer_group(self) -> str:
        return self._h(CONSUMER_GROUP)

    @property
    def key(self) -> str | None:
        return self.record.key.decode("utf-8", "replace") if self.record.key is not None else None

    @property
    def event_type(self) -> str:
        return self._h("event_type")

    @property
    def event_id(self) -> str:
        return self._h("event_id")

    @property
    def dead_lettered_at(self) -> str | None:
        ts = self.record.timestamp_ms
        return datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="seconds") if ts is not None else None

    def as_dict(self, *, with_value: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "id": self.id,
            "topic": self.topic,
            "key": self.key,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "error_class": self.error_class,
            "error_type": self.error_type,
            "reason": self.reason,
            "message": self.message,
            "attempts": self.attempts,
            "consumer_group": self.consumer_group,
            "original": f"{self._h(ORIGINAL_PARTITION)}:{self._h(ORIGINAL_OFFSET)}",
            "dead_lettered_at": self.dead_lettered_at,
            "replayed_at": self.replayed_at,
        }
        if with_value:
            out["headers"] = {k: v.decode("utf-8", "replace") for k, v in self.record.headers}
            out["value"] = self.record.value.decode("utf-8", "replace")
        return out


async def _replayed(transport: Transport, topic: str) -> dict[str, str]:
    """Dead-letter id -> when it was replayed, from the ledger."""
    out: dict[str, str] = {}
    for r in await transport.read(replay_ledger(topic)):
        if r.key is None:
            continue
        try:
            at = str(json.loads(r.value).get("replayed_at", ""))
        except (ValueError, AttributeError):
            at = ""
        out[r.key.decode()] = at
    return out


async def dead_letters(transport: Transport, topic: str) -> list[DeadLetter]:
    """Every dead letter of `topic` (see `source_topic` for the names it takes), oldest first per partition."""
    source = source_topic(topic)
    replayed = await _replayed(transport, source)
    return [DeadLetter(r, replayed.get(f"{r.partition}:{r.offset}")) for r in await transport.read(dlq_topic(source))]


@dataclass
class ReplayReport:
    topic: str
    replayed: list[str] = field(default_factory=list)  # ids sent back now
    already: list[str] = field(default_factory=list)  # ids a replay had sent before: not sent again
    unknown: list[str] = field(default_factory=list)  # ids asked for that the DLQ does not hold


async def replay(
    transport: Transport,
    topic: str,
    *,
    ids: Collection[str] | None = None,
    reasons: Collection[str] | None = None,
    now: datetime | None = None,
) -> ReplayReport:
    """Send dead letters of `topic` back to it: those with the given ids, or with one of the given reasons, or
    (neither given) all of them. Each is sent once, ever (see the module's docstring)."""
    source = source_topic(topic)
    report = ReplayReport(source)
    letters = await dead_letters(transport, source)
    by_id = {d.id: d for d in letters}
    if ids is not None:
        report.unknown = sorted(set(ids) - set(by_id))
        chosen: Sequence[DeadLetter] = [by_id[i] for i in ids if i in by_id]
    else:
        chosen = letters
    if reasons is not None:
        chosen = [d for d in chosen if d.reason in reasons]
    await transport.ensure_topics([source, replay_ledger(source)])
    stamp = (now or utcnow()).isoformat(timespec="seconds")
    for d in chosen:
        if d.replayed_at is not None:
            report.already.append(d.id)
            continue
        origin = f"{d.record.topic}:{d.id}"
        headers = (*((k, v) for k, v in d.record.headers if not k.startswith("x-")), (REPLAYED_FROM, origin.encode()))
        await transport.send(source, d.record.value, key=d.record.key, headers=headers)
        await transport.send(
            replay_ledger(source),
            json.dumps({"dead_letter": origin, "replayed_at": stamp}).encode(),
            key=d.id.encode(),
        )
        report.replayed.append(d.id)
    return report


__all__ = ["DeadLetter", "ReplayReport", "dead_letter_headers", "dead_letters", "replay", "source_topic"]
