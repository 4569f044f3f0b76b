"""Sending the briefs that are due: claim each (subscriber, date) in the delivery ledger, compose, send by SMTP
with retries, record the outcome, and announce it as BriefDelivered. Safe on many replicas at once: a brief is
sent only by the replica whose ledger claim for it succeeded."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from podbrief import logging as plog
from podbrief.bus import Publish
from podbrief.clock import aware, utcnow
from podbrief.embeddings import TextEmbedder
from podbrief.errors import PermanentError, RetryableError
from podbrief.events import BriefDelivered, BriefDeliveredPayload, new_event
from podbrief.events.ids import brief_id, event_id
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.adapters.smtp import Mailer
from podbrief_delivery.brief import Brief
from podbrief_delivery.composing import compose, load_pool
from podbrief_delivery.metrics import DeliveryMetrics
from podbrief_delivery.models import Subscriber
from podbrief_delivery.render import Links, Renderer
from podbrief_delivery.schedule import due_subscribers
from podbrief_delivery.settings import DeliverySettings, SmtpSettings
from podbrief_delivery.subscribers import refresh_gauge

log = logging.getLogger(__name__)

# Briefs handed to SMTP at once.
SENDS_IN_FLIGHT = 8


class Deliver(Protocol):
    """`deliver_due` with its dependencies bound (`Deps.deliver`)."""

    async def __call__(
        self,
        *,
        now: datetime | None = None,
        force: bool = False,
        day: date | None = None,
        only: Sequence[uuid.UUID] | None = None,
    ) -> DeliveryReport: ...


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


async def send_with_retries(
    message: EmailMessage, *, mailer: Mailer, smtp: SmtpSettings, metrics: DeliveryMetrics
) -> tuple[str, int]:
    """(message id, attempts): temporary failures are retried with backoff up to `smtp.max_attempts`."""
    attempt = 0
    while True:
        attempt += 1
        t0 = time.perf_counter()
        try:
            mid = await mailer.send(message)
            metrics.send_seconds.observe(time.perf_counter() - t0)
            return mid, attempt
        except RetryableError:
            if attempt >= smtp.max_attempts:
                raise
            await asyncio.sleep(smtp.retry_backoff_s * (2 ** (attempt - 1)))


async def reopen_day(sub: Subscriber, day: date, *, repo: Repo) -> bool:
    """Discard the brief of `day` (stored brief, ledger entry, what it marked as sent), so the next delivery run
    composes the day again from the candidates it then has. True if there was one. For an operator's deliberate
    re-composition (`podbrief run --force`); the scheduler never does this."""
    reopened = await repo.reopen_day(sub.id, day)
    if reopened:
        log.info("brief day reopened", extra={"subscriber_id": str(sub.id), "day": day.isoformat()})
    return reopened


async def deliver_due(
    *,
    repo: Repo,
    embedder: TextEmbedder,
    mailer: Mailer,
    renderer: Renderer,
    links: Links,
    publish: Publish,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
    now: datetime | None = None,
    force: bool = False,
    day: date | None = None,
    only: Sequence[uuid.UUID] | None = None,
    feed_ids: Collection[uuid.UUID] | None = None,
) -> DeliveryReport:
    """Compose and send every brief that is due now (`force`: due or not; `day`: for that date; `only`: for
    these subscribers; `feed_ids`: from those feeds' insights only, as the embedded runner composes from the
    feeds it was given)."""
    now = now or utcnow()
    report = DeliveryReport(started_at=now.isoformat())
    considered, due = await due_subscribers(now, repo=repo, settings=settings, force=force, day=day, only=only)
    report.considered, report.due = considered, len(due)
    if not due:
        report.finished_at = utcnow().isoformat()
        return report
    pool = await load_pool(now, repo=repo, embedder=embedder, ranking=settings.ranking, feed_ids=feed_ids)
    report.candidates = len(pool.cands)
    size = settings.batch_size
    sem = asyncio.Semaphore(SENDS_IN_FLIGHT)

    async def send(sub: Subscriber, brief: Brief, d: date, token: uuid.UUID, at: datetime | None) -> DeliveryOutcome:
        # Its log lines carry the brief's correlation id: the one its top pick's episode carried from the feed.
        with plog.bind(correlation_id=str(brief.correlation_id), brief_id=str(brief.brief_id)):
            async with sem:
                return await _send_one(
                    sub,
                    brief,
                    d,
                    token,
                    at,
                    repo=repo,
                    mailer=mailer,
                    renderer=renderer,
                    links=links,
                    publish=publish,
                    settings=settings,
                    metrics=metrics,
                )

    for i in range(0, len(due), size):
        claimed: list[tuple[Subscriber, date, uuid.UUID]] = []
        scheduled: dict[uuid.UUID, datetime] = {}
        for sub, d, at in due[i : i + size]:
            scheduled[sub.id] = at
            token = await repo.claim(sub.id, d, brief_id(sub.id, d), at, settings.claim_lease_s)
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
            row = await repo.brief_on(sub.id, d)
            if row is not None:
                stored[sub.id] = Brief.model_validate(row.body)
            else:
                fresh.append(sub)
        t0 = time.perf_counter()
        days = {s.id: d for s, d, _ in claimed}
        briefs = await compose(pool, fresh, days, now, repo=repo, settings=settings, metrics=metrics)
        report.ranking_seconds += time.perf_counter() - t0
        briefs.update(stored)
        outcomes = await asyncio.gather(*(send(s, briefs[s.id], d, t, scheduled.get(s.id)) for s, d, t in claimed))
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
    sub: Subscriber,
    brief: Brief,
    day: date,
    token: uuid.UUID,
    scheduled_at: datetime | None,
    *,
    repo: Repo,
    mailer: Mailer,
    renderer: Renderer,
    links: Links,
    publish: Publish,
    settings: DeliverySettings,
    metrics: DeliveryMetrics,
) -> DeliveryOutcome:
    smtp = settings.smtp
    await repo.save_brief(brief.brief_id, sub.id, day, brief.model_dump(mode="json"))
    outcome = DeliveryOutcome(str(sub.id), str(brief.brief_id), day.isoformat(), "sent", len(brief.items), brief.kind)
    message = renderer.brief_email(brief, links.for_brief(brief), to=sub.email, sender=smtp.from_address)
    try:
        mid, attempts = await send_with_retries(message, mailer=mailer, smtp=smtp, metrics=metrics)
    except RetryableError as exc:
        total = await repo.finish(sub.id, day, token, status="retry", attempts=smtp.max_attempts, detail=str(exc))
        metrics.failed.labels(exc.reason).inc()
        outcome.status, outcome.detail = "retry", str(exc)
        log.warning(
            "brief not sent",
            extra={
                "subscriber_id": str(sub.id),
                "brief_date": day.isoformat(),
                "reason": exc.reason,
                "attempts": total,
                "gives_up": total >= smtp.max_total_attempts,
            },
        )
        if total >= smtp.max_total_attempts:
            # Give up on this day's brief, visibly: the ledger and a BriefDelivered event say so.
            await repo.finish(
                sub.id,
                day,
                token,
                status="failed",
                attempts=0,
                detail=f"gave up after {total} attempts: {exc}",
            )
            outcome.status = "failed"
            await announce(brief, "failed", None, outcome.detail, publish=publish)
        return outcome
    except PermanentError as exc:
        await repo.finish(sub.id, day, token, status="failed", attempts=1, detail=str(exc))
        # A hard bounce: stop sending until the subscriber fixes their address.
        await repo.update_subscriber(sub.id, status="paused", paused_reason=f"delivery failed: {exc}"[:500])
        metrics.failed.labels(exc.reason).inc()
        log.error(
            "brief not delivered; subscriber paused",
            extra={"subscriber_id": str(sub.id), "brief_date": day.isoformat(), "reason": exc.reason},
        )
        await refresh_gauge(repo=repo, metrics=metrics)
        outcome.status, outcome.detail = "failed", str(exc)
        await announce(brief, "failed", None, str(exc), publish=publish)
        return outcome
    await repo.finish(sub.id, day, token, status="sent", attempts=attempts, message_id=mid)
    await repo.mark_sent(sub.id, brief.insight_ids, day)
    metrics.sent.inc()
    sent_at = utcnow()
    if scheduled_at is not None:
        metrics.send_delay.observe(max(0.0, (sent_at - aware(scheduled_at)).total_seconds()))
    for row in (await repo.insights(brief.insight_ids)).values():
        published = aware(row.published_at)
        if published is not None:
            metrics.insight_age.observe(max(0.0, (sent_at - published).total_seconds()))
    await announce(brief, "sent", mid, None, publish=publish)
    return outcome


async def announce(
    brief: Brief,
    status: Literal["sent", "failed"],
    message_id: str | None,
    detail: str | None,
    *,
    publish: Publish,
) -> None:
    """Publish BriefDelivered: one event per brief and outcome, with a deterministic id."""
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
    await publish(
        new_event(
            BriefDelivered,
            payload,
            key=str(brief.subscriber_id),
            correlation_id=brief.correlation_id,
            event_id=event_id("brief.delivered", f"{brief.brief_id}:{status}"),
        )
    )
