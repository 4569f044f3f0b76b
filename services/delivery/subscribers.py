"""Subscribers: sign-up with double opt-in, confirmation, their profile and API key, feedback, export,
unsubscribe, and the gauge of subscribers by state. Each function takes the dependencies it uses."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podbrief.clock import aware, utcnow
from podbrief.embeddings import TextEmbedder
from podbrief.errors import RetryableError
from podbrief_delivery import addresses
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.adapters.smtp import Mailer
from podbrief_delivery.interests import embed_interests, from_bytes, moved_by_feedback, to_bytes
from podbrief_delivery.metrics import DeliveryMetrics
from podbrief_delivery.models import Subscriber
from podbrief_delivery.render import Links, Renderer
from podbrief_delivery.settings import DeliverySettings, FeedbackSettings
from podbrief_delivery.tokens import hash_api_key, new_api_key

QuietPolicy = Literal["shorter", "note"]
STATES = ("pending", "active", "paused", "unsubscribed")
FEEDBACK_KINDS = ("up", "down", "more")


class InvalidInput(ValueError):
    """Input a person can fix (a bad email, an unknown time zone)."""


class SignUp(Protocol):
    """`sign_up` with its dependencies bound (`Deps.sign_up`)."""

    async def __call__(self, email: str, profile: SignupProfile) -> Subscriber: ...


def normalise_email(email: str) -> str:
    """The address as stored and sent to (`addresses.normalise_email`); InvalidInput saying what is wrong."""
    try:
        return addresses.normalise_email(email)
    except addresses.InvalidAddress as exc:
        raise InvalidInput(str(exc)) from exc


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)") from exc
    return tz


@dataclass
class SignupProfile:
    interests: str = ""
    topics: list[str] = field(default_factory=list)
    followed_shows: list[str] = field(default_factory=list)
    timezone: str | None = None
    delivery_hour: int | None = None
    quiet_day_policy: QuietPolicy | None = None


def _clean_list(items: Sequence[str], limit: int = 50) -> list[str]:
    out: list[str] = []
    for s in items:
        s = " ".join(str(s).split())[:200]
        if s and s not in out:
            out.append(s)
    return out[:limit]


async def refresh_gauge(*, repo: Repo, metrics: DeliveryMetrics) -> None:
    counts = await repo.counts_by_status()
    for state in STATES:
        metrics.subscribers.labels(state).set(counts.get(state, 0))


async def sign_up(
    email: str,
    profile: SignupProfile,
    *,
    repo: Repo,
    embedder: TextEmbedder,
    mailer: Mailer,
    renderer: Renderer,
    links: Links,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
) -> Subscriber:
    """Create (or refresh) a pending subscriber and email a confirmation link. An address that is already
    active is left untouched, and the caller answers the same either way (no address enumeration)."""
    s = settings
    addr = normalise_email(email)
    tz = check_timezone(profile.timezone or s.default_timezone)
    hour = s.default_delivery_hour if profile.delivery_hour is None else profile.delivery_hour
    if not 0 <= hour <= 23:
        raise InvalidInput("delivery_hour must be 0-23")
    topics = _clean_list(profile.topics, 20)
    fields: dict[str, Any] = {
        "interests": profile.interests.strip()[:2000],
        "topics": topics,
        "followed_shows": _clean_list(profile.followed_shows),
        "timezone": tz,
        "delivery_hour": hour,
        "quiet_day_policy": profile.quiet_day_policy or s.quiet_day_policy,
    }
    existing = await repo.subscriber_by_email(addr)
    if existing is not None and existing.status in ("active", "paused"):
        return existing
    fields.update(await embed_interests(fields["interests"], topics, embedder=embedder))
    if existing is None:
        now = utcnow()
        sub = Subscriber(
            id=uuid.uuid4(), email=addr, status="pending", token_version=0, created_at=now, updated_at=now, **fields
        )
        if not await repo.add_subscriber(sub):
            again = await repo.subscriber_by_email(addr)
            if again is None:
                raise RetryableError("subscriber insert raced and vanished")
            sub = again
    else:
        updated = await repo.update_subscriber(existing.id, status="pending", **fields)
        assert updated is not None
        sub = updated
    msg = renderer.confirmation_email(
        to=sub.email,
        sender=s.smtp.from_address,
        confirm_url=links.confirm(sub.id, s.confirmation_ttl_s, sub.token_version),
        hours=s.confirmation_ttl_s // 3600,
    )
    await mailer.send(msg)
    await refresh_gauge(repo=repo, metrics=metrics)
    return sub


async def add_active_subscriber(
    email: str,
    profile: SignupProfile,
    *,
    repo: Repo,
    embedder: TextEmbedder,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
) -> Subscriber:
    """An operator (CLI, embedded runner) adds someone directly: active at once, no email round trip."""
    s = settings
    addr = normalise_email(email)
    if await repo.subscriber_by_email(addr) is not None:
        raise InvalidInput(f"{addr} is already subscribed")
    tz = check_timezone(profile.timezone or s.default_timezone)
    hour = s.default_delivery_hour if profile.delivery_hour is None else profile.delivery_hour
    topics = _clean_list(profile.topics, 20)
    now = utcnow()
    sub = Subscriber(
        id=uuid.uuid4(),
        email=addr,
        status="active",
        interests=profile.interests.strip()[:2000],
        topics=topics,
        followed_shows=_clean_list(profile.followed_shows),
        timezone=tz,
        delivery_hour=hour,
        quiet_day_policy=profile.quiet_day_policy or s.quiet_day_policy,
        created_at=now,
        updated_at=now,
        confirmed_at=now,
        token_version=0,
        **(await embed_interests(profile.interests, topics, embedder=embedder)),
    )
    if not await repo.add_subscriber(sub):
        raise InvalidInput(f"{addr} is already subscribed")
    await refresh_gauge(repo=repo, metrics=metrics)
    return sub


class LinkUsed(InvalidInput):
    """A confirmation link that was used already, or replaced by a newer one (unsubscribing, a fresh sign-up)."""


async def confirm(sub_id: uuid.UUID, version: int, *, repo: Repo, metrics: DeliveryMetrics) -> tuple[Subscriber, str]:
    """Activate a pending subscriber and issue their API key (shown once). A confirmation token works once: it
    carries the subscriber's token version, which confirming moves on, so the same link (or any older one) is
    refused afterwards. It never re-activates an address that unsubscribed (that moved the version too) or was
    deleted: that takes a fresh sign-up and its new link."""
    sub = await repo.subscriber(sub_id)
    if sub is None:
        raise InvalidInput("this subscription no longer exists; sign up again")
    used = LinkUsed("this confirmation link was already used or has been replaced; sign up again for a new one")
    if sub.status != "pending" or sub.token_version != version:
        raise used
    key = new_api_key()
    updated = await repo.update_subscriber_if(
        sub.id,
        {"status": "pending", "token_version": version},
        bump_tokens=True,
        status="active",
        confirmed_at=utcnow(),
        api_key_hash=hash_api_key(key),
        paused_reason=None,
    )
    if updated is None:  # another request confirmed with the same token first
        raise used
    await refresh_gauge(repo=repo, metrics=metrics)
    return updated, key


async def activate(sub_id: uuid.UUID, *, repo: Repo, metrics: DeliveryMetrics) -> Subscriber:
    """An operator (the embedded runner) re-activates a pending or unsubscribed address without a token; its
    earlier tokens stay revoked and no API key is issued."""
    updated = await repo.update_subscriber(
        sub_id, bump_tokens=True, status="active", confirmed_at=utcnow(), paused_reason=None
    )
    if updated is None:
        raise InvalidInput("this subscription no longer exists")
    await refresh_gauge(repo=repo, metrics=metrics)
    return updated


async def rotate_key(sub_id: uuid.UUID, *, repo: Repo) -> str:
    """A new API key; the old one and every profile token issued before stop working."""
    key = new_api_key()
    await repo.update_subscriber(sub_id, bump_tokens=True, api_key_hash=hash_api_key(key))
    return key


async def update_profile(
    sub: Subscriber,
    changes: dict[str, Any],
    *,
    repo: Repo,
    embedder: TextEmbedder,
    metrics: DeliveryMetrics,
) -> Subscriber:
    values: dict[str, Any] = {}
    if "timezone" in changes and changes["timezone"] is not None:
        values["timezone"] = check_timezone(str(changes["timezone"]))
    if "delivery_hour" in changes and changes["delivery_hour"] is not None:
        values["delivery_hour"] = int(changes["delivery_hour"])
    if changes.get("quiet_day_policy") is not None:
        values["quiet_day_policy"] = changes["quiet_day_policy"]
    if changes.get("followed_shows") is not None:
        values["followed_shows"] = _clean_list(changes["followed_shows"])
    if changes.get("status") is not None:
        if changes["status"] not in ("active", "paused"):
            raise InvalidInput("status can be set to active or paused")
        if sub.status not in ("active", "paused"):
            raise InvalidInput("confirm the subscription first")
        values["status"] = changes["status"]
        values["paused_reason"] = None if changes["status"] == "active" else "paused by the subscriber"
    if changes.get("interests") is not None or changes.get("topics") is not None:
        interests = str(changes.get("interests") if changes.get("interests") is not None else sub.interests)[:2000]
        new_topics = changes.get("topics")
        topics = _clean_list(new_topics if new_topics is not None else list(sub.topics or []), 20)
        values.update(
            interests=interests, topics=topics, **(await embed_interests(interests, topics, embedder=embedder))
        )
    updated = await repo.update_subscriber(sub.id, **values) if values else sub
    assert updated is not None
    if "status" in values:
        await refresh_gauge(repo=repo, metrics=metrics)
    return updated


async def unsubscribe(sub_id: uuid.UUID, *, repo: Repo, metrics: DeliveryMetrics) -> bool:
    """Stop deliveries to a subscriber. False when there is no such subscriber."""
    sub = await repo.subscriber(sub_id)
    if sub is None:
        return False
    if sub.status != "unsubscribed":
        # The key goes and the token version moves: no earlier confirmation or profile token works again.
        await repo.update_subscriber(
            sub_id, bump_tokens=True, status="unsubscribed", api_key_hash=None, paused_reason="unsubscribed"
        )
        await refresh_gauge(repo=repo, metrics=metrics)
    return True


async def apply_feedback(
    sub_id: uuid.UUID,
    insight_id: uuid.UUID,
    kind: str,
    *,
    repo: Repo,
    metrics: DeliveryMetrics,
    feedback: FeedbackSettings,
) -> bool:
    """Move the subscriber's interest vector towards (up, more) or away from (down) an insight they were sent
    (`interests.moved_by_feedback`). Each (insight, kind) counts once, so a mail scanner following links cannot
    drag the profile further. False when there is no such subscriber."""
    if kind not in FEEDBACK_KINDS:
        raise InvalidInput("unknown feedback")
    sub = await repo.subscriber(sub_id)
    if sub is None:
        return False
    rows = await repo.insights([insight_id])
    row = rows.get(insight_id)
    if not await repo.add_feedback(sub_id, insight_id, kind):
        return True
    metrics.feedback.labels(kind).inc()
    if row is None:
        return True
    d = from_bytes(row.vector)
    if d is None:
        return True
    new = moved_by_feedback(from_bytes(sub.interest_vector), d, kind, feedback)
    if new is not None:
        await repo.update_subscriber(sub_id, interest_vector=to_bytes(new))
    return True


async def export(sub: Subscriber, *, repo: Repo) -> dict[str, Any]:
    """Everything stored about the subscriber (their right of access)."""
    briefs = await repo.briefs(sub.id)
    return {
        "subscriber": public_profile(sub),
        "briefs": [b.body for b in briefs],
        "deliveries": [
            {
                "brief_date": r.brief_date.isoformat(),
                "status": r.status,
                "attempts": r.attempts,
                "message_id": r.message_id,
                "detail": r.detail,
                "finished_at": aware(r.finished_at).isoformat() if r.finished_at else None,
            }
            for r in await repo.ledger(sub.id)
        ],
        "sent_insights": [
            {"insight_id": str(r.insight_id), "brief_date": r.brief_date.isoformat()} for r in await repo.sent(sub.id)
        ],
        "feedback": [
            {
                "insight_id": str(f.insight_id),
                "kind": f.kind,
                "created_at": aware(f.created_at).isoformat() if f.created_at else None,
            }
            for f in await repo.feedback(sub.id)
        ],
    }


def public_profile(sub: Subscriber) -> dict[str, Any]:
    return {
        "id": str(sub.id),
        "email": sub.email,
        "status": sub.status,
        "interests": sub.interests,
        "topics": list(sub.topics or []),
        "followed_shows": list(sub.followed_shows or []),
        "timezone": sub.timezone,
        "delivery_hour": sub.delivery_hour,
        "quiet_day_policy": sub.quiet_day_policy,
        "paused_reason": sub.paused_reason,
        "created_at": aware(sub.created_at).isoformat() if sub.created_at else None,
        "confirmed_at": aware(sub.confirmed_at).isoformat() if sub.confirmed_at else None,
    }
