"""HTTP API: transcripts by episode, as JSON, WebVTT or SRT."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from podbrief.http import ProblemError
from podbrief.transcripts import to_srt, to_vtt
from podbrief_transcription.deps import DepsDep

router = APIRouter(prefix="/v1", tags=["transcripts"])


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
