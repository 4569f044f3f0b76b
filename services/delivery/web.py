"""Public HTML pages: the sign-up form, confirmation, one-click unsubscribe, feedback links, and each brief
with its archive. Pages are reached through signed links, never by guessable ids alone."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from podbrief.errors import RetryableError
from podbrief_delivery import subscribers
from podbrief_delivery.brief import Brief
from podbrief_delivery.deps import Deps, DepsDep
from podbrief_delivery.ratelimit import retry_after
from podbrief_delivery.tokens import TokenError, version_of

router = APIRouter(include_in_schema=False)
Token = Annotated[str | None, Query(max_length=2048)]

NO_SCRIPT_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def html(
    deps: Deps, template: str, status: int = 200, *, script: bool = False, cache: str = "no-store", **ctx: Any
) -> HTMLResponse:
    body = deps.renderer.page(template, **ctx)
    csp = (
        NO_SCRIPT_CSP.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
        if script
        else NO_SCRIPT_CSP
    )
    return HTMLResponse(
        body,
        status_code=status,
        headers={
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": cache,
        },
    )


def message(deps: Deps, title: str, *paragraphs: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    ctx.setdefault("secret", None)
    ctx.setdefault("form", None)
    return html(deps, "message.html.j2", status, title=title, paragraphs=list(paragraphs), **ctx)


def signup_page(
    deps: Deps, values: dict[str, Any] | None = None, error: str | None = None, status: int = 200
) -> HTMLResponse:
    s = deps.settings
    v = {
        "email": "",
        "interests": "",
        "topics": "",
        "shows": "",
        "timezone": s.default_timezone,
        "delivery_hour": s.default_delivery_hour,
        **(values or {}),
    }
    return html(
        deps,
        "signup.html.j2",
        status,
        script=True,
        values=v,
        error=error,
        picks=s.picks_per_brief,
        default_tz=s.default_timezone,
    )


def _limited(deps: Deps, endpoint: str, wait_s: float) -> HTMLResponse:
    deps.metrics.rate_limited.labels(endpoint).inc()
    page = message(
        deps,
        "Too many requests",
        f"Please wait {retry_after(wait_s)} seconds and try again.",
        status=429,
    )
    page.headers["Retry-After"] = retry_after(wait_s)
    return page


@router.get("/")
@router.get("/signup")
async def signup_form(deps: DepsDep) -> HTMLResponse:
    return signup_page(deps)


@router.post("/signup")
async def signup_submit(request: Request, deps: DepsDep) -> HTMLResponse:
    form = await request.form()
    values: dict[str, Any] = {
        k: str(form.get(k, ""))[:2000] for k in ("email", "interests", "topics", "shows", "timezone")
    }
    try:
        hour = int(str(form.get("delivery_hour", deps.settings.default_delivery_hour)))
    except ValueError:
        hour = -1
    values["delivery_hour"] = hour
    wait = deps.limits.signup(deps.limits.client(request), values["email"])
    if wait is not None:
        return _limited(deps, "signup", wait)
    try:
        await deps.sign_up(
            values["email"],
            subscribers.SignupProfile(
                interests=values["interests"],
                topics=[t for t in values["topics"].split(",") if t.strip()],
                followed_shows=[s for s in values["shows"].splitlines() if s.strip()],
                timezone=values["timezone"] or None,
                delivery_hour=hour,
            ),
        )
    except subscribers.InvalidInput as exc:
        return signup_page(deps, values, str(exc), status=422)
    except RetryableError:
        return signup_page(
            deps, values, "We could not send the confirmation email just now; please try again.", status=503
        )
    return message(
        deps,
        "Check your inbox",
        "We sent a confirmation link to your address. Open it to start receiving your brief.",
    )


@router.get("/confirm")
async def confirm_page(deps: DepsDep, t: Token = None) -> HTMLResponse:
    # A button, not an automatic confirmation: mail scanners fetch links, people press buttons.
    try:
        sub_id, claims = deps.signer.subscriber_of(t or "", "confirm")
        version = version_of(claims)
    except TokenError:
        return message(deps, "This link is not valid", "It may have expired; sign up again.", status=400)
    sub = await deps.repo.subscriber(sub_id)
    if sub is None or sub.status != "pending" or sub.token_version != version:
        return used_link(deps)
    return message(
        deps,
        "Confirm your subscription",
        "One click and your daily brief is on its way.",
        form={"action": "/confirm", "fields": {"t": t}, "button": "Confirm my subscription"},
    )


def used_link(deps: Deps) -> HTMLResponse:
    return message(
        deps,
        "This link was already used",
        "A confirmation link works once. If you unsubscribed since, sign up again for a new link.",
        status=400,
    )


@router.post("/confirm")
async def confirm_submit(request: Request, deps: DepsDep) -> HTMLResponse:
    wait = deps.limits.confirm(deps.limits.client(request))
    if wait is not None:
        return _limited(deps, "confirm", wait)
    form = await request.form()
    try:
        sub_id, claims = deps.signer.subscriber_of(str(form.get("t", "")), "confirm")
        sub, key = await subscribers.confirm(sub_id, version_of(claims), repo=deps.repo, metrics=deps.metrics)
    except subscribers.LinkUsed:
        return used_link(deps)
    except (TokenError, subscribers.InvalidInput):
        return message(deps, "This link is not valid", "It may have expired; sign up again.", status=400)
    return message(
        deps,
        "You're subscribed",
        f"Your first brief arrives at {sub.delivery_hour:02d}:00 ({sub.timezone}).",
        "Your personal API key (shown once) lets you read and change your profile through the API:",
        secret=key,
    )


def _unsub_token(deps: Deps, t: str | None) -> uuid.UUID | None:
    try:
        return deps.signer.subscriber_of(t or "", "unsubscribe")[0]
    except TokenError:
        return None


@router.get("/unsubscribe")
async def unsubscribe_page(deps: DepsDep, t: Token = None) -> HTMLResponse:
    if _unsub_token(deps, t) is None:
        return message(deps, "This link is not valid", status=400)
    return message(
        deps,
        "Unsubscribe",
        "Stop receiving the daily brief at this address?",
        form={"action": "/unsubscribe", "fields": {"t": t}, "button": "Unsubscribe"},
    )


@router.post("/unsubscribe")
async def unsubscribe(request: Request, deps: DepsDep, t: Token = None) -> Response:
    """Both the page's button and RFC 8058 one-click (POST List-Unsubscribe=One-Click to the header's URL)."""
    form = await request.form()
    token = t or str(form.get("t", ""))
    sub_id = _unsub_token(deps, token)
    if sub_id is None:
        return message(deps, "This link is not valid", status=400)
    await subscribers.unsubscribe(sub_id, repo=deps.repo, metrics=deps.metrics)
    if form.get("List-Unsubscribe") == "One-Click":
        return PlainTextResponse("unsubscribed")
    return message(deps, "You're unsubscribed", "You will not receive any more briefs. Sorry to see you go.")


@router.get("/feedback")
async def feedback(deps: DepsDep, t: Token = None) -> HTMLResponse:
    try:
        sub_id, body = deps.signer.subscriber_of(t or "", "feedback")
        insight_id = uuid.UUID(str(body.get("i")))
        kind = str(body.get("k"))
        await subscribers.apply_feedback(
            sub_id, insight_id, kind, repo=deps.repo, metrics=deps.metrics, feedback=deps.settings.feedback
        )
    except (TokenError, ValueError):
        return message(deps, "This link is not valid", status=400)
    text = {
        "up": "Thanks! We will show you more insights like this one.",
        "down": "Thanks! We will show you fewer insights like this one.",
        "more": "Noted: more like this in your next briefs.",
    }.get(kind, "Thanks!")
    if deps.settings.tracking:
        deps.metrics.clicks.labels("feedback").inc()
    return message(deps, "Thanks for the feedback", text)


def _viewer(deps: Deps, t: str | None) -> uuid.UUID | None:
    try:
        return deps.signer.subscriber_of(t or "", "view")[0]
    except TokenError:
        return None


@router.get("/briefs/{brief_id}")
async def brief_page(brief_id: uuid.UUID, deps: DepsDep, t: Token = None) -> HTMLResponse:
    viewer = _viewer(deps, t)
    row = await deps.repo.brief(brief_id) if viewer is not None else None
    if row is None or row.subscriber_id != viewer:
        return message(deps, "Brief not found", status=404)
    brief = Brief.model_validate(row.body)
    if deps.settings.tracking:
        deps.metrics.clicks.labels("web").inc()
    return html(
        deps,
        "page.html.j2",
        title=f"Your podcast brief, {brief.brief_date.isoformat()}",
        brief=brief,
        links=deps.links.for_brief(brief),
    )


@router.get("/archive")
async def archive(deps: DepsDep, t: Token = None) -> HTMLResponse:
    viewer = _viewer(deps, t)
    sub = await deps.repo.subscriber(viewer) if viewer is not None else None
    if sub is None:
        return message(deps, "Not found", status=404)
    entries = [
        {
            "date": b.brief_date,
            "count": len(b.body.get("items", [])),
            "url": deps.links.brief_page(sub.id, b.brief_id),
        }
        for b in await deps.repo.briefs(sub.id)
    ]
    return html(deps, "archive.html.j2", email=sub.email, entries=entries)


# A transparent 1x1 GIF.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")


@router.get("/o/{token}.gif")
async def open_pixel(token: str, deps: DepsDep) -> Response:
    if deps.settings.tracking:
        try:
            deps.signer.verify(token, "open")
            deps.metrics.opens.inc()
        except TokenError:
            pass  # a forged pixel counts nothing, and still gets its image
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})
