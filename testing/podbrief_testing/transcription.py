"""Transcription's test support: synthetic audio, video containers, a fake engine, settings for real-model
tests and the word error rate that tests and benchmarks share."""

from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import Any

import numpy as np
from podbrief.events.models import Segment, Transcript, Word
from podbrief_transcription.settings import TranscriptionSettings

SR = 16_000
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
# The words of jfk.flac that matter: whatever else a CPU's Whisper build makes of the clip, these come through.
JFK_KEY_WORDS = ("americans", "country")
# Whisper's words, case and punctuation differ across CPUs and builds (int8 kernels round differently): tests
# compare its text to a reference by word error rate, after normalising case and punctuation, under this bound.
MAX_WER = 0.1


def real_settings(**overrides: Any) -> TranscriptionSettings:
    """Settings for real-model tests: two CPU threads (the CI machine has two cores), packaged tiny.en, int8.
    Every real-model test builds its settings here so they share one cached model."""
    base: dict[str, Any] = {"device": "cpu", "cpu_threads": 2, "compute_type": "int8"}
    return TranscriptionSettings(**{**base, **overrides})


def write_wav(path: Path, samples: np.ndarray, rate: int = SR) -> Path:
    """Write float samples (mono, or shape (channels, n)) as 16-bit PCM WAV."""
    data = np.clip(samples, -1.0, 1.0)
    channels = 1 if data.ndim == 1 else data.shape[0]
    frames = (data.T if data.ndim == 2 else data) * 32767
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames.astype("<i2").tobytes())
    return path


def tone(seconds: float, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_video(path: Path, audio: Path | None, seconds: float = 2.0) -> Path:
    """An MPEG-4 file with a video stream (and, when `audio` is given, that file's audio as AAC)."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream("aac", rate=44_100) if audio is not None else None
        frames = int(seconds * 10)
        for i in range(frames):
            img = np.full((48, 64, 3), (i * 10) % 255, dtype=np.uint8)
            for packet in video.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        if audio is not None and astream is not None:
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=44_100)
            with av.open(str(audio)) as src:
                for frame in src.decode(audio=0):
                    for rs in resampler.resample(frame):
                        for packet in astream.encode(rs):
                            out.mux(packet)
            for packet in astream.encode():
                out.mux(packet)
    return path


class FakeEngine:
    """Counts calls and returns a fixed transcript (or raises what it was given)."""

    def __init__(self, text: str = "hello world", error: Exception | None = None) -> None:
        self.calls: list[Path] = []
        self.text = text
        self.error = error

    async def transcribe(self, path: Path) -> Transcript:
        self.calls.append(path)
        if self.error is not None:
            raise self.error
        words = tuple(Word(start_s=float(i), end_s=float(i) + 0.5, text=w) for i, w in enumerate(self.text.split()))
        seg = Segment(start_s=0.0, end_s=float(len(words)), text=self.text, words=words)
        return Transcript(
            text=self.text,
            language="en",
            language_probability=1.0,
            duration_s=float(len(words)),
            segments=(seg,),
            model="fake",
            rtf=0.1,
        )


def words_of(text: str) -> list[str]:
    """Lowercased words without punctuation: the normalisation WER is computed after."""
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def check_transcript(
    hypothesis: str, reference: str = JFK_TEXT, *, key_words: tuple[str, ...] = JFK_KEY_WORDS, max_wer: float = MAX_WER
) -> None:
    """Whisper's text against a reference, as it can be compared on any machine: the word error rate after
    normalising case and punctuation is under `max_wer`, and every key word is there."""
    error = wer(reference, hypothesis)
    assert error <= max_wer, f"WER {error:.3f} > {max_wer} against the reference: {hypothesis!r}"
    missing = [w for w in key_words if w not in words_of(hypothesis)]
    assert not missing, f"missing {missing} in {hypothesis!r}"


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (word-level Levenshtein distance over the reference length)."""
    ref, hyp = words_of(reference), words_of(hypothesis)
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return d[len(hyp)] / max(1, len(ref))
