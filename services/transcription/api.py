"""HTTP API: transcripts by episode, as JSON, WebVTT or SRT."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from podbrief.clock import StoredDatetime
from podbrief.http import ProblemError, problems
from podbrief.transcripts import to_srt, to_vtt
from podbrief_transcription.deps import DepsDep
from pydantic import BaseModel

router = APIRouter(prefix="/v1", tags=["transcripts"])


class EpisodeStatusOut(BaseModel):
    """Where an episode stands in transcription. A failure gives its reason code (podbrief.reasons) and how
    often it was tried, never the raw error, which goes to the logs."""

    episode_id: uuid.UUID
    status: Literal["transcribed", "failing"]
    source: str | None = None
    language: str | None = None
    duration_s: float | None = None
    error_reason: str | None = None
    attempts: int | None = None
    updated_at: StoredDatetime


@router.get(
    "/episodes/{episode_id}",
    summary="An episode's transcription status: transcribed, or failing with the reason",
    responses=problems(404),
)
async def get_episode(episode_id: uuid.UUID, deps: DepsDep) -> EpisodeStatusOut:
    done, failed = await deps.repo.status(episode_id)
    if done is not None:
        return EpisodeStatusOut(
            episode_id=episode_id,
            status="transcribed",
            source=done.source,
            language=done.language,
            duration_s=done.duration_s,
            updated_at=done.created_at,
        )
    if failed is not None:
        return EpisodeStatusOut(
            episode_id=episode_id,
            status="failing",
            error_reason=failed.reason,
            attempts=failed.attempts,
            updated_at=failed.last_failed_at,
        )
    raise ProblemError(404, "Not Found", f"episode {episode_id} has not reached transcription")


@router.get(
    "/episodes/{episode_id}/transcript",
    summary="An episode's transcript",
    responses={
        200: {"content": {"application/json": {}, "text/vtt": {}, "application/x-subrip": {}}},
        404: {"description": "no transcript for this episode"},
    },
)
async def get_transcript(
    episode_id: uuid.UUID, deps: DepsDep, format: Annotated[Literal["json", "vtt", "srt"], Query()] = "json"
) -> Response:
    transcript = await deps.repo.get(episode_id)
    if transcript is None:
        raise ProblemError(404, "Not Found", f"no transcript for episode {episode_id}")
    if format == "vtt":
        return PlainTextResponse(to_vtt(transcript), media_type="text/vtt; charset=utf-8")
    if format == "srt":
        return PlainTextResponse(to_srt(transcript), media_type="application/x-subrip; charset=utf-8")
    return JSONResponse(transcript.model_dump(mode="json"))
