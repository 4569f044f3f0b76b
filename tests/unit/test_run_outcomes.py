"""How `podbrief run` reads each episode's fate from the bus (podbrief_run.outcomes), and when it exits 1: an
episode is followed from topic to topic by its key until a dead letter or a gap; work an earlier run left, and
replayed dead letters, are told apart from this run's new episodes."""

from __future__ import annotations

import uuid

import pytest
from podbrief.bus import Bus, MemoryTransport, Record, dlq
from podbrief.events import (
    EpisodeDiscovered,
    EpisodeDiscoveredPayload,
    EpisodeRef,
    EpisodeTranscribed,
    EpisodeTranscribedPayload,
    InsightsExtracted,
    InsightsExtractedPayload,
    PackedTranscript,
    Transcript,
    new_event,
)
from podbrief.events import topics as t
from podbrief.events.codec import encode
from podbrief.events.ids import episode_id, feed_id
from podbrief.settings import BusSettings
from podbrief_run.outcomes import (
    BriefOutcome,
    BriefSource,
    BusMark,
    EpisodeOutcome,
    FeedOutcome,
    RunReport,
    trace_episodes,
)

pytestmark = pytest.mark.unit

FEED = "http://feeds.example.com/show.xml"


def ref(guid: str) -> EpisodeRef:
    return EpisodeRef(
        episode_id=episode_id(FEED, guid), feed_id=feed_id(FEED), feed_url=FEED, show="Show", title=f"Title {guid}"
    )


def discovered(guid: str) -> EpisodeDiscovered:
    r = ref(guid)
    return new_event(
        EpisodeDiscovered,
        EpisodeDiscoveredPayload(episode=r, guid=guid),
        key=str(r.episode_id),
        correlation_id=r.episode_id,
    )


def transcribed(guid: str) -> EpisodeTranscribed:
    r = ref(guid)
    packed = PackedTranscript.pack(Transcript(text="hello", duration_s=61.0, source="whisper"))
    payload = EpisodeTranscribedPayload(episode=r, transcript=packed, source="whisper", duration_s=61.0)
    return new_event(EpisodeTranscribed, payload, key=str(r.episode_id), correlation_id=r.episode_id)


def extracted(guid: str) -> InsightsExtracted:
    r = ref(guid)
    payload = InsightsExtractedPayload(
        episode=r, insights=(), chunks_total=1, chunks_failed=0, model="m", prompt_version="v"
    )
    return new_event(InsightsExtracted, payload, key=str(r.episode_id), correlation_id=r.episode_id)


async def dead(transport: MemoryTransport, topic: str, event: EpisodeDiscovered, reason: str) -> None:
    from podbrief.errors import RetryableError

    record = Record(topic, 0, 0, event.key.encode(), encode(event), (("event_id", str(event.event_id).encode()),))
    exc = RetryableError("cannot resolve audio.example", reason=reason)  # type: ignore[arg-type]
    headers = dlq.dead_letter_headers(record, exc, attempts=4, group="transcription")
    await transport.send(t.dlq_topic(topic), encode(event), key=event.key.encode(), headers=headers)


async def test_each_episode_is_followed_to_its_last_stage() -> None:
    transport = MemoryTransport(partitions=2)
    bus = Bus(transport, BusSettings(kind="memory"))
    await bus.start()
    await transport.ensure_topics([t.EPISODE_DISCOVERED, t.dlq_topic(t.EPISODE_DISCOVERED)])
    # Left by an earlier run: published, not yet handled by transcription.
    await bus.publish(discovered("left"))
    mark = BusMark.take(transport)
    for guid in ("done", "failed", "stuck"):
        await bus.publish(discovered(guid))
    await bus.publish(transcribed("done"))
    await bus.publish(extracted("done"))  # no insights: through
    await bus.publish(transcribed("stuck"))  # extraction never answered
    await dead(transport, t.EPISODE_DISCOVERED, discovered("failed"), "dns")
    episodes = {e.title: e for e in trace_episodes(transport, mark)}
    await bus.stop()

    assert set(episodes) == {"Title left", "Title done", "Title failed", "Title stuck"}
    assert episodes["Title left"].origin == "earlier" and episodes["Title left"].state == "unfinished"
    done = episodes["Title done"]
    assert (done.state, done.transcript_source, done.duration_s, done.insights) == ("done", "whisper", 61.0, 0)
    failed = episodes["Title failed"]
    assert (failed.state, failed.stage, failed.reason, failed.attempts) == ("failed", "transcription", "dns", 4)
    assert (episodes["Title stuck"].state, episodes["Title stuck"].stage) == ("unfinished", "extraction")


def test_exit_code() -> None:
    ep = uuid.uuid4()
    ok = EpisodeOutcome(ep, None, "S", "T", "done")
    failed = EpisodeOutcome(uuid.uuid4(), None, "S", "T", "failed", stage="transcription", reason="dns")
    polled = FeedOutcome("f", "http://f", "polled", new=1)
    broken = FeedOutcome("g", "http://g", "failed", reason="dns")
    none = BriefOutcome("none")
    note = BriefOutcome("composed", kind="note")
    brief = BriefOutcome("composed", kind="full", sources=[BriefSource(ep, "S", "T", 1, True)])
    earlier = BriefOutcome("earlier", kind="full", sources=[BriefSource(ep, "S", "T", 1, False)])

    assert RunReport([polled], [failed], none).exit_code() == 1  # nothing processed, no brief
    assert RunReport([polled], [failed], note).exit_code() == 1  # a note is not a brief from the feeds
    assert RunReport([polled], [failed], earlier).exit_code() == 1  # an earlier brief is not this run's
    assert RunReport([broken], [], note).exit_code() == 1  # the only feed failed
    assert RunReport([polled], [failed, ok], note).exit_code() == 0  # one episode went through
    assert RunReport([broken], [], brief).exit_code() == 0  # a brief came of the run's feeds
    assert RunReport([polled], [], earlier).exit_code() == 0  # nothing new, nothing failed: not an error
    assert RunReport([polled], [], note, timed_out=True).exit_code() == 1
