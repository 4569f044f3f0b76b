"""SIGTERM in the middle of real work, for each service as its own OS process on the shared Kafka and PostgreSQL.

Every scenario asserts: the process exits 0 within a stated bound; the in-flight message either finished, was
published and its offset committed, or was left uncommitted and is handled after a restart; so the work is
done exactly once in effect. Figures go to test-artifacts/faults/shutdown.json.

The bound: uvicorn gives open HTTP requests `shutdown_timeout_s`, then the chassis gives the consumer's
in-flight handlers `shutdown_timeout_s` before cancelling them, then closes its dependencies and flushes the
producer. Each scenario sets SHUTDOWN_TIMEOUT_S and allows 2x that plus a margin for closing and the flush."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
from podbrief.events import (
    EpisodeDiscovered,
    EpisodeDiscoveredPayload,
    EpisodeRef,
    EpisodeTranscribed,
    EpisodeTranscribedPayload,
    Event,
    Insight,
    InsightClustered,
    InsightClusteredPayload,
    InsightsExtracted,
    InsightsExtractedPayload,
    PackedTranscript,
    Segment,
    Transcript,
    decode,
    new_event,
)
from podbrief.events.ids import episode_id, feed_id, insight_id
from podbrief.events.topics import (
    EPISODE_DISCOVERED,
    EPISODE_TRANSCRIBED,
    INSIGHT_CLUSTERED,
    INSIGHTS_EXTRACTED,
)
from podbrief_testing import (
    LoopbackServer,
    ServiceProcess,
    create_database,
    free_port,
    group_offsets,
    publish_events,
    scrape_metric,
    topic_records,
)
from podbrief_testing.llm import LoopbackOpenAI

pytestmark = pytest.mark.faults

ARTIFACTS = Path("test-artifacts/faults")
PARTITIONS = 6
# Closing dependencies (database pools, the model server) and flushing the producer, on a busy 2-core machine.
CLOSE_MARGIN_S = 15.0
# The longest a Whisper worker thread runs before it sees that its job was abandoned, on a busy 2-core machine.
WHISPER_STEP_S = 45.0


# --- Kafka and PostgreSQL, read and written from the test ------------------------------------------------------


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    return topic_records(bootstrap, topic)


def offsets(bootstrap: str, topic: str, group: str) -> tuple[dict[int, int], dict[int, int]]:
    return group_offsets(bootstrap, topic, group)


def publish(bootstrap: str, topic: str, events: list[Event]) -> list[tuple[int, int]]:
    return publish_events(bootstrap, topic, events, partitions=PARTITIONS)


async def _scalar(db_url: str, sql: str) -> Any:
    import asyncpg

    conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def scalar(db_url: str, sql: str) -> Any:
    return asyncio.run(_scalar(db_url, sql))


# --- the services -------------------------------------------------------------------------------------------------


@dataclass
class Rig:
    """One test's isolation: a Kafka namespace, a database, a data directory; and the shared broker."""

    bootstrap: str
    ns: str
    db_url: str
    tmp: Path
    admin_key: str

    def topic(self, name: str) -> str:
        return self.ns + name

    def group(self, service: str) -> str:
        return self.ns + service

    def service(self, name: str, shutdown_timeout_s: float, **extra: str) -> ServiceProcess:
        env = {
            "BUS__KIND": "kafka",
            "BUS__KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BUS__KAFKA__NAMESPACE": self.ns,
            "BUS__KAFKA__PARTITIONS": str(PARTITIONS),
            "DB__URL": self.db_url,
            "HTTP__ADMIN_API_KEY": self.admin_key,
            "DATA_DIR": str(self.tmp / name),
            "LOG_LEVEL": "INFO",
            "SHUTDOWN_TIMEOUT_S": str(shutdown_timeout_s),
            **extra,
        }
        return ServiceProcess(name, {f"{name.upper()}_{k}": v for k, v in env.items()}, free_port(), ARTIFACTS)


@pytest.fixture
def rig(tmp_path: Path, kafka_bootstrap: str, pg_url: str, unique: str) -> Rig:
    db_url = create_database(pg_url, f"faults_{unique}")
    return Rig(kafka_bootstrap, f"t{unique}.", db_url, tmp_path, uuid.uuid4().hex)


@pytest.fixture
def running() -> Iterator[list[ServiceProcess]]:
    """Processes a test starts; whatever is still alive at the end is killed."""
    procs: list[ServiceProcess] = []
    yield procs
    for p in procs:
        p.kill()


def start(procs: list[ServiceProcess], proc: ServiceProcess, timeout_s: float = 240) -> ServiceProcess:
    procs.append(proc.start())
    proc.wait_ready(timeout_s=timeout_s)
    return proc


def sigterm(proc: ServiceProcess, bound_s: float) -> tuple[int, float]:
    """SIGTERM, then wait for the exit; a process still running after the bound is killed (and fails)."""
    children = psutil.Process(proc.proc.pid).children(recursive=True)
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.proc.wait(timeout=bound_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"{proc.name} still running {bound_s:.0f}s after SIGTERM:\n{proc.tail()}")
    seconds = time.monotonic() - started
    left = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"{proc.name} left child processes running: {[c.cmdline() for c in left]}"
    assert rc == 0, f"{proc.name} exited {rc} after SIGTERM:\n{proc.tail()}"
    return rc, seconds


def wait_until(cond: Callable[[], bool], what: str, timeout_s: float, proc: ServiceProcess | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"{proc.name} died while waiting for {what}:\n{proc.tail()}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f":\n{proc.tail()}" if proc else ""))


def metric(proc: ServiceProcess, name: str) -> float:
    return scrape_metric(proc.base_url, name)


def record(scenario: str, **figures: Any) -> None:
    """Adds one scenario's figures to shutdown.json (other scenarios' entries are kept)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "shutdown.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[scenario] = {**figures, "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\n[shutdown] {scenario}: {json.dumps(figures, sort_keys=True)}")  # noqa: T201 (shown with -s)


# --- fakes the services talk to -----------------------------------------------------------------------------------

LINE = "Heat pumps in Norway now outsell gas boilers three to one, the installer said."
SYNTHESIS = "The installer says heat pumps in Norway now outsell gas boilers three to one."
# One answer for every call of the extraction, whichever way it runs (each stage reads only its own keys): pick
# sentence 1 and write a synthesis of it in the same point (the default pick-and-write call) or in the answer
# itself (a separate write call), then judge it supported.
ANSWER = json.dumps(
    {
        "p": [
            {
                "s": 1,
                "e": 1,
                "h": "heat pumps outsell gas boilers in Norway",
                "t": SYNTHESIS,
                "k": "data_point",
                "tp": ["heat pumps"],
                "w": 4,
            }
        ],
        "t": SYNTHESIS,
        "k": "data_point",
        "tp": ["heat pumps"],
        "r": "the passage says so",
        "v": "supported",
    }
)


def rss_feed(server: LoopbackServer, items: int, title: str = "Slow Show") -> str:
    from datetime import UTC, datetime, timedelta

    base = datetime(2026, 11, 1, tzinfo=UTC)
    entries = "".join(
        f"<item><title>Episode {i}</title><guid isPermaLink='false'>ep-{i}</guid>"
        f"<pubDate>{format_datetime(base + timedelta(hours=i))}</pubDate>"
        f"<enclosure url='{server.base_url}/audio/{i}.mp3' type='audio/mpeg' length='1000'/></item>"
        for i in range(items)
    )
    return (
        "<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel>"
        f"<title>{title}</title><link>{server.base_url}/</link><description>fault test</description>"
        f"{entries}</channel></rss>"
    )


def episode_ref(n: int, *, enclosure: str | None = None, show: str = "Energy Hour") -> EpisodeRef:
    feed_url = "http://feeds.test/energy.xml"
    return EpisodeRef(
        episode_id=episode_id(feed_url, f"ep-{n}"),
        feed_id=feed_id(feed_url),
        feed_url=feed_url,
        show=show,
        title=f"Episode {n}",
        enclosure_url=enclosure,
    )


def discovered(n: int, enclosure: str) -> EpisodeDiscovered:
    ref = episode_ref(n, enclosure=enclosure)
    return new_event(
        EpisodeDiscovered,
        EpisodeDiscoveredPayload(episode=ref, guid=f"ep-{n}"),
        key=str(ref.episode_id),
        correlation_id=ref.episode_id,
    )


def transcribed(n: int) -> EpisodeTranscribed:
    t = Transcript(text=LINE, language="en", duration_s=30.0, segments=(Segment(start_s=12.0, end_s=17.5, text=LINE),))
    ref = episode_ref(n)
    payload = EpisodeTranscribedPayload(
        episode=ref, transcript=PackedTranscript.pack(t), source="whisper", duration_s=30.0, language="en"
    )
    return new_event(EpisodeTranscribed, payload, key=str(ref.episode_id), correlation_id=ref.episode_id)


TOPICS_TEXT = [
    "Home batteries now pay for themselves in under seven years in sunny regions",
    "The central bank signalled two more rate cuts before the summer",
    "Sourdough starters need feeding twice a day when kept at room temperature",
    "The new telescope found water vapour in the atmosphere of a distant planet",
    "Marathon runners recover faster when they sleep more than eight hours",
]


def extracted(n: int, insights: int) -> InsightsExtracted:
    ref = episode_ref(n, show=f"Show {n % 7}")
    items = []
    for k in range(insights):
        text = f"{TOPICS_TEXT[(n + k) % len(TOPICS_TEXT)]} (episode {n}, point {k})"
        items.append(
            Insight(
                insight_id=insight_id(ref.episode_id, text, float(k)),
                text=text,
                quote=text,
                start_s=float(k),
                end_s=float(k) + 5,
            )
        )
    payload = InsightsExtractedPayload(
        episode=ref, insights=tuple(items), chunks_total=1, chunks_failed=0, model="fake", prompt_version="v1"
    )
    return new_event(InsightsExtracted, payload, key=str(ref.episode_id), correlation_id=ref.episode_id)


def clustered(n: int) -> InsightClustered:
    ref = episode_ref(n, show=f"Show {n % 7}")
    text = f"{TOPICS_TEXT[n % len(TOPICS_TEXT)]} (item {n})"
    ins = Insight(insight_id=insight_id(ref.episode_id, text, 1.0), text=text, quote=text, start_s=1.0, end_s=6.0)
    payload = InsightClusteredPayload(
        episode=ref,
        insight=ins,
        cluster_id=uuid.uuid5(uuid.NAMESPACE_URL, f"c{n % 5}"),
        cluster_size=1,
        cluster_shows=1,
        # Another model's name: delivery embeds the text itself, which makes each message real work.
        embedding_model="some-other-model",
        vector=tuple(float(x) for x in np.ones(8) / np.sqrt(8)),
    )
    return new_event(InsightClustered, payload, key=str(ref.episode_id), correlation_id=ref.episode_id)


# --- the scenarios ------------------------------------------------------------------------------------------------


def test_ingest_sigterm_mid_poll_abandons_the_poll_and_the_restart_emits_each_episode_once(
    rig: Rig, loopback: LoopbackServer, running: list[ServiceProcess]
) -> None:
    timeout_s = 5.0
    settings = {
        "NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]',
        "BACKFILL_LIMIT": "-1",
        "POLL_TICK_S": "0.5",
        "POLL_INTERVAL_S": "1",
        "MIN_POLL_INTERVAL_S": "1",
        "POLL_JITTER": "0",
        "OUTBOX_SWEEP_S": "1",
        # A poll abandoned by SIGTERM keeps its lease until it runs out; short here so the restart retakes it.
        "FETCH_DEADLINE_S": "9",
        "LEASE_S": "10",
    }
    topic = rig.topic(EPISODE_DISCOVERED)
    feed_url = loopback.add("/feed.xml", rss_feed(loopback, 2), "application/rss+xml")
    ingest = start(running, rig.service("ingest", timeout_s, **settings))
    r = httpx.post(
        ingest.base_url + "/v1/feeds", json={"url": feed_url}, headers={"X-API-Key": rig.admin_key}, timeout=30
    )
    assert r.status_code == 201, r.text
    wait_until(lambda: len(read_topic(rig.bootstrap, topic)) >= 2, "the first two episodes", 30, ingest)

    # Two new items, served slowly: the next poll is in flight when SIGTERM arrives.
    hits = loopback.hits["/feed.xml"]
    loopback.add("/feed.xml", rss_feed(loopback, 4), "application/rss+xml", delay_s=8)
    wait_until(lambda: loopback.hits["/feed.xml"] > hits, "a poll of the slow feed", 30, ingest)
    time.sleep(0.5)  # the request is now inside the server's 8 s delay
    bound = 2 * timeout_s + CLOSE_MARGIN_S
    rc, seconds = sigterm(ingest, bound)
    after_stop = {decode(m.value).event_id for m in read_topic(rig.bootstrap, topic)}
    assert len(after_stop) == 2, "the abandoned poll published something"

    loopback.add("/feed.xml", rss_feed(loopback, 4), "application/rss+xml")
    restarted = start(running, rig.service("ingest", timeout_s, **settings))
    wait_until(
        lambda: len(read_topic(rig.bootstrap, topic)) >= 4, "the two new episodes after the restart", 60, restarted
    )
    time.sleep(3)  # a few more polls and outbox sweeps: nothing may be emitted twice
    events = [decode(m.value, EpisodeDiscovered) for m in read_topic(rig.bootstrap, topic)]
    by_episode: dict[uuid.UUID, set[uuid.UUID]] = {}
    for e in events:
        by_episode.setdefault(e.payload.episode.episode_id, set()).add(e.event_id)
    assert len(by_episode) == 4 and all(len(ids) == 1 for ids in by_episode.values()), by_episode
    sigterm(restarted, bound)
    record(
        "ingest: SIGTERM while a feed poll waits on a slow server",
        service="ingest",
        shutdown_timeout_s=timeout_s,
        bound_s=bound,
        exit_code=rc,
        seconds_to_exit=round(seconds, 2),
        in_flight="abandoned (no commit): the restart re-polled after the lease and emitted the 2 new episodes once",
        episodes_on_topic=len(by_episode),
        events_on_topic=len(events),
    )


def test_extraction_sigterm_while_the_llm_answers_slowly_finishes_publishes_and_commits(
    rig: Rig, running: list[ServiceProcess]
) -> None:
    timeout_s = 20.0
    llm = LoopbackOpenAI(ANSWER, delay_s=5.0)
    try:
        settings = {"LLM__BASE_URL": llm.base_url, "LLM__MODEL": "fake", "LLM__MAX_RETRIES": "0"}
        extraction = start(running, rig.service("extraction", timeout_s, **settings))
        event = transcribed(1)
        publish(rig.bootstrap, rig.topic(EPISODE_TRANSCRIBED), [event])
        wait_until(lambda: llm.completions >= 1, "the LLM request", 60, extraction)
        rc, seconds = sigterm(extraction, 2 * timeout_s + CLOSE_MARGIN_S)
        assert seconds >= 3.0, "it exited before the in-flight LLM answer arrived"
        out = [decode(m.value, InsightsExtracted) for m in read_topic(rig.bootstrap, rig.topic(INSIGHTS_EXTRACTED))]
        assert [o.payload.episode.episode_id for o in out] == [event.payload.episode.episode_id]
        assert len(out[0].payload.insights) == 1
        committed, end = offsets(rig.bootstrap, rig.topic(EPISODE_TRANSCRIBED), rig.group("extraction"))
        assert committed == end, (committed, end)

        # A restart in the same group does not redo it: no second LLM call, no second event.
        calls = llm.completions
        restarted = start(running, rig.service("extraction", timeout_s, **settings))
        time.sleep(5)
        assert llm.completions == calls
        assert len(read_topic(rig.bootstrap, rig.topic(INSIGHTS_EXTRACTED))) == 1
        sigterm(restarted, 2 * timeout_s + CLOSE_MARGIN_S)
    finally:
        llm.stop()
    record(
        "extraction: SIGTERM while the LLM takes 5 s to answer",
        service="extraction",
        shutdown_timeout_s=timeout_s,
        bound_s=2 * timeout_s + CLOSE_MARGIN_S,
        exit_code=rc,
        seconds_to_exit=round(seconds, 2),
        in_flight="finished during the drain: InsightsExtracted published, offset committed, not redone on restart",
    )


def test_extraction_sigterm_stops_the_embedded_llama_server(rig: Rig, running: list[ServiceProcess]) -> None:
    timeout_s = 10.0
    # The small packaged model: this checks the process tree on shutdown, not the model.
    extraction = start(running, rig.service("extraction", timeout_s, MODEL_PRESET="tiny"))
    children = psutil.Process(extraction.proc.pid).children(recursive=True)
    assert any("llama-server" in " ".join(c.cmdline()) for c in children), "no embedded llama-server child"
    rc, seconds = sigterm(extraction, 2 * timeout_s + CLOSE_MARGIN_S)  # asserts no child is left
    record(
        "extraction: SIGTERM with the embedded llama-server running",
        service="extraction",
        shutdown_timeout_s=timeout_s,
        bound_s=2 * timeout_s + CLOSE_MARGIN_S,
        exit_code=rc,
        seconds_to_exit=round(seconds, 2),
        in_flight="none; the llama-server child process is stopped",
    )


def test_transcription_sigterm_during_a_slow_download_leaves_it_uncommitted_and_the_restart_does_it_once(
    rig: Rig, loopback: LoopbackServer, running: list[ServiceProcess], shared_dir: Path
) -> None:
    timeout_s = 3.0
    audio = (shared_dir / "data/audio/jfk.flac").read_bytes()
    url = loopback.add("/slow.flac", audio, "audio/flac", delay_s=25)
    settings = {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]', "CPU_THREADS": "1"}
    transcription = start(running, rig.service("transcription", timeout_s, **settings))
    event = discovered(1, url)
    publish(rig.bootstrap, rig.topic(EPISODE_DISCOVERED), [event])
    wait_until(lambda: loopback.hits.get("/slow.flac", 0) >= 1, "the enclosure download", 60, transcription)
    bound = 2 * timeout_s + CLOSE_MARGIN_S
    rc, seconds = sigterm(transcription, bound)
    committed, end = offsets(rig.bootstrap, rig.topic(EPISODE_DISCOVERED), rig.group("transcription"))
    assert sum(committed.values()) == 0 and sum(end.values()) == 1, (committed, end)
    assert read_topic(rig.bootstrap, rig.topic(EPISODE_TRANSCRIBED)) == []

    loopback.add("/slow.flac", audio, "audio/flac")
    restarted = start(running, rig.service("transcription", timeout_s, **settings))
    wait_until(
        lambda: len(read_topic(rig.bootstrap, rig.topic(EPISODE_TRANSCRIBED))) >= 1,
        "the redelivered episode's transcript",
        120,
        restarted,
    )
    wait_until(
        lambda: (
            offsets(rig.bootstrap, rig.topic(EPISODE_DISCOVERED), rig.group("transcription"))[0]
            == offsets(rig.bootstrap, rig.topic(EPISODE_DISCOVERED), rig.group("transcription"))[1]
        ),
        "the commit after the redelivery",
        30,
        restarted,
    )
    out = [decode(m.value, EpisodeTranscribed) for m in read_topic(rig.bootstrap, rig.topic(EPISODE_TRANSCRIBED))]
    assert len(out) == 1 and "country" in out[0].payload.transcript.unpack().text.lower()
    sigterm(restarted, bound)
    record(
        "transcription: SIGTERM while the enclosure download is slow (25 s), drain 3 s",
        service="transcription",
        shutdown_timeout_s=timeout_s,
        bound_s=bound,
        exit_code=rc,
        seconds_to_exit=round(seconds, 2),
        in_flight="drain timed out: handler cancelled, offset not committed; redelivered and transcribed once "
        "after the restart",
    )


def long_speech(shared_dir: Path, repeats: int) -> bytes:
    """jfk.flac said `repeats` times over (11 s each), as a 16 kHz WAV: real speech for Whisper to chew on."""
    import io
    import wave

    from podbrief_transcription.adapters.audio import load_all

    pcm = np.tile(load_all(shared_dir / "data/audio/jfk.flac"), repeats)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def test_transcription_sigterm_while_whisper_decodes_a_long_episode_exits_within_the_bound(
    rig: Rig, loopback: LoopbackServer, running: list[ServiceProcess], shared_dir: Path
) -> None:
    timeout_s = 2.0
    # 29 minutes of speech: minutes of work for tiny.en on one thread, so waiting for it would blow the bound.
    url = loopback.add("/long.wav", long_speech(shared_dir, 160), "audio/wav")
    settings = {"NET__ALLOWED_NETWORKS": '["127.0.0.0/8"]', "CPU_THREADS": "1"}
    transcription = start(running, rig.service("transcription", timeout_s, **settings))
    publish(rig.bootstrap, rig.topic(EPISODE_DISCOVERED), [discovered(1, url)])
    wait_until(lambda: loopback.hits.get("/long.wav", 0) >= 1, "the enclosure download", 60, transcription)
    # Past the download and the decode of the first window: Whisper's thread is busy with ~220 s of speech.
    wait_until(
        lambda: psutil.Process(transcription.proc.pid).cpu_percent(interval=0.5) > 50,
        "Whisper at work",
        30,
        transcription,
    )
    # The cancelled job's thread stops at its next segment: one Whisper step (a window's voice detection, or a
    # 30 s chunk's decode) rather than the rest of the episode.
    bound = 2 * timeout_s + CLOSE_MARGIN_S + WHISPER_STEP_S
    rc, seconds = sigterm(transcription, bound)
    committed, end = offsets(rig.bootstrap, rig.topic(EPISODE_DISCOVERED), rig.group("transcription"))
    assert sum(committed.values()) == 0 and sum(end.values()) == 1, (committed, end)
    assert read_topic(rig.bootstrap, rig.topic(EPISODE_TRANSCRIBED)) == []
    record(
        "transcription: SIGTERM while Whisper decodes a 29 min episode, drain 2 s",
        service="transcription",
        shutdown_timeout_s=timeout_s,
        bound_s=bound,
        exit_code=rc,
        seconds_to_exit=round(seconds, 2),
        in_flight="drain timed out: the decode thread gave up at its next segment; offset not committed "
        "(redelivered to the next owner)",
    )


def handled_before_commit(placed: list[tuple[int, int]], committed: dict[int, int]) -> list[int]:
    """Indexes of the published events that the group's committed offsets cover."""
    return [i for i, (partition, offset) in enumerate(placed) if offset < committed.get(partition, 0)]


def test_clustering_sigterm_mid_burst_commits_only_what_it_published_and_the_restart_finishes_the_rest(
    rig: Rig, running: list[ServiceProcess]
) -> None:
    timeout_s = 10.0
    bound = 2 * timeout_s + CLOSE_MARGIN_S
    settings = {"QDRANT__PATH": str(rig.tmp / "qdrant"), "RECLUSTER_INTERVAL_S": "0"}
    events = [extracted(n, insights=3) for n in range(120)]
    expected = {i.insight_id for e in events for i in e.payload.insights}
    clustering = start(running, rig.service("clustering", timeout_s, **settings))
    placed = publish(rig.bootstrap, rig.topic(INSIGHTS_EXTRACTED), events)
    wait_until(
        lambda: metric(clustering, "podbrief_clustering_messages_total") >= 10, "the burst under way", 120, clustering
    )
    rc, seconds = sigterm(clustering, bound)

    committed, end = offsets(rig.bootstrap, rig.topic(INSIGHTS_EXTRACTED), rig.group("clustering"))
    done = handled_before_commit(placed, committed)
    out = [decode(m.value, InsightClustered) for m in read_topic(rig.bootstrap, rig.topic(INSIGHT_CLUSTERED))]
    published = {o.payload.insight.insight_id for o in out}
    # Committed means handled and flushed: every insight of a committed message is on the output topic.
    covered = {i.insight_id for k in done for i in events[k].payload.insights}
    assert covered <= published, f"{len(covered - published)} committed insights missing from the output topic"
    assert 0 < len(done) < len(events), f"SIGTERM did not land mid-burst ({len(done)} of {len(events)} committed)"
    stopped_at = {"committed_messages": len(done), "insights_published": len(published)}

    restarted = start(running, rig.service("clustering", timeout_s, **settings))
    wait_until(
        lambda: offsets(rig.bootstrap, rig.topic(INSIGHTS_EXTRACTED), rig.group("clustering"))[0] == end,
        "the rest of the burst after the restart",
        300,
        restarted,
    )
    out = [decode(m.value, InsightClustered) for m in read_topic(rig.bootstrap, rig.topic(INSIGHT_CLUSTERED))]
    by_insight: dict[uuid.UUID, set[uuid.UUID]] = {}
    for o in out:
        by_insight.setdefault(o.payload.insight.insight_id, set()).add(o.event_id)
    assert set(by_insight) == expected
    assert all(len(ids) == 1 for ids in by_insight.values()), "an insight was announced under two event ids"
    assert scalar(rig.db_url, "SELECT count(*) FROM clustering_members") == len(expected)
    sigterm(restarted, bound)
    record(
        "clustering: SIGTERM in a burst of 120 InsightsExtracted (360 insights)",
        service="clustering",
        shutdown_timeout_s=timeout_s,
        bound_s=bound,
        exit_code=rc,
        seconds_to_exit=round(seconds, 2),
        in_flight="in-flight handlers finished, their events flushed and offsets committed; the rest of the "
        "batch stayed uncommitted and was handled after the restart; each insight stored once, one event id each",
        **stopped_at,
        repeated_announcements=len(out) - len(expected),
    )


def test_delivery_sigterm_mid_burst_commits_only_what_it_stored_and_the_restart_finishes_the_rest(
    rig: Rig, running: list[ServiceProcess]
) -> None:
    timeout_s = 10.0
    bound = 2 * timeout_s + CLOSE_MARGIN_S
    settings = {
        "SIGNING_SECRET": uuid.uuid4().hex,
        "SCHEDULER_ENABLED": "false",
        "SMTP__HOST": "127.0.0.1",
        "SMTP__PORT": str(free_port()),
    }
    events = [clustered(n) for n in range(300)]
    delivery = start(running, rig.service("delivery", timeout_s, **settings))
    placed = publish(rig.bootstrap, rig.topic(INSIGHT_CLUSTERED), events)
    wait_until(lambda: metric(delivery, "podbrief_delivery_messages_total") >= 20, "the burst under way", 120, delivery)
    rc, seconds = sigterm(delivery, bound)

    committed, end = offsets(rig.bootstrap, rig.topic(INSIGHT_CLUSTERED), rig.group("delivery"))
    done = handled_before_commit(placed, committed)
    stored = scalar(rig.db_url, "SELECT count(*) FROM delivery_insights")
    ids = ",".join(f"'{events[k].payload.insight.insight_id}'" for k in done) or "NULL"
    covered = scalar(rig.db_url, f"SELECT count(*) FROM delivery_insights WHERE insight_id IN ({ids})")
    assert covered == len(done), "a committed message's insight is not stored"
    assert 0 < len(done) < len(events), f"SIGTERM did not land mid-burst ({len(done)} of {len(events)} committed)"

    restarted = start(running, rig.service("delivery", timeout_s, **settings))
    wait_until(
        lambda: offsets(rig.bootstrap, rig.topic(INSIGHT_CLUSTERED), rig.group("delivery"))[0] == end,
        "the rest of the burst after the restart",
        300,
        restarted,
    )
    assert scalar(rig.db_url, "SELECT count(*) FROM delivery_insights") == len(events)
    sigterm(restarted, bound)
    record(
        "delivery: SIGTERM in a burst of 300 InsightClustered (each re-embedded)",
        service="delivery",
        shutdown_timeout_s=timeout_s,
        bound_s=bound,
        exit_code=rc,
        seconds_to_exit=round(seconds, 2),
        in_flight="in-flight handlers finished and were committed; the rest stayed uncommitted and was stored "
        "after the restart; 300 insights stored once",
        committed_messages=len(done),
        stored_at_stop=stored,
    )


async def test_a_stopped_consumer_finishes_only_its_in_flight_handlers_not_the_queued_ones() -> None:
    """The chassis's drain in miniature (in memory): 40 fetched messages with distinct keys, 2 handled at a
    time; a stop lets the 2 in flight finish and be committed, and none of the queued ones starts."""
    from podbrief.bus import Bus, MemoryTransport, Subscription
    from podbrief.settings import BusSettings

    transport = MemoryTransport(partitions=1)
    await transport.start()
    bus = Bus(transport, BusSettings(kind="memory", concurrency=2))
    started: list[int] = []
    release, two_in_flight = asyncio.Event(), asyncio.Event()

    async def handler(event: EpisodeTranscribed) -> None:
        started.append(int(event.payload.episode.title.split()[-1]))
        if len(started) == 2:
            two_in_flight.set()
        await release.wait()

    for n in range(40):
        await bus.publish(transcribed(n))
    consumer = bus.consumer([Subscription(EPISODE_TRANSCRIBED, EpisodeTranscribed, handler)], group="g")
    task = asyncio.create_task(consumer.run())
    await asyncio.wait_for(two_in_flight.wait(), timeout=5)
    consumer.stop()
    release.set()
    await asyncio.wait_for(task, timeout=5)
    assert sorted(started) == [0, 1], started
    assert transport.committed("g") == {(EPISODE_TRANSCRIBED, 0): 2}
    await transport.stop()
