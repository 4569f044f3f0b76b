"""The handler: store before publish, idempotent redelivery, visible failures."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from podbrief.errors import InvalidEventError, RetryableError
from podbrief.events import (
    EpisodeRef,
    EpisodeTranscribed,
    EpisodeTranscribedPayload,
    Event,
    InsightsExtracted,
    PackedTranscript,
    Segment,
    Transcript,
    new_event,
)
from podbrief.events.ids import event_id
from podbrief.settings import DatabaseSettings
from podbrief.storage.db import create_engine, migrate
from podbrief_extraction.adapters.llm import LLMClient
from podbrief_extraction.adapters.repo import ExtractionRepo
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.handlers import on_episode_transcribed
from podbrief_extraction.metrics import ExtractionMetrics
from podbrief_extraction.settings import ExtractionSettings, LLMSettings
from podbrief_testing.llm import FakeOpenAI, ScriptedModel
from pydantic import SecretStr

pytestmark = pytest.mark.unit

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def jfk_model() -> ScriptedModel:
    """Picks the speech's one sentence; writes a synthesis that names Kennedy (the show's title says who)."""
    return ScriptedModel(
        write=lambda _q, _b: (
            "President Kennedy urges Americans to ask what they can do for their country, not the reverse."
        )
    )


def episode(n: int = 1) -> EpisodeRef:
    return EpisodeRef(
        episode_id=uuid.UUID(int=n),
        feed_id=uuid.UUID(int=99),
        feed_url="http://feeds.test/a.xml",
        show="Speeches",
        title="President Kennedy's inaugural address",
    )


def transcribed(t: Transcript, n: int = 1, packed: PackedTranscript | None = None) -> EpisodeTranscribed:
    payload = EpisodeTranscribedPayload(
        episode=episode(n),
        transcript=packed or PackedTranscript.pack(t),
        source="whisper",
        duration_s=t.duration_s,
        language=t.language,
    )
    return new_event(EpisodeTranscribed, payload, key=str(uuid.UUID(int=n)), correlation_id=uuid.UUID(int=n))


def jfk_transcript(language: str | None = "en") -> Transcript:
    return Transcript(
        text=JFK, language=language, duration_s=11.0, segments=(Segment(start_s=0.0, end_s=10.5, text=JFK),)
    )


class Harness:
    def __init__(self, repo: ExtractionRepo, fake: FakeOpenAI, s: ExtractionSettings) -> None:
        self.repo = repo
        self.fake = fake
        self.metrics = ExtractionMetrics.create()
        self.llm = LLMClient(s.llm, transport=fake.transport(), metrics=self.metrics)
        self.extractor = Extractor(self.llm, s, self.metrics)
        self.published: list[Event] = []

    async def publish(self, event: Event) -> None:
        self.published.append(event)

    async def handle(self, event: EpisodeTranscribed) -> None:
        await on_episode_transcribed(
            event, repo=self.repo, extractor=self.extractor, publish=self.publish, metrics=self.metrics
        )


@pytest.fixture
async def repo(tmp_path: Path) -> Any:
    engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/x.db")))
    await migrate(engine, MIGRATIONS, "extraction")
    yield ExtractionRepo(engine)
    await engine.dispose()


def harness(repo: ExtractionRepo, fake: FakeOpenAI, **overrides: Any) -> Harness:
    s = ExtractionSettings(
        llm=LLMSettings(base_url="http://llm.test/v1", model="fake", max_retries=0, breaker_failures=100),
        **overrides,
    )
    return Harness(repo, fake, s)


async def test_redelivery_republishes_stored_result_without_calling_the_model(repo: ExtractionRepo) -> None:
    h = harness(repo, FakeOpenAI(responder=jfk_model()))
    event = transcribed(jfk_transcript())
    await h.handle(event)
    await h.handle(event)  # redelivered
    assert len(h.fake.requests) == 3  # rate and write (the passage code proposed), verify: once
    first, second = h.published
    assert isinstance(first, InsightsExtracted) and isinstance(second, InsightsExtracted)
    assert first.event_id == second.event_id == event_id("insights.extracted", uuid.UUID(int=1))
    assert first.key == str(uuid.UUID(int=1)) and first.correlation_id == event.correlation_id
    assert first.payload == second.payload
    [ins] = first.payload.insights
    assert ins.quote == JFK and ins.start_s == 0.0 and ins.end_s == 10.5
    assert ins.text.startswith("President Kennedy urges")
    assert first.payload.chunks_total == 1 and first.payload.chunks_failed == 0
    status = await repo.get(uuid.UUID(int=1))
    assert status is not None and status.status == "done" and status.insights_kept == 1 and status.attempts == 1
    assert status.tokens_in == 260 and status.tokens_out == 41  # rate 60 + 1, write and verify 100 + 20 each


async def test_empty_transcript_completes_with_no_insights(repo: ExtractionRepo) -> None:
    h = harness(repo, FakeOpenAI())
    await h.handle(transcribed(Transcript(text="", language="en", duration_s=0)))
    [event] = h.published
    assert isinstance(event, InsightsExtracted)
    assert event.payload.insights == () and event.payload.chunks_total == 0
    assert h.fake.requests == []


async def test_unsupported_language_is_skipped_visibly(repo: ExtractionRepo) -> None:
    h = harness(repo, FakeOpenAI())
    await h.handle(transcribed(jfk_transcript(language="de")))
    assert h.fake.requests == []
    status = await repo.get(uuid.UUID(int=1))
    assert status is not None and status.status == "skipped" and "de" in (status.detail or "")
    assert isinstance(h.published[0], InsightsExtracted) and h.published[0].payload.insights == ()


async def test_endpoint_down_is_retryable_visible_and_recovers(repo: ExtractionRepo) -> None:
    fake = FakeOpenAI(responder=lambda _b: httpx.Response(503, text="loading model"))
    h = harness(repo, fake)
    event = transcribed(jfk_transcript())
    with pytest.raises(RetryableError):
        await h.handle(event)
    status = await repo.get(uuid.UUID(int=1))
    assert status is not None and status.status == "error" and status.last_error_reason == "http_5xx"
    assert h.published == []  # nothing published for a failed attempt
    fake.responder = jfk_model()  # the bus redelivers once the endpoint is back
    await h.handle(event)
    status = await repo.get(uuid.UUID(int=1))
    assert status is not None and status.status == "done" and status.attempts == 2 and status.last_error is None
    assert len(h.published) == 1


async def test_failed_chunk_is_counted_on_the_event(repo: ExtractionRepo) -> None:
    # A chunk fails when the model picks its points and the call per chunk stays invalid.
    h = harness(repo, FakeOpenAI(responder=lambda _b: "garbage"), quality={"candidates": "model"})
    await h.handle(transcribed(jfk_transcript()))
    [event] = h.published
    assert isinstance(event, InsightsExtracted)
    assert event.payload.chunks_total == 1 and event.payload.chunks_failed == 1 and event.payload.insights == ()
    status = await repo.get(uuid.UUID(int=1))
    assert status is not None and status.chunks_failed == 1 and status.status == "done"


async def test_a_passage_the_model_cannot_write_is_dropped_as_invalid_output(repo: ExtractionRepo) -> None:
    h = harness(repo, FakeOpenAI(responder=lambda _b: "garbage"))
    await h.handle(transcribed(jfk_transcript()))
    [event] = h.published
    assert isinstance(event, InsightsExtracted)
    assert event.payload.chunks_total == 1 and event.payload.chunks_failed == 0 and event.payload.insights == ()
    status = await repo.get(uuid.UUID(int=1))
    assert status is not None and status.status == "done" and status.insights_kept == 0
    assert status.dropped.get("invalid_output", 0) >= 1


async def test_corrupt_transcript_is_an_invalid_event(repo: ExtractionRepo) -> None:
    h = harness(repo, FakeOpenAI())
    with pytest.raises(InvalidEventError):
        await h.handle(transcribed(jfk_transcript(), packed=PackedTranscript(data="bm90IHpzdGQ=")))


async def test_migrations_downgrade_and_upgrade_again(tmp_path: Path) -> None:
    import sqlalchemy as sa

    engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/m.db")))
    await migrate(engine, MIGRATIONS, "extraction")
    await migrate(engine, MIGRATIONS, "extraction", revision="base")
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    assert "extraction_episodes" not in names and "extraction_insights" not in names
    await migrate(engine, MIGRATIONS, "extraction")
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    assert {"extraction_episodes", "extraction_insights"} <= set(names)
    await engine.dispose()
