"""`podbrief subscribers ...` and `podbrief brief ...`: manage subscribers and compose a brief from what the
delivery database holds (settings from DELIVERY_* / .env, like the service)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from podbrief.terminal import safe

T = TypeVar("T")

subscribers_app = typer.Typer(help="Manage delivery subscribers.", no_args_is_help=True)


class LazyEmbedder:
    """Loads the ONNX model only when a command really embeds text (composing a brief does not)."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._inner: Any = None

    @property
    def name(self) -> str:
        return str(self._settings.name)

    @property
    def dim(self) -> int:
        return int(self._settings.dim)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._inner is None:
            from podbrief.embeddings import Embedder

            self._inner = Embedder(self._settings)
        return self._inner.embed(texts)  # type: ignore[no-any-return]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(safe(message), fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def _run(fn: Callable[[Any], Awaitable[T]]) -> T:
    from podbrief_delivery.app import make_deps
    from podbrief_delivery.settings import DeliverySettings
    from pydantic import ValidationError

    try:
        settings = DeliverySettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"invalid delivery settings: {first.get('msg', exc)}") from None

    async def main() -> T:
        async with make_deps(settings, embedder=LazyEmbedder(settings.embedding)) as deps:
            return await fn(deps)

    return asyncio.run(main())


async def _by_email(deps: Any, email: str) -> Any:
    from podbrief_delivery.subscribers import InvalidInput, normalise_email

    try:
        addr = normalise_email(email)
    except InvalidInput as exc:
        raise _fail(f"invalid email: {exc}") from None
    sub = await deps.repo.subscriber_by_email(addr)
    if sub is None:
        raise _fail(f"no subscriber {addr}")
    return sub


@subscribers_app.command("add")
def add(
    email: Annotated[str, typer.Argument(help="the subscriber's address")],
    interests: Annotated[str, typer.Option(help="interests in their own words")] = "",
    topic: Annotated[list[str] | None, typer.Option("--topic", help="a topic (repeatable)")] = None,
    show: Annotated[list[str] | None, typer.Option("--show", help="a followed show (repeatable)")] = None,
    timezone: Annotated[str | None, typer.Option(help="IANA time zone, e.g. Europe/Paris")] = None,
    hour: Annotated[int | None, typer.Option(min=0, max=23, help="local delivery hour")] = None,
    confirm: Annotated[
        bool,
        typer.Option("--confirm/--opt-in", help="activate at once (operator) or email a confirmation link"),
    ] = True,
) -> None:
    """Add a subscriber (active at once unless --opt-in, which emails the confirmation link)."""
    from podbrief.errors import RetryableError
    from podbrief_delivery.subscribers import InvalidInput, SignupProfile, add_active_subscriber

    async def go(deps: Any) -> str:
        profile = SignupProfile(
            interests=interests,
            topics=list(topic or []),
            followed_shows=list(show or []),
            timezone=timezone,
            delivery_hour=hour,
        )
        try:
            if confirm:
                # An operator adding someone directly: no email round trip.
                sub = await add_active_subscriber(
                    email, profile, repo=deps.repo, embedder=deps.embedder, settings=deps.settings, metrics=deps.metrics
                )
            else:
                sub = await deps.sign_up(email, profile)
        except InvalidInput as exc:
            raise _fail(str(exc), 2) from None
        except RetryableError as exc:
            raise _fail(f"could not send the confirmation email: {exc}") from None
        return f"{sub.email}\t{sub.id}\t{sub.status}"

    typer.echo(safe(_run(go)))


@subscribers_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="pending|active|paused|unsubscribed")] = None,
) -> None:
    """List subscribers (tab-separated: email, id, status, time zone, hour, interests)."""

    async def go(deps: Any) -> list[Any]:
        return list(await deps.repo.subscribers([status] if status else None))

    for s in _run(go):
        typer.echo(safe(f"{s.email}\t{s.id}\t{s.status}\t{s.timezone}\t{s.delivery_hour:02d}:00\t{s.interests}"))


def _set_status(email: str, status: str, reason: str | None) -> None:
    async def go(deps: Any) -> None:
        sub = await _by_email(deps, email)
        await deps.repo.update_subscriber(sub.id, status=status, paused_reason=reason)

    _run(go)
    typer.echo(f"{email}: {status}")


@subscribers_app.command("pause")
def pause(email: str) -> None:
    """Pause deliveries to EMAIL."""
    _set_status(email, "paused", "paused by an operator")


@subscribers_app.command("resume")
def resume(email: str) -> None:
    """Resume deliveries to EMAIL."""
    _set_status(email, "active", None)


@subscribers_app.command("remove")
def remove(email: str) -> None:
    """Delete EMAIL and everything stored about them."""

    async def go(deps: Any) -> None:
        sub = await _by_email(deps, email)
        await deps.repo.delete_subscriber(sub.id)

    _run(go)
    typer.echo(f"{email}: removed")


def brief(
    subscriber: Annotated[str, typer.Option("--subscriber", "-s", help="the subscriber's email")],
    day: Annotated[str | None, typer.Option("--date", help="YYYY-MM-DD (default: today in their time zone)")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text | html | json")] = "text",
    send: Annotated[bool, typer.Option("--send", help="send it by email (once per subscriber and date)")] = False,
) -> None:
    """Compose SUBSCRIBER's brief from the stored insights and print it, or send it with --send."""
    if fmt not in ("text", "html", "json"):
        raise _fail("--format must be text, html or json", 2)
    try:
        wanted = date.fromisoformat(day) if day else None
    except ValueError:
        raise _fail(f"--date must be YYYY-MM-DD, not {day!r}", 2) from None

    async def go(deps: Any) -> str:
        from podbrief.clock import utcnow
        from podbrief_delivery.brief import Brief
        from podbrief_delivery.composing import compose_one
        from podbrief_delivery.schedule import local_day

        sub = await _by_email(deps, subscriber)
        now = utcnow()
        d = wanted or local_day(sub, now)[0]
        if send:
            if sub.status != "active":
                raise _fail(f"{sub.email} is {sub.status}; nothing sent")
            report = await deps.deliver(now=now, force=True, day=d, only=[sub.id])
            if not report.outcomes:
                raise _fail(f"the brief of {d.isoformat()} was already delivered to {sub.email}")
            o = report.outcomes[0]
            if o.status != "sent":
                raise _fail(f"{o.status}: {o.detail}")
            return f"sent {o.picks} insight(s) to {sub.email} for {o.brief_date}"
        stored = await deps.repo.brief_on(sub.id, d)
        b = (
            Brief.model_validate(stored.body)
            if stored
            else await compose_one(
                sub, d, now, repo=deps.repo, embedder=deps.embedder, settings=deps.settings, metrics=deps.metrics
            )
        )
        if fmt == "json":
            return json.dumps(b.model_dump(mode="json"), indent=2, ensure_ascii=False)
        links = deps.links.for_brief(b)
        html: str
        text: str
        html, text = deps.renderer.email_bodies(b, links)
        return html if fmt == "html" else text

    # Text from transcripts and feeds: nothing in it may drive the terminal.
    out = safe(_run(go))
    sys.stdout.write(out if out.endswith("\n") else out + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(subscribers_app, name="subscribers")
    app.command("brief")(brief)
