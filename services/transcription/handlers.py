"""Episode discovered -> transcript stored -> EpisodeTranscribed published."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Protocol

from podbrief.bus import Publish
from podbrief.errors import PermanentError, is_unavailable, reason_of
from podbrief.events.base import new_event
from podbrief.events.ids import event_id
from podbrief.events.models import (
    EpisodeDiscovered,
    EpisodeTranscribed,
    EpisodeTranscribedPayload,
    PackedTranscript,
    Segment,
    Transcript,
    Word,
)
from podbrief.transcripts import clean_transcript
from podbrief_transcription.adapters.engine import Engine
from podbrief_transcription.adapters.repo import TranscriptRepo
from podbrief_transcription.metrics import TranscriptionMetrics

log = logging.getLogger(__name__)


class Fetcher(Protocol):
    def fetch(self, url: str) -> AbstractAsyncContextManager[Path]: ...


def normalise_publisher(t: Transcript, *, duration_s: float | None = None, language: str | None = None) -> Transcript:
    """A publisher transcript in the shape Whisper's output has: ordered, non-empty segments whose end is
    never before their start, words inside their segment, text rebuilt from the segments."""
    segments: list[Segment] = []
    for seg in sorted(t.segments, key=lambda s: (s.start_s, s.end_s)):
        text = " ".join(seg.text.split())
        if not text:
            continue
        end = max(seg.start_s, seg.end_s)
        words = tuple(
            Word(
                start_s=w.start_s,
                end_s=max(w.start_s, w.end_s),
                text=w.text.strip(),
                probability=w.probability,
            )
            for w in sorted(seg.words, key=lambda w: w.start_s)
            if w.text.strip()
        )
        if words:
            end = max(end, words[-1].end_s)
        segments.append(Segment(start_s=seg.start_s, end_s=end, text=text, speaker=seg.speaker, words=words))
    text = " ".join(s.text for s in segments) if segments else " ".join(t.text.split())
    if not text:
        raise PermanentError("the publisher transcript has no text", reason="empty_transcript")
    if not segments:
        segments = [Segment(start_s=0.0, end_s=float(duration_s or t.duration_s or 0.0), text=text)]
    last_end = max(s.end_s for s in segments)
    return Transcript(
        text=text,
        language=t.language or language,
        language_probability=t.language_probability,
        duration_s=max(t.duration_s, last_end, float(duration_s or 0.0)),
        segments=tuple(segments),
        source="publisher",
        model=t.model,
        rtf=None,
    )


async def _note_failure(repo: TranscriptRepo, episode_id: uuid.UUID, exc: BaseException) -> None:
    """Record the failure on the episode (its status API and `podbrief status` show it); a store that cannot
    record it must not hide the failure itself, which the bus retries or dead-letters either way."""
    try:
        await repo.record_failure(episode_id, reason_of(exc), str(exc) or type(exc).__name__)
    except Exception:
        log.warning("could not record the failure", exc_info=True, extra={"episode_id": str(episode_id)})


async def on_episode_discovered(
    event: EpisodeDiscovered,
    *,
    repo: TranscriptRepo,
    engine: Engine,
    fetcher: Fetcher,
    publish: Publish,
    metrics: TranscriptionMetrics | None = None,
) -> None:
    payload = event.payload
    episode = payload.episode
    try:
        transcript = await repo.get(episode.episode_id)
        if transcript is not None:
            log.info("transcript already stored; re-publishing", extra={"episode_id": str(episode.episode_id)})
        else:
            if payload.transcript is not None:
                transcript = normalise_publisher(
                    payload.transcript.unpack(), duration_s=payload.duration_s, language=episode.language
                )
            elif episode.enclosure_url:
                started = time.perf_counter()
                async with fetcher.fetch(episode.enclosure_url) as path:
                    fetched = time.perf_counter()
                    transcript = await engine.transcribe(path)
                    if metrics is not None:
                        metrics.phase_seconds.labels("download").observe(fetched - started)
                        metrics.phase_seconds.labels("transcribe").observe(time.perf_counter() - fetched)
            else:
                raise PermanentError("the episode has neither an enclosure nor a transcript", reason="no_enclosure")
            # Nothing downstream (terminal, email, HTML, SRT/VTT) gets markup, escapes or controls from it, and
            # no field exceeds what a later stage accepts (#21).
            transcript = clean_transcript(transcript)
            # Write before publish: a crash after this line re-publishes the stored transcript on redelivery.
            transcript = await repo.save(episode.episode_id, transcript)
            if metrics is not None:
                metrics.transcripts.labels(transcript.source).inc()
    except Exception as exc:
        reason = reason_of(exc)
        if metrics is not None:
            metrics.failures.labels(reason).inc()
        log.warning(
            "transcription failed",
            extra={"episode_id": str(episode.episode_id), "reason": reason, "error": str(exc)[:500]},
        )
        if not is_unavailable(exc):  # a dependency being down says nothing about this episode
            await _note_failure(repo, episode.episode_id, exc)
        raise
    out = new_event(
        EpisodeTranscribed,
        EpisodeTranscribedPayload(
            episode=episode,
            transcript=PackedTranscript.pack(transcript),
            source=transcript.source,
            duration_s=transcript.duration_s,
            language=transcript.language or episode.language,
            chapters=payload.chapters,
        ),
        key=str(episode.episode_id),
        correlation_id=event.correlation_id,
        # The same episode always yields the same event id, so consumers can drop redeliveries.
        event_id=event_id("episode.transcribed", episode.episode_id),
    )
    await publish(out)
