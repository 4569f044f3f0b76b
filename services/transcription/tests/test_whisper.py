"""The real engine: packaged tiny.en, int8, on CPU, loaded once for the session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from podbrief.errors import PermanentError
from podbrief.events.models import Transcript
from podbrief_testing.transcription import JFK_TEXT, SR, check_transcript, make_video, real_settings, tone, words_of
from podbrief_transcription.adapters.audio import load_all
from podbrief_transcription.adapters.engine import Transcriber

pytestmark = pytest.mark.slow

STEREO_LEFT = "He began a confused complaint against the wizard, who had vanished behind the curtain on the left."
STEREO_RIGHT = "The horizon seems extremely distant."


def check_timestamps(t: Transcript) -> None:
    last = 0.0
    for seg in t.segments:
        assert 0.0 <= seg.start_s <= seg.end_s <= t.duration_s + 0.05
        for w in seg.words:
            assert w.start_s >= last - 1e-6, "word timestamps go backwards"
            assert w.start_s <= w.end_s <= t.duration_s + 0.05
            assert seg.start_s - 0.05 <= w.start_s and w.end_s <= seg.end_s + 0.05
            last = w.start_s


async def test_jfk_reference_text(whisper: Transcriber, audio_dir: Path) -> None:
    t = await whisper.transcribe(audio_dir / "jfk.flac")
    check_transcript(t.text)
    assert t.language == "en" and t.language_probability == 1.0
    assert t.model == "tiny.en" and t.source == "whisper"
    assert t.duration_s == pytest.approx(11.0, abs=0.05)
    assert t.rtf is not None and 0 < t.rtf < 5
    # Word timestamps carry the words themselves (as many as the text has, whatever a build makes of them).
    words = " ".join(w.text for s in t.segments for w in s.words)
    assert words_of(words) == words_of(t.text), (words, t.text)
    check_timestamps(t)


def test_progress_reports_segment_ends(whisper: Transcriber, audio_dir: Path) -> None:
    seen: list[tuple[float, float | None]] = []
    whisper.transcribe_sync(audio_dir / "jfk.flac", progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (pytest.approx(11.0, abs=0.05), pytest.approx(11.0, abs=0.05))
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_hotwords(audio_dir: Path) -> None:
    engine = Transcriber(real_settings(hotwords="ComfyUI"))
    engine.start_sync()
    t = engine.transcribe_sync(audio_dir / "hotwords.mp3")
    # Without the hotword tiny.en hears "comfy eye"; with it the product name comes through as one word.
    assert "comfyui" in t.text.lower(), t.text


def test_stereo_channels_become_speakers(audio_dir: Path) -> None:
    engine = Transcriber(real_settings(split_channels=True))
    engine.start_sync()
    t = engine.transcribe_sync(audio_dir / "stereo_diarization.wav")
    left = " ".join(s.text for s in t.segments if s.speaker == "left")
    right = " ".join(s.text for s in t.segments if s.speaker == "right")
    check_transcript(left, STEREO_LEFT, key_words=("wizard", "curtain"))
    check_transcript(right, STEREO_RIGHT, key_words=("horizon",))
    assert [s.start_s for s in t.segments] == sorted(s.start_s for s in t.segments)


def test_batched_pipeline_gives_the_same_text(audio_dir: Path) -> None:
    engine = Transcriber(real_settings(batch_size=4))
    engine.start_sync()
    t = engine.transcribe_sync(audio_dir / "jfk.flac")
    check_transcript(t.text)
    check_timestamps(t)


def test_long_audio_in_windows(whisper: Transcriber, audio_dir: Path, write_wav: Callable[..., Path]) -> None:
    # Three JFK quotes with 1.5 s pauses, transcribed in 15 s windows: cuts land in the pauses, times carry
    # over from window to window.
    speech = load_all(audio_dir / "jfk.flac")
    gap = np.zeros(int(1.5 * SR), dtype=np.float32)
    path = write_wav("long.wav", np.concatenate([np.concatenate([speech, gap]) for _ in range(3)]))
    engine = Transcriber(real_settings(window_s=15.0, cut_search_s=5.0))
    engine.start_sync()
    t = engine.transcribe_sync(path)
    assert t.duration_s == pytest.approx(37.5, abs=0.1)
    check_transcript(t.text, " ".join([JFK_TEXT] * 3))
    assert t.segments[-1].end_s > 33.0
    check_timestamps(t)


def test_video_enclosure(whisper: Transcriber, audio_dir: Path, tmp_path: Path) -> None:
    t = whisper.transcribe_sync(make_video(tmp_path / "ep.mp4", audio_dir / "jfk.flac"))
    check_transcript(t.text)


@pytest.mark.parametrize(
    "case,expected",
    [
        ("empty", "empty_file"),
        ("silent", "silent_audio"),
        ("tone", "no_speech"),
        ("garbage", "corrupt_audio"),
        ("truncated", "truncated_audio"),
        ("no_audio", "no_audio_stream"),
    ],
)
def test_bad_input_is_a_permanent_error(
    whisper: Transcriber,
    audio_dir: Path,
    tmp_path: Path,
    write_wav: Callable[..., Path],
    case: str,
    expected: str,
) -> None:
    path = tmp_path / "input.bin"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "silent":
        path = write_wav("silent.wav", np.zeros(3 * SR, dtype=np.float32))
    elif case == "tone":
        path = write_wav("tone.wav", tone(4.0, 1000.0, 0.2))
    elif case == "garbage":
        path.write_bytes(b"%PDF-1.7 not audio at all\n" * 200)
    elif case == "truncated":
        data = (audio_dir / "jfk.flac").read_bytes()
        path.write_bytes(data[: len(data) // 3])
    else:
        path = make_video(tmp_path / "mute.mp4", None)
    with pytest.raises(PermanentError) as exc:
        whisper.transcribe_sync(path)
    assert exc.value.reason == expected


def test_too_long(audio_dir: Path) -> None:
    engine = Transcriber(real_settings(max_duration_s=5.0))
    engine.start_sync()
    with pytest.raises(PermanentError) as exc:
        engine.transcribe_sync(audio_dir / "jfk.flac")
    assert exc.value.reason == "too_long"
