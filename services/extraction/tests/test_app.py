"""The service as a whole on the in-memory bus, with a fake OpenAI server behind the real client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from podbrief.bus import Bus, MemoryTransport
from podbrief.events import (
    EpisodeRef,
    EpisodeTranscribed,
    EpisodeTranscribedPayload,
    InsightsExtracted,
    PackedTranscript,
    Segment,
    Transcript,
    decode,
    dlq_topic,
    new_event,
)
from podbrief.events.topics import EPISODE_TRANSCRIBED, INSIGHTS_EXTRACTED
from podbrief.settings import BusSettings, DatabaseSettings
from podbrief_extraction.app import create_app
from podbrief_extraction.settings import ExtractionSettings, LLMSettings
from podbrief_testing.llm import FakeOpenAI, ScriptedModel
from pydantic import SecretStr

pytestmark = pytest.mark.unit

LINE = "Heat pumps in Norway now outsell gas boilers three to one, the installer said."


def answer() -> ScriptedModel:
    return ScriptedModel(
        write=lambda _q, _b: "The Installer reports that in Norway heat pumps sell three times as well as gas boilers."
    )


def settings(tmp_path: Path) -> ExtractionSettings:
    return ExtractionSettings(
        bus=BusSettings(kind="memory", max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02),
        db=DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/extraction.db")),
        llm=LLMSettings(base_url="http://llm.test/v1", model="fake", max_retries=0, breaker_failures=100),
    )


def event(n: int) -> EpisodeTranscribed:
    t = Transcript(
        text=LINE,
        language="en",
        duration_s=30.0,
        segments=(Segment(start_s=12.0, end_s=17.5, text=LINE, speaker="Installer"),),
    )
    ref = EpisodeRef(
        episode_id=uuid.UUID(int=n),
        feed_id=uuid.UUID(int=7),
        feed_url="http://f.test/feed.xml",
        show="Energy Hour",
        title="Heat pumps",
    )
    payload = EpisodeTranscribedPayload(
        episode=ref, transcript=PackedTranscript.pack(t), source="whisper", duration_s=30.0, language="en"
    )
    return new_event(EpisodeTranscribed, payload, key=str(ref.episode_id), correlation_id=ref.episode_id)


async def until(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_transcribed_episode_becomes_insights_on_the_bus_and_the_api(tmp_path: Path) -> None:
    bus_t = MemoryTransport()
    await bus_t.start()
    fake = FakeOpenAI(responder=answer())
    s = settings(tmp_path)
    app = create_app(s, transport=bus_t, llm_transport=fake.transport())
    bus = Bus(bus_t, s.bus)
    async with app.router.lifespan_context(app):
        e = event(1)
        await bus.publish(e)
        await bus.publish(e)  # a duplicate delivery upstream
        await until(lambda: len(bus_t.records(INSIGHTS_EXTRACTED)) == 2)
        out = [decode(r.value, InsightsExtracted) for r in bus_t.records(INSIGHTS_EXTRACTED)]
        assert out[0].event_id == out[1].event_id and out[0].payload == out[1].payload
        assert len(fake.requests) == 3  # rate and write (the passage code proposed), verify: once
        [ins] = out[0].payload.insights
        assert ins.speaker == "Installer" and (ins.start_s, ins.end_s) == (12.0, 17.5)
        assert ins.quote == LINE and ins.text.startswith("The Installer reports")
        assert bus_t.records(INSIGHTS_EXTRACTED)[0].key == str(uuid.UUID(int=1)).encode()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            r = await client.get(f"/v1/episodes/{uuid.UUID(int=1)}")
            assert r.status_code == 200
            body = r.json()
            assert body["status"] == "done" and body["insights_kept"] == 1 and body["chunks_total"] == 1
            r = await client.get(f"/v1/episodes/{uuid.UUID(int=1)}/insights")
            assert [i["insight_id"] for i in r.json()["insights"]] == [str(ins.insight_id)]
            r = await client.get(f"/v1/episodes/{uuid.UUID(int=2)}")
            assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
            metrics = (await client.get("/metrics/")).text
            assert "podbrief_extraction_insights_kept_total 1.0" in metrics
            assert 'podbrief_extraction_llm_tokens_total{direction="in",stage="write"} 100.0' in metrics
            assert 'podbrief_extraction_verifications_total{verdict="supported"} 1.0' in metrics
            assert 'podbrief_extraction_chunks_total{outcome="ok"} 1.0' in metrics
            assert (await client.get("/readyz")).status_code == 200
    await bus_t.stop()


async def test_endpoint_down_dead_letters_after_retries_and_shows_on_the_episode(tmp_path: Path) -> None:
    bus_t = MemoryTransport()
    await bus_t.start()
    fake = FakeOpenAI(responder=lambda _b: httpx.ConnectError("refused"))
    s = settings(tmp_path)
    app = create_app(s, transport=bus_t, llm_transport=fake.transport())
    async with app.router.lifespan_context(app):
        await Bus(bus_t, s.bus).publish(event(3))
        await until(lambda: len(bus_t.records(dlq_topic(EPISODE_TRANSCRIBED))) == 1)
        assert bus_t.records(INSIGHTS_EXTRACTED) == []
        dlq = bus_t.records(dlq_topic(EPISODE_TRANSCRIBED))[0]
        assert dlq.header("x-error-reason") == "connect" and dlq.header("x-attempts") == "2"
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as client:
            body = (await client.get(f"/v1/episodes/{uuid.UUID(int=3)}")).json()
            assert body["status"] == "error" and body["attempts"] == 2 and body["error_reason"] == "connect"
    await bus_t.stop()
