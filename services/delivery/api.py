"""The JSON API under /v1: sign-up and confirmation, the subscriber's own profile, briefs, export and delete,
and the admin trigger for deliveries."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from podbrief.errors import RetryableError
from podbrief.http import ADMIN_PROBLEMS, ProblemError, problems, require_admin
from podbrief_delivery import subscribers
from podbrief_delivery.deps import Deps, DepsDep
from podbrief_delivery.models import Subscriber
from podbrief_delivery.ratelimit import retry_after
from podbrief_delivery.subscribers import InvalidInput, SignupProfile, public_profile, refresh_gauge
from podbrief_delivery.tokens import TokenError, hash_api_key, version_of
from pydantic import BaseModel, Field

router = APIRouter(prefix="/v1")


class SignupIn(BaseModel):
    # Checked by subscribers.normalise_email (email-validator), which answers a readable 422; the format documents it.
    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    interests: str = Field(default="", max_length=2000)
    topics: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=20)
    followed_shows: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)
    timezone: str | None = Field(default=None, max_length=64)
    delivery_hour: int | None = Field(default=None, ge=0, le=23)
    quiet_day_policy: Literal["shorter", "note"] | None = None


class ProfilePatch(BaseModel):
    interests: str | None = Field(default=None, max_length=2000)
    topics: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None, max_length=20)
    followed_shows: list[Annotated[str, Field(max_length=200)]] | None = Field(default=None, max_length=50)
    timezone: str | None = Field(default=None, max_length=64)
    delivery_hour: int | None = Field(default=None, ge=0, le=23)
    quiet_day_policy: Literal["shorter", "note"] | None = None
    status: Literal["active", "paused"] | None = None


class ConfirmIn(BaseModel):
    token: str = Field(max_length=2048)


class RunIn(BaseModel):
    date: dt.date | None = None
    force: bool = False
    subscriber_ids: list[uuid.UUID] | None = Field(default=None, max_length=10_000)


async def signup_or_problem(deps: Deps, body: SignupIn) -> None:
    try:
        await deps.sign_up(
            body.email,
            SignupProfile(
                interests=body.interests,
                topics=body.topics,
                followed_shows=body.followed_shows,
                timezone=body.timezone,
                delivery_hour=body.delivery_hour,
                quiet_day_policy=body.quiet_day_policy,
            ),
        )
    except InvalidInput as exc:
        raise ProblemError(422, "Invalid sign-up", str(exc)) from exc
    except RetryableError as exc:
        raise ProblemError(503, "Email unavailable", "the confirmation email could not be sent; try again") from exc


def refuse_if_limited(deps: Deps, endpoint: str, wait_s: float | None) -> None:
    if wait_s is None:
        return
    deps.metrics.rate_limited.labels(endpoint).inc()
    raise ProblemError(
        429,
        "Too Many Requests",
        f"too many {endpoint} requests; try again in {retry_after(wait_s)} seconds",
        headers={"Retry-After": retry_after(wait_s)},
    )


@router.post(
    "/subscribers",
    status_code=202,
    tags=["subscribers"],
    summary="Sign up (double opt-in)",
    responses=problems(422, 429, 503),
)
async def sign_up(body: SignupIn, deps: DepsDep, request: Request) -> dict[str, str]:
    refuse_if_limited(deps, "signup", deps.limits.signup(deps.limits.client(request), body.email))
    await signup_or_problem(deps, body)
    # The same answer whether or not the address was known: no enumeration of subscribers.
    return {"status": "confirmation_sent", "detail": "check your inbox for a confirmation link"}


@router.post(
    "/subscribers/confirm",
    tags=["subscribers"],
    summary="Confirm with the emailed token",
    responses=problems(400, 429),
)
async def confirm(body: ConfirmIn, deps: DepsDep, request: Request) -> dict[str, Any]:
    refuse_if_limited(deps, "confirm", deps.limits.confirm(deps.limits.client(request)))
    try:
        sub_id, claims = deps.signer.subscriber_of(body.token, "confirm")
        sub, key = await subscribers.confirm(sub_id, version_of(claims), repo=deps.repo, metrics=deps.metrics)
    except (TokenError, InvalidInput) as exc:
        raise ProblemError(400, "Invalid confirmation", str(exc)) from exc
    return {
        "subscriber_id": str(sub.id),
        "status": sub.status,
        "api_key": key,
        # Bound to the token version: revoked by unsubscribing, rotating the API key or deleting.
        "profile_token": deps.signer.for_subscriber("profile", sub.id, deps.settings.link_ttl_s, v=sub.token_version),
    }


async def current_subscriber(
    subscriber_id: uuid.UUID,
    deps: DepsDep,
    authorization: Annotated[str | None, Header()] = None,
    x_subscriber_token: Annotated[str | None, Header()] = None,
    t: Annotated[str | None, Query(max_length=2048)] = None,
) -> Subscriber:
    """The caller proves who they are with their API key (Authorization: Bearer pbk_...) or a signed profile
    token (X-Subscriber-Token or ?t=). Any mismatch with the path answers 404, never another's data."""
    sub: Subscriber | None = None
    if authorization and authorization.lower().startswith("bearer "):
        key = authorization.split(" ", 1)[1].strip()
        sub = await deps.repo.subscriber_by_key(hash_api_key(key))
    elif x_subscriber_token or t:
        try:
            sid, claims = deps.signer.subscriber_of(x_subscriber_token or t or "", "profile")
            version = version_of(claims)
        except TokenError as exc:
            raise ProblemError(401, "Unauthorized", "invalid or expired token") from exc
        sub = await deps.repo.subscriber(sid)
        if sub is not None and sub.token_version != version:
            raise ProblemError(401, "Unauthorized", "this token was revoked (the API key was rotated)")
    else:
        raise ProblemError(401, "Unauthorized", "send your API key as 'Authorization: Bearer ...'")
    if sub is None or sub.id != subscriber_id or sub.status == "unsubscribed":
        raise ProblemError(404, "Not Found", "no such subscriber")
    return sub


SubDep = Annotated[Subscriber, Depends(current_subscriber)]
# Another subscriber's id answers 404 like an unknown one (see current_subscriber).
SUB_PROBLEMS = problems(401, 404, 422)


@router.get("/subscribers/{subscriber_id}", tags=["subscribers"], responses=SUB_PROBLEMS)
async def get_profile(sub: SubDep) -> dict[str, Any]:
    return public_profile(sub)


@router.patch("/subscribers/{subscriber_id}", tags=["subscribers"], responses=SUB_PROBLEMS)
async def patch_profile(body: ProfilePatch, sub: SubDep, deps: DepsDep) -> dict[str, Any]:
    try:
        changes = body.model_dump(exclude_unset=True)
        updated = await subscribers.update_profile(
            sub, changes, repo=deps.repo, embedder=deps.embedder, metrics=deps.metrics
        )
    except InvalidInput as exc:
        raise ProblemError(422, "Invalid profile", str(exc)) from exc
    return public_profile(updated)


@router.post(
    "/subscribers/{subscriber_id}/api-key", tags=["subscribers"], summary="Rotate your API key", responses=SUB_PROBLEMS
)
async def rotate_key(sub: SubDep, deps: DepsDep) -> dict[str, str]:
    return {"api_key": await subscribers.rotate_key(sub.id, repo=deps.repo)}


@router.get(
    "/subscribers/{subscriber_id}/export", tags=["subscribers"], summary="All data about you", responses=SUB_PROBLEMS
)
async def export(sub: SubDep, deps: DepsDep) -> dict[str, Any]:
    return await subscribers.export(sub, repo=deps.repo)


@router.delete(
    "/subscribers/{subscriber_id}",
    status_code=204,
    tags=["subscribers"],
    summary="Delete you and everything about you",
    responses=SUB_PROBLEMS,
)
async def delete(sub: SubDep, deps: DepsDep) -> None:
    await deps.repo.delete_subscriber(sub.id)
    await refresh_gauge(repo=deps.repo, metrics=deps.metrics)


@router.get("/subscribers/{subscriber_id}/briefs", tags=["briefs"], responses=SUB_PROBLEMS)
async def list_briefs(sub: SubDep, deps: DepsDep) -> list[dict[str, Any]]:
    return [
        {
            "brief_id": str(b.brief_id),
            "brief_date": b.brief_date.isoformat(),
            "items": len(b.body.get("items", [])),
        }
        for b in await deps.repo.briefs(sub.id)
    ]


@router.get("/subscribers/{subscriber_id}/briefs/latest", tags=["briefs"], responses=SUB_PROBLEMS)
async def latest_brief(sub: SubDep, deps: DepsDep) -> dict[str, Any]:
    rows = await deps.repo.briefs(sub.id, limit=1)
    if not rows:
        raise ProblemError(404, "Not Found", "no brief yet")
    return rows[0].body


@router.get("/subscribers/{subscriber_id}/briefs/{day}", tags=["briefs"], responses=SUB_PROBLEMS)
async def brief_on(day: date, sub: SubDep, deps: DepsDep) -> dict[str, Any]:
    row = await deps.repo.brief_on(sub.id, day)
    if row is None:
        raise ProblemError(404, "Not Found", f"no brief for {day.isoformat()}")
    return row.body


@router.post(
    "/admin/deliveries/run",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    summary="Compose and send the due briefs now",
    responses=problems(*ADMIN_PROBLEMS),
)
async def run_deliveries(
    deps: DepsDep,
    body: RunIn | None = None,
    date_: Annotated[date | None, Query(alias="date")] = None,
    force: Annotated[bool | None, Query()] = None,
) -> dict[str, Any]:
    body = body or RunIn()
    report = await deps.deliver(
        force=force if force is not None else body.force,
        day=date_ or body.date,
        only=body.subscriber_ids,
    )
    await refresh_gauge(repo=deps.repo, metrics=deps.metrics)
    return report.as_dict()


class BounceIn(BaseModel):
    email: str = Field(max_length=320, json_schema_extra={"format": "email"})
    reason: str = Field(default="bounced", max_length=500)


@router.post(
    "/admin/bounces",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    summary="Report an asynchronous bounce (a DSN) to pause that subscriber",
    responses=problems(*ADMIN_PROBLEMS, 404, 422),
)
async def bounce(body: BounceIn, deps: DepsDep) -> dict[str, Any]:
    try:
        addr = subscribers.normalise_email(body.email)
    except InvalidInput as exc:
        raise ProblemError(422, "Invalid email", str(exc)) from exc
    sub = await deps.repo.subscriber_by_email(addr)
    if sub is None:
        raise ProblemError(404, "Not Found", "no such subscriber")
    if sub.status == "active":
        await deps.repo.update_subscriber(sub.id, status="paused", paused_reason=f"bounce: {body.reason}")
        await refresh_gauge(repo=deps.repo, metrics=deps.metrics)
    return {"subscriber_id": str(sub.id), "status": "paused" if sub.status == "active" else sub.status}
