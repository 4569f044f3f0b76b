"""Read-only API: an episode's extraction status and counters, and its insights."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from podbrief.http import ProblemError, problems
from podbrief_extraction.deps import DepsDep

router = APIRouter(prefix="/v1", tags=["extraction"])


@router.get("/episodes/{episode_id}", summary="An episode's extraction status and counters", responses=problems(404))
async def get_episode(episode_id: uuid.UUID, deps: DepsDep) -> dict[str, Any]:
    status = await deps.repo.get(episode_id)
    if status is None:
        raise ProblemError(404, "Not Found", f"episode {episode_id} has not reached extraction")
    return status.as_json()


@router.get(
    "/episodes/{episode_id}/insights",
    summary="The insights kept for an episode, in time order",
    responses=problems(404),
)
async def get_insights(episode_id: uuid.UUID, deps: DepsDep) -> dict[str, Any]:
    status = await deps.repo.get(episode_id)
    if status is None:
        raise ProblemError(404, "Not Found", f"episode {episode_id} has not reached extraction")
    insights = await deps.repo.insights(episode_id)
    return {
        "episode_id": str(episode_id),
        "status": status.status,
        "insights": [i.model_dump(mode="json") for i in insights],
    }
