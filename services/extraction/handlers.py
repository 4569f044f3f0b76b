"""EpisodeTranscribed -> InsightsExtracted. Idempotent: the result is stored before it is published, and a
redelivered episode re-publishes what is stored (same insight ids, same event id) without calling the
model."""

from __future__ import annotations

import logging
import uuid

from podbrief.bus import Publish
from podbrief.errors import InvalidEventError, reason_of
from podbrief.events import (
    EpisodeTranscribed,
    InsightsExtracted,
    InsightsExtractedPayload,
    Transcript,
    new_event,
)
from podbrief.events.ids import event_id
from podbrief_extraction.adapters.repo import EpisodeStatus, ExtractionRepo
from podbrief_extraction.extractor import Extractor
from podbrief_extraction.metrics import ExtractionMetrics

log = logging.getLogger(__name__)


FINISHED = ("done", "skipped")


async def publish_stored(
    status: EpisodeStatus, *, repo: ExtractionRepo, publish: Publish, correlation_id: uuid.UUID
) -> InsightsExtracted:
    insights = await repo.insights(status.episode_id)
    payload = InsightsExtractedPayload(
        episode=status.episode,
        insights=tuple(insights),
        chunks_total=status.chunks_total,
        chunks_failed=status.chunks_failed,
        model=status.model or "unknown",
        prompt_version=status.prompt_version or "unknown",
    )
    event = new_event(
        InsightsExtracted,
        payload,
        key=str(status.episode_id),
        correlation_id=correlation_id,
        event_id=event_id("insights.extracted", status.episode_id),
    )
    await publish(event)
    return event


async def on_episode_transcribed(
    event: EpisodeTranscribed,
    *,
    repo: ExtractionRepo,
    extractor: Extractor,
    publish: Publish,
    metrics: ExtractionMetrics,
) -> None:
    episode = event.payload.episode
    existing = await repo.get(episode.episode_id)
    if existing is not None and existing.status in FINISHED:
        log.info(
            "episode already extracted; re-publishing the stored result",
            extra={"episode_id": str(episode.episode_id), "insights": existing.insights_kept},
        )
        metrics.episodes.labels("replayed").inc()
        await publish_stored(existing, repo=repo, publish=publish, correlation_id=event.correlation_id)
        return
    try:
        transcript: Transcript = event.payload.transcript.unpack()
    except Exception as exc:
        raise InvalidEventError(
            f"transcript cannot be unpacked: {type(exc).__name__}", reason="bad_transcript"
        ) from exc
    await repo.begin(episode, event.correlation_id)
    if transcript.language is None and event.payload.language:
        transcript = transcript.model_copy(update={"language": event.payload.language})
    try:
        result = await extractor.extract(
            transcript,
            episode_id=episode.episode_id,
            show=episode.show,
            title=episode.title,
            chapters=event.payload.chapters,
            people=episode.people,
        )
    except Exception as exc:
        # Visible on the episode while the bus retries (and after it dead-letters the message).
        reason = reason_of(exc)
        await repo.fail(episode.episode_id, str(exc) or type(exc).__name__, reason)
        metrics.episodes.labels("error").inc()
        raise
    await repo.finish(
        episode.episode_id,
        status=result.status,
        insights=result.insights,
        chunks_total=result.chunks_total,
        chunks_failed=result.chunks_failed,
        dropped=dict(result.dropped),
        tokens_in=result.usage.prompt_tokens,
        tokens_out=result.usage.completion_tokens,
        model=result.model,
        prompt_version=result.prompt_version,
        detail=result.detail,
    )
    metrics.episodes.labels(result.status).inc()
    log.info(
        "episode extracted",
        extra={
            "episode_id": str(episode.episode_id),
            "status": result.status,
            "insights": len(result.insights),
            "chunks_total": result.chunks_total,
            "chunks_failed": result.chunks_failed,
            "dropped": dict(result.dropped),
            "tokens_in": result.usage.prompt_tokens,
            "tokens_out": result.usage.completion_tokens,
        },
    )
    stored = await repo.get(episode.episode_id)
    assert stored is not None
    await publish_stored(stored, repo=repo, publish=publish, correlation_id=event.correlation_id)
