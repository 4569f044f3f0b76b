"""Fixtures for the transcription tests: synthetic audio files, event builders, and the real tiny.en model
loaded once per test session."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from podbrief.events import ids
from podbrief.events.base import new_event
from podbrief.events.models import EpisodeDiscovered, EpisodeDiscoveredPayload, EpisodeRef, PackedTranscript
from podbrief_testing.transcription import SR, real_settings
from podbrief_testing.transcription import write_wav as _write_wav
from podbrief_transcription.adapters.engine import Transcriber


@pytest.fixture(scope="session")
def whisper() -> Transcriber:
    engine = Transcriber(real_settings())
    engine.start_sync()
    return engine


@pytest.fixture
def audio_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "audio"


@pytest.fixture
def write_wav(tmp_path: Path) -> Callable[..., Path]:
    def write(name: str, samples: np.ndarray, rate: int = SR) -> Path:
        return _write_wav(tmp_path / name, samples, rate)

    return write


@pytest.fixture
def discovered() -> Callable[..., EpisodeDiscovered]:
    def build(
        enclosure_url: str | None = "http://127.0.0.1:1/ep.mp3",
        *,
        guid: str | None = None,
        transcript: PackedTranscript | None = None,
        chapters: tuple[object, ...] = (),
    ) -> EpisodeDiscovered:
        feed_url = "http://feeds.example.com/show.xml"
        guid = guid or uuid.uuid4().hex
        ref = EpisodeRef(
            episode_id=ids.episode_id(feed_url, guid),
            feed_id=ids.feed_id(feed_url),
            feed_url=feed_url,
            show="Example Show",
            title="Episode " + guid[:6],
            enclosure_url=enclosure_url,
            language="en",
        )
        payload = EpisodeDiscoveredPayload(
            episode=ref, guid=guid, enclosure_type="audio/flac", transcript=transcript, chapters=chapters
        )  # type: ignore[arg-type]
        return new_event(EpisodeDiscovered, payload, key=str(ref.episode_id), correlation_id=ref.episode_id)

    return build


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep a developer's TRANSCRIPTION_* environment out of settings tests."""
    import os

    for key in list(os.environ):
        if key.startswith("TRANSCRIPTION_"):
            monkeypatch.delenv(key)
    yield
