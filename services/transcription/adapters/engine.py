"""The Whisper engine: faster-whisper (CTranslate2) loaded once per process, warmed up, and run in worker
threads so the event loop stays free while a job decodes."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from podbrief.errors import ConfigurationError, PermanentError, RetryableError
from podbrief.events.models import Segment, Transcript, Word
from podbrief_transcription.adapters import model_source
from podbrief_transcription.adapters.audio import SAMPLE_RATE, Audio, DecodeStats, iter_windows
from podbrief_transcription.settings import GPU_DEFAULT_MODEL, PACKAGED_MODEL, TranscriptionSettings

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from podbrief_transcription.metrics import TranscriptionMetrics

log = logging.getLogger(__name__)

# (done_s, total_s); total_s is None when the file does not declare its duration.
Progress = Callable[[float, float | None], None]


class Engine(Protocol):
    """What the handler needs from a transcriber (tests pass a fake)."""

    async def transcribe(self, path: Path) -> Transcript: ...


@dataclass(frozen=True)
class EngineConfig:
    """Everything that decides which CTranslate2 model object is built; the key of the process-wide cache."""

    model: str  # as resolved: a directory or a size name
    label: str  # what transcripts record as their model
    device: str
    device_index: int
    compute_type: str
    cpu_threads: int
    num_workers: int


def cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a CPU-only build, or a broken driver: no GPU either way
        return 0


def engine_config(settings: TranscriptionSettings) -> EngineConfig:
    device = settings.device
    if device == "auto":
        device = "cuda" if cuda_devices() > 0 else "cpu"
    requested = settings.model or (GPU_DEFAULT_MODEL if device == "cuda" else PACKAGED_MODEL)
    compute = settings.compute_type or ("float16" if device == "cuda" else "int8")
    if device == "cpu" and compute in {"float16", "int8_float16", "bfloat16", "int8_bfloat16"}:
        raise ConfigurationError(f"compute_type {compute} needs a GPU", reason="bad_compute_type")
    label = requested.removeprefix(model_source.PACKAGED_PREFIX)
    if Path(requested).expanduser().is_dir():
        label = Path(requested).expanduser().resolve().name
    return EngineConfig(
        model=model_source.resolve(requested, settings.models_dir),
        label=label,
        device=device,
        device_index=settings.device_index,
        compute_type=compute,
        cpu_threads=settings.cpu_threads,
        num_workers=settings.num_workers,
    )


# One model per configuration per process: a WhisperModel holds hundreds of MB to GBs of weights and is
# safe to share between threads, so every Transcriber (and every app built in one test session) reuses it.
_MODELS: dict[EngineConfig, tuple[WhisperModel, float]] = {}
_WARMED: set[EngineConfig] = set()
_MODELS_LOCK = threading.Lock()


def load_model(cfg: EngineConfig) -> tuple[WhisperModel, float]:
    """The cached model and the seconds its (first) load took."""
    with _MODELS_LOCK:
        cached = _MODELS.get(cfg)
        if cached is not None:
            return cached
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        try:
            model = WhisperModel(
                cfg.model,
                device=cfg.device,
                device_index=cfg.device_index,
                compute_type=cfg.compute_type,
                cpu_threads=cfg.cpu_threads,
                num_workers=cfg.num_workers,
                local_files_only=Path(cfg.model).is_dir(),
            )
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigurationError(
                f"cannot load Whisper model {cfg.model!r} on {cfg.device}: {exc}", reason="model_load"
            ) from exc
        _MODELS[cfg] = (model, time.perf_counter() - started)
        return _MODELS[cfg]


class Transcriber:
    """Transcribes audio files into `Transcript`s: `Transcriber(settings)`, then `await start()`."""

    def __init__(self, settings: TranscriptionSettings, metrics: TranscriptionMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.config = engine_config(settings)
        self.batch_size = settings.batch_size or (16 if self.config.device == "cuda" else 1)
        self._model: WhisperModel | None = None
        self._batched: Any = None
        self._ready = False
        self._slots = asyncio.Semaphore(settings.concurrency)
        self.load_seconds = 0.0

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def model_label(self) -> str:
        return self.config.label

    async def start(self) -> None:
        await asyncio.to_thread(self.start_sync)

    def start_sync(self) -> None:
        model, seconds = load_model(self.config)
        self._model = model
        self.load_seconds = seconds
        if self.batch_size > 1:
            from faster_whisper import BatchedInferencePipeline

            self._batched = BatchedInferencePipeline(model)
        if self.settings.warmup and self.config not in _WARMED:
            self._warm_up()
            _WARMED.add(self.config)
        if self.metrics is not None:
            self.metrics.model_load_seconds.set(seconds)
        self._ready = True
        log.info(
            "whisper model ready",
            extra={
                "model": self.config.label,
                "device": self.config.device,
                "compute_type": self.config.compute_type,
                "batch_size": self.batch_size,
                "load_s": round(seconds, 3),
            },
        )

    def _warm_up(self) -> None:
        # A second of faint noise runs the encoder and a short decode, so the first real job does not pay for
        # lazy allocations; VAD is warmed separately because noise never reaches it as speech.
        assert self._model is not None
        noise = np.random.default_rng(0).normal(0.0, 0.01, SAMPLE_RATE).astype(np.float32)
        segments, _ = self._model.transcribe(
            noise,
            beam_size=1,
            vad_filter=False,
            language=self.settings.language or (None if self._model.model.is_multilingual else "en"),
        )
        for _ in segments:
            pass
        if self.settings.vad:
            from faster_whisper.vad import get_speech_timestamps

            get_speech_timestamps(noise)

    async def transcribe(self, path: Path, progress: Progress | None = None) -> Transcript:
        async with self._slots:
            abandoned = threading.Event()
            try:
                return await asyncio.to_thread(self.transcribe_sync, path, progress, abandoned)
            except asyncio.CancelledError:
                # A thread cannot be cancelled, and the interpreter waits for it at exit: without this, a
                # SIGTERM during an hour-long episode would keep the process alive until the episode was done.
                abandoned.set()
                raise

    def transcribe_sync(
        self, path: Path, progress: Progress | None = None, abandoned: threading.Event | None = None
    ) -> Transcript:
        """`abandoned`, once set, stops the job at its next segment (its caller was cancelled)."""
        if self._model is None:
            self.start_sync()
        s = self.settings
        stats = DecodeStats()
        started = time.perf_counter()
        segments: list[Segment] = []
        language = s.language
        language_probability: float | None = None
        for offset, audio in iter_windows(
            path,
            window_s=s.window_s,
            cut_search_s=s.cut_search_s,
            max_duration_s=s.max_duration_s,
            split_channels=s.split_channels,
            stats=stats,
        ):
            channels: list[tuple[str | None, Audio]] = (
                [(None, audio)] if audio.ndim == 1 else [("left", audio[0]), ("right", audio[1])]
            )
            for speaker, pcm in channels:
                raw, info = self._run(pcm, language)
                for seg in raw:
                    if abandoned is not None and abandoned.is_set():
                        raise TranscriptionAbandonedError("the transcription was abandoned", reason="abandoned")
                    converted = _segment(seg, offset, speaker)
                    if converted is not None:
                        segments.append(converted)
                        if progress is not None:
                            progress(converted.end_s, stats.declared_s)
                if language is None or language_probability is None:
                    # The first window decides the language; later windows reuse it, so an hour-long episode
                    # does not flip language on a quiet stretch (and skips re-detection).
                    language = language or info.language
                    language_probability = float(info.language_probability)
        elapsed = time.perf_counter() - started
        duration = stats.decoded_s
        if not segments:
            raise PermanentError("no speech was found in the audio", reason="no_speech")
        segments.sort(key=lambda x: (x.start_s, x.end_s))
        if progress is not None:
            progress(duration, duration)
        rtf = elapsed / duration if duration > 0 else None
        if self.metrics is not None:
            self.metrics.observe_job(duration, rtf)
        log.info(
            "transcribed",
            extra={
                "audio_s": round(duration, 2),
                "rtf": round(rtf or 0.0, 4),
                "windows": stats.windows,
                "segments": len(segments),
                "invalid_packets": stats.invalid_packets,
            },
        )
        return Transcript(
            text=" ".join(x.text for x in segments),
            language=language,
            language_probability=language_probability,
            duration_s=round(duration, 3),
            segments=tuple(segments),
            source="whisper",
            model=self.config.label,
            rtf=round(rtf, 4) if rtf is not None else None,
        )

    def _run(self, pcm: Audio, language: str | None) -> tuple[Iterable[Any], Any]:
        s = self.settings
        assert self._model is not None
        kwargs: dict[str, Any] = {
            "language": language,
            "beam_size": s.beam_size,
            "word_timestamps": s.word_timestamps,
            "hotwords": s.hotwords,
        }
        if self._batched is not None:
            if not s.vad:
                # The batched pipeline needs chunk boundaries; without VAD, plain 30 s chunks.
                step = 30 * SAMPLE_RATE
                kwargs["clip_timestamps"] = [
                    {"start": i, "end": min(i + step, pcm.shape[0])} for i in range(0, pcm.shape[0], step)
                ]
            batched: tuple[Iterable[Any], Any] = self._batched.transcribe(
                pcm, batch_size=self.batch_size, vad_filter=s.vad, **kwargs
            )
            return batched
        sequential: tuple[Iterable[Any], Any] = self._model.transcribe(pcm, vad_filter=s.vad, **kwargs)
        return sequential


class TranscriptionAbandonedError(RetryableError):
    """Raised inside the worker thread of a job whose caller was cancelled; nobody awaits it."""


def _segment(seg: Any, offset: float, speaker: str | None) -> Segment | None:
    text = str(seg.text).strip()
    if not text:
        return None
    start = max(0.0, float(seg.start) + offset)
    end = max(start, float(seg.end) + offset)
    words: list[Word] = []
    for w in seg.words or ():
        token = str(w.word).strip()
        if not token:
            continue
        ws = max(0.0, float(w.start) + offset)
        we = max(ws, float(w.end) + offset)
        prob = None if w.probability is None else min(1.0, max(0.0, float(w.probability)))
        words.append(Word(start_s=round(ws, 3), end_s=round(we, 3), text=token, probability=prob))
    return Segment(start_s=round(start, 3), end_s=round(end, 3), text=text, speaker=speaker, words=tuple(words))
