"""What delivery does, independent of HTTP and the bus: subscribers (sign-up, confirmation, profile, feedback,
export, delete), composing briefs, and `deliver_due`, the idempotent send of every brief that is due."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
from email_validator import EmailNotValidError, validate_email
from podbrief.errors import PermanentError, RetryableError
from podbrief.events import BriefDelivered, BriefDeliveredPayload, new_event
from podbrief.events.ids import NAMESPACE, brief_id
from podbrief_delivery.adapters import aware, utcnow
from podbrief_delivery.brief import Brief, build_item
from podbrief_delivery.deps import Deps
from podbrief_delivery.models import CandidateInsight, Subscriber
from podbrief_delivery.ranking import Candidates, Profile, rank
from podbrief_delivery.tokens import hash_api_key, new_api_key

log = logging.getLogger(__name__)

QuietPolicy = Literal["shorter", "note"]
STATES = ("pending", "active", "paused", "unsubscribed")


class InvalidInput(ValueError):
    """Input a person can fix (a bad email, an unknown time zone)."""


# --- subscribers ---


def normalise_email(email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(str(exc)) from exc


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris)") from exc
    return tz


def split_phrases(interests: str, topics: Sequence[str]) -> list[str]:
    parts = [p.strip(" .-•\t") for p in re.split(r"[,;\n]+", interests)]
    seen: set[str] = set()
    out: list[str] = []
    for p in [*parts, *topics]:
        p = p.strip()
        if p and p.casefold() not in seen and len(out) < 20:
            seen.add(p.casefold())
            out.append(p[:200])
    return out


def to_bytes(vec: np.ndarray) -> bytes:
    return np.asarray(vec, dtype=np.float32).tobytes()


def from_bytes(raw: bytes | None) -> np.ndarray | None:
    if not raw:
        return None
    return np.frombuffer(raw, dtype=np.float32)


def _normalise(v: np.ndarray) -> np.ndarray | None:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 1e-9 else None


async def embed_interests(deps: Deps, interests: str, topics: Sequence[str]) -> dict[str, Any]:
    """The interest vector is the normalised mean of the whole text and each phrase; phrases keep their own
    vectors to explain picks."""
    phrases = split_phrases(interests, topics)
    whole = " ".join([interests.strip(), *topics]).strip()
    if not whole:
        return {"interest_vector": None, "interest_phrases": [], "embedding_model": None}
    vecs = await asyncio.to_thread(deps.embedder.embed, [whole[:2000], *phrases])
    vec = _normalise(vecs.mean(axis=0))
    return {
        "interest_vector": to_bytes(vec) if vec is not None else None,
        "interest_phrases": [
            {"text": p, "vector": [round(float(x), 6) for x in vecs[i + 1]]} for i, p in enumerate(phrases)
        ],
        "embedding_model": deps.embedder.name,
    }


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


async def sign_up(deps: Deps, email: str, profile: SignupProfile) -> Subscriber:
    """Create (or refresh) a pending subscriber and email a confirmation link. An address that is already
    active is left untouched, and the caller answers the same either way (no address enumeration)."""
    s = deps.settings
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
    existing = await deps.repo.subscriber_by_email(addr)
    if existing is not None and existing.status in ("active", "paused"):
        return existing
    fields.update(await embed_interests(deps, fields["interests"], topics))
    if existing is None:
        now = utcnow()
        sub = Subscriber(id=uuid.uuid4(), email=addr, status="pending", created_at=now, updated_at=now, **fields)
        if not await deps.repo.add_subscriber(sub):
            again = await deps.repo.subscriber_by_email(addr)
            if again is None:
                raise RetryableError("subscriber insert raced and vanished")
            sub = again
    else:
        updated = await deps.repo.update_subscriber(existing.id, status="pending", **fields)
        assert updated is not None
        sub = updated
    msg = deps.renderer.confirmation_email(
        to=sub.email,
        sender=s.smtp.from_address,
        confirm_url=deps.links.confirm(sub.id, s.confirmation_ttl_s),
        hours=s.confirmation_ttl_s // 3600,
    )
    await deps.mailer.send(msg)
    await refresh_gauge(deps)
    return sub


async def add_active_subscriber(deps: Deps, email: str, profile: SignupProfile) -> Subscriber:
    """An operator (CLI, embedded runner) adds someone directly: active at once, no email round trip."""
    s = deps.settings
    addr = normalise_email(email)
    if await deps.repo.subscriber_by_email(addr) is not None:
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
        **(await embed_interests(deps, profile.interests, topics)),
    )
    if not await deps.repo.add_subscriber(sub):
        raise InvalidInput(f"{addr} is already subscribed")
    await refresh_gauge(deps)
    return sub


async def brief_files(deps: Deps, sub: Subscriber, day: date) -> tuple[str, bytes] | None:
    """The stored brief of `day` as a standalone HTML page and as the .eml that was sent (for the embedded
    runner, which writes both under its data directory)."""
    row = await deps.repo.brief_on(sub.id, day)
    if row is None:
        return None
    brief = Brief.model_validate(row.body)
    links = deps.links.for_brief(brief)
    msg = deps.renderer.brief_email(brief, links, to=sub.email, sender=deps.settings.smtp.from_address)
    page = deps.renderer.page("page.html.j2", title=f"Your podcast brief, {day.isoformat()}", brief=brief, links=links)
    return page, bytes(msg)


async def reopen_day(deps: Deps, sub: Subscriber, day: date) -> bool:
    """Discard the brief of `day` (stored brief, ledger entry, what it marked as sent), so the next delivery run
    composes the day again from the candidates it then has. True if there was one. For an operator's deliberate
    re-composition (`podbrief run --force`); the scheduler never does this."""
    reopened = await deps.repo.reopen_day(sub.id, day)
    if reopened:
        log.info("brief day reopened", extra={"subscriber_id": str(sub.id), "day": day.isoformat()})
    return reopened


async def confirm(deps: Deps, sub_id: uuid.UUID) -> tuple[Subscriber, str | None]:
    """Activate a pending subscriber and issue their API key (shown once). Confirming twice is harmless."""
    sub = await deps.repo.subscriber(sub_id)
    if sub is None:
        raise InvalidInput("this subscription no longer exists")
    if sub.status not in ("pending", "unsubscribed"):
        return sub, None
    key = new_api_key()
    updated = await deps.repo.update_subscriber(
        sub.id, status="active", confirmed_at=utcnow(), api_key_hash=hash_api_key(key), paused_reason=None
    )
    assert updated is not None
    await refresh_gauge(deps)
    return updated, key


async def rotate_key(deps: Deps, sub_id: uuid.UUID) -> str:
    key = new_api_key()
    await deps.repo.update_subscriber(sub_id, api_key_hash=hash_api_key(key))
    return key


async def update_profile(deps: Deps, sub: Subscriber, changes: dict[str, Any]) -> Subscriber:
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
        values.update(interests=interests, topics=topics, **(await embed_interests(deps, interests, topics)))
    updated = await deps.repo.update_subscriber(sub.id, **values) if values else sub
    assert updated is not None
    if "status" in values:
        await refresh_gauge(deps)
    return updated


async def unsubscribe(deps: Deps, sub_id: uuid.UUID) -> bool:
    sub = await deps.repo.subscriber(sub_id)
    if sub is None:
        return False
    if sub.status != "unsubscribed":
        await deps.repo.update_subscriber(
            sub_id, status="unsubscribed", api_key_hash=None, paused_reason="unsubscribed"
        )
        await refresh_gauge(deps)
    return True


async def apply_feedback(deps: Deps, sub_id: uuid.UUID, insight_id: uuid.UUID, kind: str) -> bool:
    """Rocchio: q' = normalise(alpha q + beta d) for "up", beta = more_like_this for "more", and
    normalise(alpha q - gamma d) for "down", where d is the insight's vector. Each (insight, kind)
    counts once, so a mail scanner following links cannot drag the profile further."""
    if kind not in ("up", "down", "more"):
        raise InvalidInput("unknown feedback")
    sub = await deps.repo.subscriber(sub_id)
    if sub is None:
        return False
    rows = await deps.repo.insights([insight_id])
    row = rows.get(insight_id)
    if not await deps.repo.add_feedback(sub_id, insight_id, kind):
        return True
    deps.metrics.feedback.labels(kind).inc()
    if row is None:
        return True
    d = from_bytes(row.vector)
    q = from_bytes(sub.interest_vector)
    fb = deps.settings.feedback
    if d is None:
        return True
    if q is None or q.shape != d.shape:
        new = _normalise(d) if kind in ("up", "more") else None
    else:
        weight = {"up": fb.beta, "more": fb.more_like_this, "down": -fb.gamma}[kind]
        new = _normalise(fb.alpha * q + weight * d)
    if new is not None:
        await deps.repo.update_subscriber(sub_id, interest_vector=to_bytes(new))
    return True


async def export(deps: Deps, sub: Subscriber) -> dict[str, Any]:
    briefs = await deps.repo.briefs(sub.id)
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
            for r in await deps.repo.ledger(sub.id)
        ],
        "sent_insights": [
            {"insight_id": str(r.insight_id), "brief_date": r.brief_date.isoformat()}
            for r in await deps.repo.sent(sub.id)
        ],
        "feedback": [
            {
                "insight_id": str(f.insight_id),
                "kind": f.kind,
                "created_at": aware(f.created_at).isoformat() if f.created_at else None,
            }
            for f in await deps.repo.feedback(sub.id)
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


async def refresh_gauge(deps: Deps) -> None:
    counts = await deps.repo.counts_by_status()
    for state in STATES:
        deps.metrics.subscribers.labels(state).set(counts.get(state, 0))


# --- composing ---


@dataclass
class Pool:
    rows: dict[uuid.UUID, CandidateInsight]
    cands: Candidates


async def load_pool(deps: Deps, now: datetime, feed_ids: Collection[uuid.UUID] | None = None) -> Pool:
    """The candidates of the ranking window (of those feeds only, when given)."""
    since = now - timedelta(days=deps.settings.ranking.max_age_days)
    rows = await deps.repo.candidates(since, feed_ids)
    dim = getattr(deps.embedder, "dim", None)
    usable = [r for r in rows if r.vector and (dim is None or len(r.vector) == 4 * dim)]
    if usable:
        width = len(usable[0].vector)
        usable = [r for r in usable if len(r.vector) == width]
    vectors = (
        np.frombuffer(b"".join(r.vector for r in usable), dtype=np.float32).reshape(len(usable), -1)
        if usable
        else np.zeros((0, 1), dtype=np.float32)
    )
    cands = Candidates.build(
        ids=[r.insight_id for r in usable],
        vectors=vectors,
        importance=[r.importance for r in usable],
        cluster_ids=[r.cluster_id for r in usable],
        cluster_sizes=[r.cluster_size for r in usable],
        cluster_shows=[r.cluster_shows for r in usable],
        shows=[r.show for r in usable],
        times=[aware(r.published_at) or aware(r.received_at) or now for r in usable],
        now=now,
        settings=deps.settings.ranking,
    )
    return Pool({r.insight_id: r for r in usable}, cands)


def profile_of(sub: Subscriber, sent: set[uuid.UUID]) -> Profile:
    return Profile(
        sub.id,
        from_bytes(sub.interest_vector),
        frozenset(s.casefold() for s in (sub.followed_shows or [])),
        frozenset(sent),
    )


async def compose(
    deps: Deps, pool: Pool, subs: Sequence[Subscriber], days: dict[uuid.UUID, date], now: datetime
) -> dict[uuid.UUID, Brief]:
    """Rank and build the brief of each subscriber for their day, excluding what earlier days sent."""
    s = deps.settings
    out: dict[uuid.UUID, Brief] = {}
    for i in range(0, len(subs), s.batch_size):
        batch = list(subs[i : i + s.batch_size])
        sent: dict[uuid.UUID, set[uuid.UUID]] = {}
        for day in {days[x.id] for x in batch}:
            ids = [x.id for x in batch if days[x.id] == day]
            sent.update(await deps.repo.sent_map(ids, excluding_day=day))
        t0 = time.perf_counter()
        ranked = rank(pool.cands, [profile_of(x, sent.get(x.id, set())) for x in batch], s.ranking, s.picks_per_brief)
        deps.metrics.ranking_seconds.observe(time.perf_counter() - t0)
        for sub, r in zip(batch, ranked, strict=True):
            out[sub.id] = build_brief(deps, pool, sub, r.picks, days[sub.id], now)
    return out


def build_brief(deps: Deps, pool: Pool, sub: Subscriber, picks: Sequence[Any], day: date, now: datetime) -> Brief:
    s = deps.settings
    k = s.picks_per_brief
    vector_default = np.zeros(pool.cands.vectors.shape[1] if len(pool.cands) else 1, dtype=np.float32)
    items = []
    for n, p in enumerate(picks, start=1):
        row = pool.rows[pool.cands.ids[p.index]]
        vec = pool.cands.vectors[p.index] if len(pool.cands) else vector_default
        items.append(
            build_item(
                n,
                p,
                row,
                pool.rows,
                phrases=list(sub.interest_phrases or []),
                vector=vec,
                min_relevance=s.ranking.min_relevance,
                related_min=s.related_min,
                related_max=s.related_max,
            )
        )
    note: str | None = None
    kind: Literal["full", "shorter", "note"] = "full"
    if len(items) < k:
        if items and sub.quiet_day_policy == "shorter":
            kind = "shorter"
            note = (
                f"A quiet day: {len(items)} new insight{'s' if len(items) != 1 else ''} "
                "matched your interests, "
                "so this brief is shorter than usual."
            )
        else:
            kind, items = "note", []
            note = (
                "Nothing new today that matches your interests closely enough to be worth your time. "
                "We will be back tomorrow; you can broaden your interests at any time."
            )
    deps.metrics.composed.labels(kind).inc()
    return Brief(
        brief_id=brief_id(sub.id, day),
        subscriber_id=sub.id,
        brief_date=day,
        generated_at=now,
        kind=kind,
        note=note,
        items=items,
    )


async def compose_one(deps: Deps, sub: Subscriber, day: date, now: datetime | None = None) -> Brief:
    now = now or utcnow()
    pool = await load_pool(deps, now)
    return (await compose(deps, pool, [sub], {sub.id: day}, now))[sub.id]


# --- sending ---


@dataclass
class DeliveryOutcome:
    subscriber_id: str
    brief_id: str
    brief_date: str
    status: str  # sent | failed | retry | skipped
    picks: int
    kind: str | None = None
    detail: str | None = None


@dataclass
class DeliveryReport:
    started_at: str
    finished_at: str = ""
    considered: int = 0
    due: int = 0
    claimed: int = 0
    already_claimed: int = 0
    sent: int = 0
    failed: int = 0
    retry: int = 0
    skipped: int = 0
    candidates: int = 0
    ranking_seconds: float = 0.0
    outcomes: list[DeliveryOutcome] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def local_day(sub: Subscriber, now: datetime) -> tuple[date, datetime, bool]:
    """The subscriber's local date, when their delivery hour falls on it (UTC), and whether it has come.
    zoneinfo does the DST arithmetic: on a spring-forward day a 02:00 delivery goes out at 03:00 local."""
    tz = ZoneInfo(sub.timezone)
    local = now.astimezone(tz)
    day = local.date()
    at = datetime(day.year, day.month, day.day, sub.delivery_hour, tzinfo=tz).astimezone(UTC)
    return day, at, local.hour >= sub.delivery_hour or now >= at


def missed_days(sub: Subscriber, today: date, days: int, now: datetime) -> list[tuple[Subscriber, date, datetime]]:
    """Earlier local days whose delivery time passed while the subscriber was active: candidates for a late
    brief if the ledger has nothing for them (a service that was down must not skip a day in silence)."""
    since = aware(sub.confirmed_at) or aware(sub.created_at)
    tz = ZoneInfo(sub.timezone)
    out = []
    for k in range(1, days + 1):
        d = today - timedelta(days=k)
        at = datetime(d.year, d.month, d.day, sub.delivery_hour, tzinfo=tz).astimezone(UTC)
        if since is not None and since <= at < now:
            out.append((sub, d, at))
    return out


async def due_subscribers(
    deps: Deps,
    now: datetime,
    *,
    force: bool = False,
    day: date | None = None,
    only: Sequence[uuid.UUID] | None = None,
) -> tuple[int, list[tuple[Subscriber, date, datetime]]]:
    subs = await deps.repo.subscribers(["active"])
    if only is not None:
        wanted = set(only)
        subs = [x for x in subs if x.id in wanted]
    due: list[tuple[Subscriber, date, datetime]] = []
    for sub in subs:
        try:
            d, at, come = local_day(sub, now)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("subscriber has an unknown time zone; using UTC", extra={"subscriber_id": str(sub.id)})
            sub.timezone = "UTC"
            d, at, come = local_day(sub, now)
        if day is not None:
            d = day
        if force or come:
            due.append((sub, d, at))
        if day is None and not force:
            due.extend(missed_days(sub, d, deps.settings.catch_up_days, now))
    stale_before = utcnow() - timedelta(seconds=deps.settings.claim_lease_s)
    done = await deps.repo.ledger_keys({d for _, d, _ in due}, stale_before)
    return len(subs), [(s, d, at) for s, d, at in due if (s.id, d) not in done]


async def send_with_retries(deps: Deps, message: Any) -> tuple[str, int]:
    smtp = deps.settings.smtp
    attempt = 0
    while True:
        attempt += 1
        t0 = time.perf_counter()
        try:
            mid = await deps.mailer.send(message)
            deps.metrics.send_seconds.observe(time.perf_counter() - t0)
            return mid, attempt
        except RetryableError:
            if attempt >= smtp.max_attempts:
                raise
            await asyncio.sleep(smtp.retry_backoff_s * (2 ** (attempt - 1)))


async def deliver_due(
    deps: Deps,
    *,
    now: datetime | None = None,
    force: bool = False,
    day: date | None = None,
    only: Sequence[uuid.UUID] | None = None,
    feed_ids: Collection[uuid.UUID] | None = None,
) -> DeliveryReport:
    """Compose and send every brief that is due now. Safe to run on many replicas at once: a brief is
    sent only by the replica whose ledger insert for (subscriber, date) succeeded. `feed_ids` limits the
    candidates to those feeds' insights (the embedded runner composes from the feeds it was given)."""
    now = now or utcnow()
    report = DeliveryReport(started_at=now.isoformat())
    considered, due = await due_subscribers(deps, now, force=force, day=day, only=only)
    report.considered, report.due = considered, len(due)
    if not due:
        report.finished_at = utcnow().isoformat()
        return report
    pool = await load_pool(deps, now, feed_ids)
    report.candidates = len(pool.cands)
    size = deps.settings.batch_size
    sem = asyncio.Semaphore(8)
    for i in range(0, len(due), size):
        claimed: list[tuple[Subscriber, date, uuid.UUID]] = []
        scheduled: dict[uuid.UUID, datetime] = {}
        for sub, d, at in due[i : i + size]:
            scheduled[sub.id] = at
            token = await deps.repo.claim(sub.id, d, brief_id(sub.id, d), at, deps.settings.claim_lease_s)
            if token is None:
                report.already_claimed += 1
            else:
                claimed.append((sub, d, token))
        report.claimed += len(claimed)
        if not claimed:
            continue
        # A brief stored by an earlier attempt (a temporary SMTP failure) is re-sent as it was.
        stored: dict[uuid.UUID, Brief] = {}
        fresh: list[Subscriber] = []
        for sub, d, _ in claimed:
            row = await deps.repo.brief_on(sub.id, d)
            if row is not None:
                stored[sub.id] = Brief.model_validate(row.body)
            else:
                fresh.append(sub)
        t0 = time.perf_counter()
        briefs = await compose(deps, pool, fresh, {s.id: d for s, d, _ in claimed}, now)
        report.ranking_seconds += time.perf_counter() - t0
        briefs.update(stored)

        async def one(sub: Subscriber, brief: Brief, d: date, token: uuid.UUID, at: datetime | None) -> DeliveryOutcome:
            async with sem:
                return await _send_one(deps, sub, brief, d, token, at)

        outcomes = await asyncio.gather(*(one(s, briefs[s.id], d, t, scheduled.get(s.id)) for s, d, t in claimed))
        for o in outcomes:
            report.outcomes.append(o)
            setattr(report, o.status, getattr(report, o.status) + 1)
    report.finished_at = utcnow().isoformat()
    log.info(
        "delivery run finished",
        extra={
            "due": report.due,
            "sent": report.sent,
            "failed": report.failed,
            "retry": report.retry,
            "already_claimed": report.already_claimed,
        },
    )
    return report


async def _send_one(
    deps: Deps, sub: Subscriber, brief: Brief, day: date, token: uuid.UUID, scheduled_at: datetime | None = None
) -> DeliveryOutcome:
    await deps.repo.save_brief(brief.brief_id, sub.id, day, brief.model_dump(mode="json"))
    outcome = DeliveryOutcome(str(sub.id), str(brief.brief_id), day.isoformat(), "sent", len(brief.items), brief.kind)
    links = deps.links.for_brief(brief)
    message = deps.renderer.brief_email(brief, links, to=sub.email, sender=deps.settings.smtp.from_address)
    try:
        mid, attempts = await send_with_retries(deps, message)
    except RetryableError as exc:
        smtp = deps.settings.smtp
        total = await deps.repo.finish(sub.id, day, token, status="retry", attempts=smtp.max_attempts, detail=str(exc))
        deps.metrics.failed.labels(exc.reason or "temporary").inc()
        outcome.status, outcome.detail = "retry", str(exc)
        if total >= smtp.max_total_attempts:
            # Give up on this day's brief, visibly: the ledger and a BriefDelivered event say so.
            await deps.repo.finish(
                sub.id,
                day,
                token,
                status="failed",
                attempts=0,
                detail=f"gave up after {total} attempts: {exc}",
            )
            outcome.status = "failed"
            await _publish(deps, brief, "failed", None, outcome.detail)
        return outcome
    except PermanentError as exc:
        await deps.repo.finish(sub.id, day, token, status="failed", attempts=1, detail=str(exc))
        # A hard bounce: stop sending until the subscriber fixes their address.
        await deps.repo.update_subscriber(sub.id, status="paused", paused_reason=f"delivery failed: {exc}"[:500])
        deps.metrics.failed.labels(exc.reason or "permanent").inc()
        await refresh_gauge(deps)
        outcome.status, outcome.detail = "failed", str(exc)
        await _publish(deps, brief, "failed", None, str(exc))
        return outcome
    await deps.repo.finish(sub.id, day, token, status="sent", attempts=attempts, message_id=mid)
    await deps.repo.mark_sent(sub.id, brief.insight_ids, day)
    deps.metrics.sent.inc()
    sent_at = utcnow()
    if scheduled_at is not None:
        deps.metrics.send_delay.observe(max(0.0, (sent_at - aware(scheduled_at)).total_seconds()))
    for row in (await deps.repo.insights(brief.insight_ids)).values():
        published = aware(row.published_at)
        if published is not None:
            deps.metrics.insight_age.observe(max(0.0, (sent_at - published).total_seconds()))
    await _publish(deps, brief, "sent", mid, None)
    return outcome


async def _publish(
    deps: Deps, brief: Brief, status: Literal["sent", "failed"], message_id: str | None, detail: str | None
) -> None:
    payload = BriefDeliveredPayload(
        brief_id=brief.brief_id,
        subscriber_id=brief.subscriber_id,
        brief_date=brief.brief_date,
        insight_ids=tuple(brief.insight_ids),
        channel="email",
        status=status,
        message_id=message_id,
        detail=detail,
    )
    await deps.publish(
        new_event(
            BriefDelivered,
            payload,
            key=str(brief.subscriber_id),
            event_id=uuid.uuid5(NAMESPACE, f"brief-delivered:{brief.brief_id}:{status}"),
        )
    )


async def scheduler_loop(deps: Deps) -> None:
    """Every interval: send what is due. A run that fails is logged and tried again next tick; five
    failures in a row end the loop, which makes the service unready so the orchestrator restarts it."""
    failures = 0
    await refresh_gauge(deps)
    while True:
        try:
            await deliver_due(deps)
            await refresh_gauge(deps)
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            failures += 1
            log.exception("delivery run failed", extra={"consecutive_failures": failures})
            if failures >= 5:
                raise
        await asyncio.sleep(deps.settings.scheduler_interval_s)
