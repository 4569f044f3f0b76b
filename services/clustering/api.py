"""HTTP API: related insights, trending clusters, semantic search, and an admin re-clustering trigger."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from podbrief.clock import utcnow
from podbrief.events import RelatedInsight
from podbrief.http import ADMIN_PROBLEMS, ProblemError, problems, require_admin
from podbrief_clustering.adapters.repo import trend_score
from podbrief_clustering.clusterer import ReclusterReport
from podbrief_clustering.deps import DepsDep
from pydantic import AwareDatetime, BaseModel, BeforeValidator

router = APIRouter(prefix="/v1", tags=["clustering"])


def _iso_only(value: object) -> object:
    # Pydantic also reads a number ("1.7e9") as a Unix timestamp; the API documents ISO 8601 and keeps to it.
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(
                "since must be an ISO 8601 date-time with a time zone, such as 2026-01-01T00:00:00Z"
            ) from exc
    return value


Since = Annotated[AwareDatetime | None, BeforeValidator(_iso_only), Query(description="ISO 8601, with a zone")]


class RelatedResponse(BaseModel):
    insight_id: uuid.UUID
    related: list[RelatedInsight]


class ClusterOut(BaseModel):
    cluster_id: uuid.UUID
    label: str
    size: int
    shows: int
    show_names: list[str]
    growth: int
    trend_score: float
    first_seen: datetime
    last_seen: datetime


class ClustersResponse(BaseModel):
    since: datetime
    clusters: list[ClusterOut]


class SearchHit(BaseModel):
    insight_id: uuid.UUID
    score: float
    text: str
    quote: str | None = None
    show: str
    episode_id: uuid.UUID
    episode_title: str
    start_s: float | None = None
    link: str | None = None
    cluster_id: uuid.UUID | None = None
    published_at: datetime | None = None


class SearchResponse(BaseModel):
    query: str
    took_ms: float
    results: list[SearchHit]


@router.get(
    "/insights/{insight_id}/related",
    response_model=RelatedResponse,
    summary="Nearest insights from other episodes, other shows first",
    responses=problems(404),
)
async def related(
    insight_id: uuid.UUID, deps: DepsDep, limit: Annotated[int | None, Query(ge=1, le=20)] = None
) -> RelatedResponse:
    found = await deps.clusterer.related(insight_id, limit)
    if found is None:
        raise ProblemError(404, "Not Found", f"insight {insight_id} is not indexed")
    return RelatedResponse(insight_id=insight_id, related=list(found))


@router.get(
    "/clusters",
    response_model=ClustersResponse,
    summary="Trending clusters: growth since `since`, weighted by show diversity",
)
async def clusters(
    deps: DepsDep, since: Since = None, limit: Annotated[int, Query(ge=1, le=500)] = 20
) -> ClustersResponse:
    start = since or utcnow() - timedelta(days=7)

    rows = await deps.clusterer.repo.trending(start, limit)
    return ClustersResponse(
        since=start,
        clusters=[
            ClusterOut(
                cluster_id=c.id,
                label=c.label,
                size=c.size,
                shows=c.show_count,
                show_names=sorted(c.shows),
                growth=g,
                trend_score=round(trend_score(g, c.show_count), 4),
                first_seen=c.first_seen,
                last_seen=c.last_seen,
            )
            for c, g in rows
        ],
    )


@router.get("/search", response_model=SearchResponse, summary="Semantic search over insights")
async def search(
    deps: DepsDep,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    show: Annotated[str | None, Query(max_length=1000)] = None,
    since: Since = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchResponse:
    t0 = time.perf_counter()
    found = await deps.clusterer.search(q, show=show, since=since, limit=limit)
    results = []
    for r in found:
        p = r.payload
        ts = p.get("published_ts")
        results.append(
            SearchHit(
                insight_id=r.insight_id,
                score=r.score,
                text=str(p.get("text", "")),
                quote=p.get("quote"),
                show=str(p.get("show", "")),
                episode_id=uuid.UUID(str(p["episode_id"])),
                episode_title=str(p.get("episode_title", "")),
                start_s=p.get("start_s"),
                link=p.get("link"),
                cluster_id=uuid.UUID(p["cluster_id"]) if p.get("cluster_id") else None,
                published_at=datetime.fromtimestamp(ts, UTC) if ts is not None else None,
            )
        )
    return SearchResponse(query=q, took_ms=round((time.perf_counter() - t0) * 1000, 2), results=results)


@router.post(
    "/admin/recluster",
    summary="Re-cluster the window now (admin)",
    dependencies=[Depends(require_admin)],
    responses=problems(*ADMIN_PROBLEMS),
)
async def recluster(deps: DepsDep) -> ReclusterReport:
    return await deps.clusterer.recluster()
