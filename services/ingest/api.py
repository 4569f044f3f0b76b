"""The feed management API under /v1. It is an admin API: every route needs the X-API-Key header."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response
from podbrief.clock import StoredDatetime
from podbrief.errors import PermanentError, PipelineError
from podbrief.http import ADMIN_PROBLEMS, ProblemError, problems, require_admin
from podbrief.netguard import Allowance, check_url
from podbrief.reasons import split_detail
from podbrief_ingest.deps import Deps, DepsDep
from podbrief_ingest.models import Feed
from podbrief_ingest.opml import parse_opml, render_opml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, computed_field

URL_REASONS = frozenset({"ssrf_blocked", "bad_scheme", "invalid_url"})
# Far beyond any registry, and well inside the 64-bit integers SQLite and PostgreSQL take for OFFSET.
MAX_OFFSET = 1_000_000_000


router = APIRouter(
    prefix="/v1", tags=["feeds"], dependencies=[Depends(require_admin)], responses=problems(*ADMIN_PROBLEMS)
)


class FeedIn(BaseModel):
    url: str = Field(min_length=1, max_length=4096)
    validate_feed: bool = Field(
        default=True,
        alias="validate",
        description="fetch and parse before registering (and run the first poll)",
    )


def _empty_if_none(value: object) -> object:
    return [] if value is None else value


class FeedOut(BaseModel):
    """A feed as the registry holds it (read from its row)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    source_url: str
    title: str | None
    link: str | None
    language: str | None
    podcast_guid: str | None
    status: str
    locked: bool
    update_frequency: str | None
    moved_from: Annotated[list[str], BeforeValidator(_empty_if_none)]
    poll_interval_s: float
    next_poll_at: StoredDatetime | None
    last_polled_at: StoredDatetime | None
    last_success_at: StoredDatetime | None
    last_outcome: str | None
    last_error: str | None
    last_error_reason: str | None
    error_count: int
    polls: int
    not_modified_count: int
    created_at: StoredDatetime | None


class EpisodeOut(BaseModel):
    """An episode as ingest recorded it (read from its row)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    feed_id: uuid.UUID
    guid: str
    title: str
    link: str | None
    published_at: StoredDatetime | None
    enclosure_url: str | None
    enclosure_type: str | None
    duration_s: float | None
    transcripts: Annotated[list[dict[str, Any]], BeforeValidator(_empty_if_none)]
    chapters_url: str | None
    transcript_source: str | None
    transcript_error: str | None
    status: str
    error: str | None
    discovered_at: StoredDatetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def error_reason(self) -> str | None:
        """The reason code (podbrief.reasons) of a rejected episode's `error`."""
        return split_detail(self.error)[0] if self.error else None


class PollOut(BaseModel):
    feed_id: uuid.UUID
    outcome: str
    emitted: int = 0
    backlog: int = 0
    rejected: int = 0
    error: str | None = None
    reason: str | None = None


class FeedCreated(BaseModel):
    feed: FeedOut
    created: bool
    first_poll: PollOut | None = None


def fetch_problem(exc: PipelineError, url: str) -> ProblemError:
    """The problem document for a feed that could not be fetched or parsed."""
    if isinstance(exc, PermanentError):
        status = 400 if exc.reason in URL_REASONS else 422
        title = "URL not allowed" if status == 400 else "Not a usable feed"
    else:
        status = 504 if exc.reason == "timeout" else 502
        title = "Feed unreachable"
    return ProblemError(status, title, str(exc), reason=exc.reason, url=url)


def check_feed_url(url: str, deps: Deps) -> None:
    """Scheme, host and literal address as the SSRF guard sees them (no DNS lookup here)."""
    try:
        check_url(httpx.URL(url), Allowance(deps.settings.net.allowed_networks))
    except httpx.InvalidURL as exc:
        raise PermanentError(f"invalid URL {url!r}: {exc}", reason="invalid_url") from exc


async def _feed(deps: Deps, feed_id: uuid.UUID) -> Feed:
    feed = await deps.repo.get_feed(feed_id)
    if feed is None:
        raise ProblemError(404, "Not Found", f"no feed {feed_id}")
    return feed


@router.post(
    "/feeds",
    status_code=201,
    response_model=FeedCreated,
    summary="Add a feed (fetched, parsed and polled once unless validate=false)",
    responses={
        200: {"model": FeedCreated, "description": "the feed was already registered"},
        **problems(400, 422, 502, 504),
    },
)
async def add_feed(body: FeedIn, deps: DepsDep, response: Response) -> FeedCreated:
    try:
        # With validate=false nothing is fetched now; the URL is still held to what the guard would fetch, so a
        # javascript: or metadata URL is refused here rather than registered and failing every poll.
        check_feed_url(body.url.strip(), deps)
        feed, created, first = await deps.crawler.add_feed(body.url, validate=body.validate_feed)
    except PipelineError as exc:
        raise fetch_problem(exc, body.url) from exc
    if not created:
        response.status_code = 200
    return FeedCreated(
        feed=FeedOut.model_validate(feed),
        created=created,
        first_poll=PollOut.model_validate(first, from_attributes=True) if first is not None else None,
    )


@router.get("/feeds", summary="List feeds")
async def list_feeds(
    deps: DepsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    feeds = await deps.repo.list_feeds(limit=limit, offset=offset)
    return {
        "items": [FeedOut.model_validate(f).model_dump(mode="json") for f in feeds],
        "total": await deps.repo.count_feeds(),
        "limit": limit,
        "offset": offset,
    }


@router.get(
    "/feeds/{feed_id}", response_model=FeedOut, summary="One feed, with its polling state", responses=problems(404)
)
async def get_feed(feed_id: uuid.UUID, deps: DepsDep) -> FeedOut:
    return FeedOut.model_validate(await _feed(deps, feed_id))


@router.delete(
    "/feeds/{feed_id}", status_code=204, summary="Remove a feed and its episode records", responses=problems(404)
)
async def delete_feed(feed_id: uuid.UUID, deps: DepsDep) -> Response:
    await _feed(deps, feed_id)
    # Announced before the delete: if the bus refuses, the feed is still here and the caller can retry.
    await deps.outbox.withdraw(feed_id, "removed")
    if not await deps.repo.delete_feed(feed_id):
        raise ProblemError(404, "Not Found", f"no feed {feed_id}")
    return Response(status_code=204)


@router.get(
    "/feeds/{feed_id}/episodes",
    summary="A feed's episodes, newest first (cursor pagination)",
    responses=problems(400, 404),
)
async def list_episodes(
    feed_id: uuid.UUID,
    deps: DepsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> dict[str, Any]:
    await _feed(deps, feed_id)
    try:
        rows, nxt = await deps.repo.list_episodes(feed_id, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise ProblemError(400, "Bad Request", "invalid cursor") from exc
    return {"items": [EpisodeOut.model_validate(e).model_dump(mode="json") for e in rows], "next_cursor": nxt}


@router.post(
    "/feeds/{feed_id}/poll", response_model=PollOut, summary="Poll this feed now", responses=problems(404, 409)
)
async def poll_feed(feed_id: uuid.UUID, deps: DepsDep) -> PollOut:
    await _feed(deps, feed_id)
    result = await deps.crawler.poll_feed(feed_id)
    if result.outcome == "skipped":
        raise ProblemError(409, "Conflict", "this feed is being polled right now; try again shortly")
    return PollOut.model_validate(result, from_attributes=True)


@router.post(
    "/opml",
    summary="Import feeds from an OPML document (request body); they are polled soon",
    responses=problems(422),
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/x-opml": {"schema": {"type": "string"}}}},
    },
)
async def import_opml(request: Request, deps: DepsDep) -> dict[str, Any]:
    body = await request.body()
    try:
        entries = parse_opml(body)
    except PipelineError as exc:
        raise ProblemError(422, "Not a usable OPML document", str(exc), reason=exc.reason) from exc
    added: list[str] = []
    existing: list[str] = []
    invalid: list[dict[str, str]] = []
    for entry in entries:
        url = entry["url"]
        try:
            check_feed_url(url, deps)
        except PermanentError as exc:
            invalid.append({"url": url, "error": str(exc)})
            continue
        feed, created, _ = await deps.crawler.add_feed(url, validate=False)
        (added if created else existing).append(str(feed.id))
    return {"added": added, "existing": existing, "invalid": invalid}


@router.get("/opml", summary="Export every feed as OPML")
async def export_opml(deps: DepsDep) -> Response:
    feeds = await deps.repo.list_feeds(limit=1_000_000)
    return Response(render_opml([(f.url, f.title) for f in feeds]), media_type="text/x-opml")
