"""#21 items 3, 5, 6 and 11 (transcripts): what a publisher (or Whisper) writes into a transcript reaches no
later stage raw. Transcription cleans it at ingestion: no terminal escapes or control characters, no bidi or
zero-width characters in speaker names, entities decoded before tags are stripped (so `&lt;img&gt;` never
becomes a live tag in the stored transcript or its SRT/VTT), and every field within the limit of the stage
that reads it (a 250-character speaker no longer fails the episode's insights)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from podbrief.events import ids
from podbrief.events.base import Event, new_event
from podbrief.events.models import (
    EpisodeDiscovered,
    EpisodeDiscoveredPayload,
    EpisodeRef,
    EpisodeTranscribed,
    Insight,
    PackedTranscript,
    Segment,
    Transcript,
)
from podbrief.settings import DatabaseSettings
from podbrief.storage.db import create_engine, migrate
from podbrief.text import BIDI_CONTROLS, INVISIBLE
from podbrief.transcripts import parse_publisher_transcript, to_srt, to_vtt
from podbrief_testing.transcription import FakeEngine
from podbrief_transcription.adapters.repo import TranscriptRepo
from podbrief_transcription.handlers import on_episode_discovered
from pydantic import SecretStr

pytestmark = pytest.mark.unit

MIGRATIONS = Path(__file__).parents[2] / "services" / "transcription" / "migrations"
LONG_SPEAKER = "Dr. " + "Verylongname " * 19  # 251 characters
SRT = (
    "1\n00:00:01,000 --> 00:00:04,000\n"
    "Host: Welcome \x1b[2J\x1b[31mback\x1b[0m \x1b]8;;https://evil.example\x07click\x1b]8;;\x07 to the show\x07\n\n"
    "2\n00:00:05,000 --> 00:00:08,000\n"
    "Host: look &lt;img src=x onerror=alert(1)&gt; here &amp;lt;script&amp;gt;\n\n"
    "3\n00:00:09,000 --> 00:00:12,000\n"
    f"<v {LONG_SPEAKER}>A long-winded guest speaks.\n\n"
    "4\n00:00:13,000 --> 00:00:15,000\n"
    "<v Eve\u202egnp.exe\u200b>Reversed name\u200b here\u2028and a line\rbreak\n\n"
    "5\n00:00:16,000 --> 00:00:18,000\n"
    "<v Eve\u202egnp.exe\u200b>Reversed name again\n"
)
RAW_ESCAPES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class LocalFetch:
    def __init__(self, tmp: Path) -> None:
        self.path = tmp / "enclosure.bin"

    @contextlib.asynccontextmanager
    async def fetch(self, url: str) -> AsyncIterator[Path]:
        self.path.write_bytes(b"audio")
        yield self.path


def discovered(transcript: Transcript, language: str | None = "en") -> EpisodeDiscovered:
    feed_url, guid = "http://feeds.example.com/show.xml", uuid.uuid4().hex
    ref = EpisodeRef(
        episode_id=ids.episode_id(feed_url, guid),
        feed_id=ids.feed_id(feed_url),
        feed_url=feed_url,
        show="Show",
        title="Episode",
        language=language,
    )
    payload = EpisodeDiscoveredPayload(episode=ref, guid=guid, transcript=PackedTranscript.pack(transcript))
    return new_event(EpisodeDiscovered, payload, key=str(ref.episode_id), correlation_id=ref.episode_id)


async def transcribe(tmp_path: Path, event: EpisodeDiscovered, engine: FakeEngine | None = None) -> Transcript:
    db = create_engine(DatabaseSettings(url=SecretStr(f"sqlite+aiosqlite:///{tmp_path}/t.db")))
    await migrate(db, MIGRATIONS, "transcription")
    sent: list[Event] = []

    async def publish(e: Event) -> None:
        sent.append(e)

    try:
        repo = TranscriptRepo(db)
        await on_episode_discovered(
            event, repo=repo, engine=engine or FakeEngine(), fetcher=LocalFetch(tmp_path), publish=publish
        )
        stored = await repo.get(event.payload.episode.episode_id)
    finally:
        await db.dispose()
    assert stored is not None and isinstance(sent[0], EpisodeTranscribed)
    published = sent[0].payload.transcript.unpack()
    assert published == stored
    return published


def insight_limit(name: str) -> int:
    return next(m.max_length for m in Insight.model_fields[name].metadata if hasattr(m, "max_length"))


def assert_clean(text: str) -> None:
    assert not RAW_ESCAPES.search(text), repr(text)
    assert "[31m" not in text and "[2J" not in text and "]8;;" not in text, repr(text)
    assert not any(c in text for c in BIDI_CONTROLS + INVISIBLE), repr(text)
    assert "<img" not in text and "<script" not in text, repr(text)


async def test_a_crafted_publisher_transcript_is_stored_clean_and_bounded(tmp_path: Path) -> None:
    t = await transcribe(tmp_path, discovered(parse_publisher_transcript(SRT.encode(), "application/srt")))
    assert len(t.segments) == 5
    for seg in t.segments:
        assert_clean(seg.text)
        assert seg.speaker is None or (len(seg.speaker) <= insight_limit("speaker") and "\n" not in seg.speaker)
        if seg.speaker:
            assert_clean(seg.speaker)
    assert_clean(t.text)
    assert "Welcome back click to the show" in t.segments[0].text
    assert "look img src=x onerror=alert(1) here" not in t.segments[1].text  # the tag went, not its letters
    long = t.segments[2].speaker
    assert long is not None and long.startswith("Dr. Verylongname") and long.endswith("…")
    assert t.segments[3].speaker == "Evegnp.exe" and t.segments[3].text == "Reversed name here and a line break"
    for rendered in (to_srt(t), to_vtt(t)):
        assert "<img" not in rendered and "<script" not in rendered and "\x1b" not in rendered
        assert "\u202e" not in rendered


async def test_publisher_fields_beyond_the_columns_do_not_cost_the_episode(tmp_path: Path) -> None:
    raw = Transcript(
        text="",
        duration_s=3.0,
        source="publisher",
        language="x" * 300,
        model="publisher:" + "m" * 1000,
        segments=(Segment(start_s=0.0, end_s=3.0, text="some words", speaker="S" * 5000),),
    )
    t = await transcribe(tmp_path, discovered(raw, language=None))
    assert t.language is None and t.model is not None and len(t.model) <= 500
    assert t.segments[0].speaker is not None and len(t.segments[0].speaker) <= insight_limit("speaker")


async def test_whisper_output_is_cleaned_too(tmp_path: Path) -> None:
    event = discovered(Transcript(text="x", duration_s=1.0, source="publisher"))
    episode = event.payload.episode.model_copy(update={"enclosure_url": "https://cdn.example.com/ep.mp3"})
    event = event.model_copy(
        update={"payload": event.payload.model_copy(update={"transcript": None, "episode": episode})}
    )
    engine = FakeEngine(text="hello \x1b[5mblink\x1b[0m \u202ereversed\u200b world\x00")
    t = await transcribe(tmp_path, event, engine)
    assert_clean(t.text)
    assert t.text == "hello blink reversed world"
    assert [w.text for w in t.segments[0].words] == ["hello", "blink", "reversed", "world"]


def test_srt_and_vtt_of_a_transcript_stored_before_cleaning_print_no_tag_or_escape() -> None:
    """Transcripts stored before the cleaning (or built elsewhere) still render safely."""
    raw = Transcript(
        text="x",
        duration_s=2.0,
        segments=(
            Segment(
                start_s=0.0,
                end_s=2.0,
                text="look <img src=x onerror=alert(1)> \x1b[31mred\x1b[0m\n2\n00:00:00,000 --> 00:00:09,000",
                speaker="Eve\u202e\x1b[2J<b>",
            ),
        ),
    )
    srt, vtt = to_srt(raw), to_vtt(raw)
    assert "<img" not in srt and "<b>" not in srt and "\x1b" not in srt and "\u202e" not in srt
    # One cue: the text's line break and arrow cannot start a second one.
    assert srt.count("-->") == 1 and len(srt.strip().split("\n")) == 3
    assert "<img" not in vtt and "\x1b" not in vtt and "\u202e" not in vtt and vtt.count("-->") == 1
