"""The handler: transcribe or normalise, store, publish; idempotent under redelivery."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from podbrief.errors import PermanentError, RetryableError, UnavailableError
from podbrief.events.base import Event
from podbrief.events.ids import event_id
from podbrief.events.models import (
    Chapter,
    EpisodeDiscovered,
    EpisodeTranscribed,
    PackedTranscript,
    Segment,
    Transcript,
    Word,
)
from podbrief.settings import DatabaseSettings
from podbrief.storage.db import create_engine, migrate
from podbrief_testing.transcription import FakeEngine
from podbrief_transcription.adapters.repo import TranscriptRepo
from podbrief_transcription.handlers import normalise_publisher, on_episode_discovered
from podbrief_transcription.metrics import TranscriptionMetrics
from podbrief_transcription.status import stage_status
from prometheus_client import CollectorRegistry
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

pytestmark = pytest.mark.unit

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


class FakeFetcher:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.urls: list[str] = []

    @contextlib.asynccontextmanager
    async def fetch(self, url: str) -> AsyncIterator[Path]:
        self.urls.append(url)
        path = self.tmp / "enclosure.bin"
        path.write_bytes(b"audio")
        yield path


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/t.db")))
    await migrate(engine, MIGRATIONS, "transcription")
    yield engine
    await engine.dispose()


@pytest.fixture
def published() -> list[Event]:
    return []


@pytest.fixture
def metrics() -> TranscriptionMetrics:
    return TranscriptionMetrics.create(CollectorRegistry())


async def test_transcribes_stores_and_publishes(
    db: AsyncEngine,
    tmp_path: Path,
    published: list[Event],
    metrics: TranscriptionMetrics,
    discovered: Callable[..., EpisodeDiscovered],
) -> None:
    repo, engine, fetcher = TranscriptRepo(db), FakeEngine("ask not what your country"), FakeFetcher(tmp_path)
    event = discovered("http://cdn.example.com/ep1.mp3", chapters=(Chapter(start_s=0, title="Intro"),))

    async def publish(e: Event) -> None:
        published.append(e)

    await on_episode_discovered(event, repo=repo, engine=engine, fetcher=fetcher, publish=publish, metrics=metrics)

    episode_id = event.payload.episode.episode_id
    assert fetcher.urls == ["http://cdn.example.com/ep1.mp3"]
    assert len(published) == 1
    out = published[0]
    assert isinstance(out, EpisodeTranscribed)
    assert out.key == str(episode_id)
    assert out.event_id == event_id("episode.transcribed", episode_id)
    assert out.correlation_id == event.correlation_id
    assert out.payload.source == "whisper" and out.payload.chapters == event.payload.chapters
    assert out.payload.transcript.unpack().text == "ask not what your country"
    stored = await repo.get(episode_id)
    assert stored is not None and stored.model == "fake"
    assert metrics.transcripts.labels("whisper")._value.get() == 1


async def test_redelivery_republishes_without_rerunning_the_model(
    db: AsyncEngine, tmp_path: Path, published: list[Event], discovered: Callable[..., EpisodeDiscovered]
) -> None:
    repo, engine, fetcher = TranscriptRepo(db), FakeEngine(), FakeFetcher(tmp_path)

    async def publish(e: Event) -> None:
        published.append(e)

    event = discovered()
    for _ in range(3):
        await on_episode_discovered(event, repo=repo, engine=engine, fetcher=fetcher, publish=publish)
    assert len(engine.calls) == 1 and len(fetcher.urls) == 1
    assert await repo.count() == 1
    assert len(published) == 3
    assert len({e.event_id for e in published}) == 1
    assert published[0].payload.transcript == published[2].payload.transcript  # type: ignore[attr-defined]


async def test_crash_after_store_republishes_on_redelivery(
    db: AsyncEngine, tmp_path: Path, discovered: Callable[..., EpisodeDiscovered]
) -> None:
    repo, engine, fetcher = TranscriptRepo(db), FakeEngine(), FakeFetcher(tmp_path)
    sent: list[Event] = []

    async def broken(_: Event) -> None:
        raise RetryableError("broker down", reason="kafka_publish")

    async def publish(e: Event) -> None:
        sent.append(e)

    event = discovered()
    with pytest.raises(RetryableError):
        await on_episode_discovered(event, repo=repo, engine=engine, fetcher=fetcher, publish=broken)
    await on_episode_discovered(event, repo=repo, engine=engine, fetcher=fetcher, publish=publish)
    assert len(engine.calls) == 1 and len(sent) == 1


async def test_publisher_transcript_skips_the_model(
    db: AsyncEngine, tmp_path: Path, discovered: Callable[..., EpisodeDiscovered]
) -> None:
    repo, engine, fetcher = TranscriptRepo(db), FakeEngine(), FakeFetcher(tmp_path)
    raw = Transcript(
        text="",
        duration_s=0,
        source="publisher",
        segments=(
            Segment(start_s=5.0, end_s=4.0, text="  second   cue "),
            Segment(
                start_s=0.0,
                end_s=2.0,
                text="first cue",
                speaker="Adam",
                words=(Word(start_s=0.0, end_s=2.5, text="first"),),
            ),
            Segment(start_s=3.0, end_s=3.5, text="   "),
        ),
    )
    sent: list[Event] = []

    async def publish(e: Event) -> None:
        sent.append(e)

    event = discovered(transcript=PackedTranscript.pack(raw))
    await on_episode_discovered(event, repo=repo, engine=engine, fetcher=fetcher, publish=publish)
    assert engine.calls == [] and fetcher.urls == []
    out = sent[0]
    assert isinstance(out, EpisodeTranscribed) and out.payload.source == "publisher"
    t = out.payload.transcript.unpack()
    assert [s.text for s in t.segments] == ["first cue", "second cue"]
    assert t.segments[0].end_s == 2.5 and t.segments[1].end_s == 5.0
    assert t.text == "first cue second cue" and t.duration_s == 5.0 and t.language == "en"


def test_normalise_refuses_an_empty_publisher_transcript() -> None:
    with pytest.raises(PermanentError) as exc:
        normalise_publisher(Transcript(text="  ", duration_s=0, source="publisher"))
    assert exc.value.reason == "empty_transcript"


async def test_bad_audio_is_a_permanent_failure_counted_by_reason(
    db: AsyncEngine,
    tmp_path: Path,
    metrics: TranscriptionMetrics,
    discovered: Callable[..., EpisodeDiscovered],
) -> None:
    repo = TranscriptRepo(db)
    engine = FakeEngine(error=PermanentError("the audio is silent", reason="silent_audio"))

    async def publish(_: Event) -> None:
        raise AssertionError("nothing may be published for a failed episode")

    with pytest.raises(PermanentError):
        await on_episode_discovered(
            discovered(),
            repo=repo,
            engine=engine,
            fetcher=FakeFetcher(tmp_path),
            publish=publish,
            metrics=metrics,
        )
    assert metrics.failures.labels("silent_audio")._value.get() == 1
    assert await repo.count() == 0


async def test_no_enclosure_and_no_transcript(
    db: AsyncEngine, tmp_path: Path, discovered: Callable[..., EpisodeDiscovered]
) -> None:
    async def publish(_: Event) -> None:
        raise AssertionError("unreachable")

    with pytest.raises(PermanentError) as exc:
        await on_episode_discovered(
            discovered(None),
            repo=TranscriptRepo(db),
            engine=FakeEngine(),
            fetcher=FakeFetcher(tmp_path),
            publish=publish,
        )
    assert exc.value.reason == "no_enclosure"


async def test_concurrent_save_keeps_the_first(db: AsyncEngine) -> None:
    repo = TranscriptRepo(db)
    episode = uuid.uuid4()
    first = Transcript(text="first", duration_s=1.0)
    second = Transcript(text="second", duration_s=1.0)
    assert (await repo.save(episode, first)).text == "first"
    assert (await repo.save(episode, second)).text == "first"
    assert await repo.count() == 1


async def test_migration_downgrade(tmp_path: Path) -> None:
    import sqlalchemy as sa

    engine = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/m.db")))
    await migrate(engine, MIGRATIONS, "transcription")
    await migrate(engine, MIGRATIONS, "transcription", "base")
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    await engine.dispose()
    assert "transcription_transcripts" not in tables


async def test_a_failure_is_recorded_on_the_episode_until_it_is_transcribed(
    db: AsyncEngine, tmp_path: Path, metrics: TranscriptionMetrics, discovered: Callable[..., EpisodeDiscovered]
) -> None:
    repo = TranscriptRepo(db)
    event = discovered()
    published: list[Event] = []

    async def publish(e: Event) -> None:
        published.append(e)

    async def attempt(engine: FakeEngine) -> None:
        await on_episode_discovered(
            event, repo=repo, engine=engine, fetcher=FakeFetcher(tmp_path), publish=publish, metrics=metrics
        )

    for _ in range(2):  # the bus retries
        with pytest.raises(RetryableError):
            await attempt(FakeEngine(error=RetryableError("the model server timed out", reason="timeout")))
    done, failed = await repo.status(event.payload.episode.episode_id)
    assert done is None and failed is not None
    assert (failed.reason, failed.attempts, failed.message) == ("timeout", 2, "the model server timed out")

    await attempt(FakeEngine("ask not what your country"))
    done, failed = await repo.status(event.payload.episode.episode_id)
    assert done is not None and failed is None and len(published) == 1
    assert (await stage_status(db)).failures == {}


async def test_a_dependency_outage_is_not_recorded_against_the_episode(
    db: AsyncEngine, tmp_path: Path, metrics: TranscriptionMetrics, discovered: Callable[..., EpisodeDiscovered]
) -> None:
    repo = TranscriptRepo(db)
    event = discovered()

    async def publish(_: Event) -> None:
        raise AssertionError("not reached")

    with pytest.raises(UnavailableError):
        await on_episode_discovered(
            event,
            repo=repo,
            engine=FakeEngine(error=UnavailableError("GPU pool drained")),
            fetcher=FakeFetcher(tmp_path),
            publish=publish,
            metrics=metrics,
        )
    assert await repo.status(event.payload.episode.episode_id) == (None, None)
    assert metrics.failures.labels("unavailable")._value.get() == 1
