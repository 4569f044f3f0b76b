"""Composing and sending through the real SMTP sink: the MIME of the email, escaping, the ledger (no
double send across replicas, retries, bounces), quiet days, feedback, handler idempotency, export, delete."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import numpy as np
import pytest
from podbrief.embeddings import Embedder
from podbrief.events import BriefDelivered
from podbrief.events.ids import brief_id
from podbrief_delivery import schedule, subscribers
from podbrief_delivery.app import make_deps
from podbrief_delivery.deps import Deps
from podbrief_delivery.handlers import on_insight_clustered
from podbrief_delivery.models import Subscriber
from podbrief_delivery.settings import DeliverySettings, RankingSettings
from podbrief_testing import SmtpSink
from podbrief_testing.delivery import NOW, clustered, day_events

pytestmark = pytest.mark.unit


async def feedback(deps: Deps, sub_id: uuid.UUID, insight_id: uuid.UUID, kind: str) -> bool:
    return await subscribers.apply_feedback(
        sub_id, insight_id, kind, repo=deps.repo, metrics=deps.metrics, feedback=deps.settings.feedback
    )


async def seed(deps: Deps, embedder: Embedder, **kw: Any) -> None:
    for ev in day_events(embedder, **kw):
        await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder, metrics=deps.metrics)


async def subscriber(deps: Deps, email: str, interests: str, **kw: Any) -> Subscriber:
    sub = await deps.sign_up(email, subscribers.SignupProfile(interests=interests, **kw))
    sub, key = await subscribers.confirm(sub.id, sub.token_version, repo=deps.repo, metrics=deps.metrics)
    assert key is not None and sub.status == "active"
    return sub


def briefs_in(sink: SmtpSink) -> list[EmailMessage]:
    return [m for m in sink.messages if m["X-Podbrief-Brief-Id"]]


def parts(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


async def test_brief_email_mime_structure(deps: Deps, embedder: Embedder, smtp_sink: SmtpSink) -> None:
    await seed(deps, embedder)
    sub = await subscriber(
        deps,
        "Reader@Example.com",
        "home batteries, energy storage, nuclear power, AI models, sleep and health",
    )
    confirm_mail = smtp_sink.messages[0]
    assert confirm_mail["Subject"] == "Confirm your podbrief subscription"
    assert "/confirm?t=" in parts(confirm_mail)[0]

    report = await deps.deliver(now=NOW, force=True)
    assert (report.due, report.claimed, report.sent) == (1, 1, 1)
    [msg] = briefs_in(smtp_sink)
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["To"] == "reader@example.com"
    assert msg["Subject"].startswith("Your podcast brief, Sun 29 Nov: ")
    assert msg["List-Unsubscribe"].startswith("<http://testserver/unsubscribe?t=")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Message-ID"] and msg["Date"]
    text, html = parts(msg)
    assert html.count('class="card pick"') == 5
    # The most relevant insight leads, with its quote, show, episode and a seekable timestamp link.
    first = report.outcomes[0]
    assert first.picks == 5
    assert "1. Home batteries" in text or "1. Falling lithium" in text or "1. A home battery" in text
    assert "That is what we found." in html and "https://cdn.example.com/ep.mp3#t=" in html
    assert "▶ 01:00" in html or "▶ 01:37" in html or "▶ 02:14" in html
    assert "Related insights" in html and "Matches your interest in" in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert 'style="' in html  # CSS inlined for clients that drop <style>
    assert "/o/" not in html, "open tracking is off by default"
    # One cluster per pick.
    brief = await deps.repo.brief_on(sub.id, NOW.date())
    assert brief is not None
    items = brief.body["items"]
    assert len({i["insight_id"] for i in items}) == 5
    assert all(2 <= len(i["related"]) <= 5 for i in items if i["cluster_size"] >= 3)
    for it in items:
        assert all(r["show"] != it["show"] for r in it["related"][:1]) or len(it["related"]) == 0
    [event] = deps.published  # type: ignore[attr-defined]
    assert isinstance(event, BriefDelivered) and event.payload.status == "sent"
    assert len(event.payload.insight_ids) == 5
    # Each pick carries its episode's correlation id (the test events use the episode id, as ingest does); the
    # brief, its BriefDelivered event and its email carry the top pick's.
    assert all(i["correlation_id"] == i["episode_id"] for i in items)
    assert str(event.correlation_id) == items[0]["correlation_id"] == msg["X-Podbrief-Correlation-Id"]


async def test_a_brief_without_picks_is_correlated_by_its_own_id(
    deps: Deps, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    sub = await subscriber(deps, "quiet@example.com", "medieval tapestry restoration")
    report = await deps.deliver(now=NOW, force=True)
    assert report.sent == 1 and report.outcomes[0].kind == "note"
    [event] = deps.published  # type: ignore[attr-defined]
    [msg] = briefs_in(smtp_sink)
    assert event.correlation_id == event.payload.brief_id == brief_id(sub.id, NOW.date())
    assert msg["X-Podbrief-Correlation-Id"] == str(event.correlation_id)


async def test_feed_text_is_escaped_and_cannot_inject_headers(
    deps: Deps, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    text = "Batteries <script>alert('x')</script> are cheap\r\nBcc: victim@example.com"
    ev = clustered(
        show="<b>Evil</b> Show",
        title="<script>alert(1)</script>",
        text=text,
        link="javascript:alert(1)",
        enclosure="javascript:alert(2)",
        vector=embedder.embed(["home batteries are cheap"])[0],
    )
    await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder)
    await subscriber(deps, "x@example.com", "home batteries")
    report = await deps.deliver(now=NOW, force=True)
    assert report.sent == 1
    [msg] = briefs_in(smtp_sink)
    assert msg["Bcc"] is None and "\n" not in msg["Subject"]
    _, html = parts(msg)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;Evil&lt;/b&gt;" in html
    assert "javascript:" not in html
    assert smtp_sink.envelopes[-1][1] == ["x@example.com"]


async def test_two_replicas_never_send_twice(
    settings: DeliverySettings, deps: Deps, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    await seed(deps, embedder)
    for i in range(4):
        await subscriber(deps, f"r{i}@example.com", "nuclear power and batteries")
    async with make_deps(settings, embedder=embedder) as other:
        a, b = await asyncio.gather(deps.deliver(now=NOW, force=True), other.deliver(now=NOW, force=True))
        again = await other.deliver(now=NOW, force=True)
    assert a.sent + b.sent == 4
    assert a.claimed + b.claimed == 4
    assert again.due == 0 and again.sent == 0
    mails = briefs_in(smtp_sink)
    assert sorted(str(m["To"]) for m in mails) == [f"r{i}@example.com" for i in range(4)]


async def test_no_repeats_across_days(deps: Deps, embedder: Embedder, smtp_sink: SmtpSink) -> None:
    await seed(deps, embedder)
    sub = await subscriber(deps, "daily@example.com", "energy, batteries, nuclear, AI, sleep, money")
    seen: set[str] = set()
    for d in range(3):
        report = await deps.deliver(now=NOW + timedelta(days=d), force=True)
        assert report.sent == 1
        row = await deps.repo.brief_on(sub.id, (NOW + timedelta(days=d)).date())
        assert row is not None
        ids = {i["insight_id"] for i in row.body["items"]}
        assert not ids & seen
        assert ids or row.body["kind"] == "note", "once everything relevant was sent, a note, never empty"
        assert d > 0 or len(ids) >= 2
        seen |= ids
    assert len(briefs_in(smtp_sink)) == 3


async def test_temporary_failure_is_retried_by_a_later_run(deps: Deps, embedder: Embedder, smtp_sink: SmtpSink) -> None:
    await seed(deps, embedder)
    sub = await subscriber(deps, "later@example.com", "batteries")
    smtp_sink.refuse = "451 4.3.0 try again later"
    first = await deps.deliver(now=NOW, force=True)
    assert (first.retry, first.sent) == (1, 0)
    [row] = await deps.repo.ledger(sub.id)
    assert row.status == "retry" and row.attempts == deps.settings.smtp.max_attempts
    smtp_sink.refuse = None
    second = await deps.deliver(now=NOW, force=True)
    assert second.sent == 1
    assert len(briefs_in(smtp_sink)) == 1
    [row] = await deps.repo.ledger(sub.id)
    assert row.status == "sent" and row.message_id


async def test_a_brief_that_keeps_failing_temporarily_is_given_up_visibly(
    settings: DeliverySettings, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    capped = settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"max_total_attempts": 6})})
    published: list[Any] = []

    async def publish(event: Any) -> None:
        published.append(event)

    async with make_deps(capped, embedder=embedder, publish=publish) as deps:
        await seed(deps, embedder)
        sub = await subscriber(deps, "flaky@example.com", "batteries")
        smtp_sink.refuse = "421 4.7.0 too busy"
        assert (await deps.deliver(now=NOW, force=True)).retry == 1
        assert (await deps.deliver(now=NOW, force=True)).failed == 1
        assert (await deps.deliver(now=NOW, force=True)).due == 0
        [row] = await deps.repo.ledger(sub.id)
        assert row.status == "failed" and row.attempts == 6 and "gave up" in (row.detail or "")
        assert [e.payload.status for e in published] == ["failed"]
        still = await deps.repo.subscriber(sub.id)
        assert still is not None and still.status == "active"  # a busy server is not a bounce


async def test_permanent_failure_pauses_the_subscriber(deps: Deps, embedder: Embedder, smtp_sink: SmtpSink) -> None:
    await seed(deps, embedder)
    sub = await subscriber(deps, "gone@example.com", "batteries")
    smtp_sink.refuse = "550 5.1.1 no such user"
    report = await deps.deliver(now=NOW, force=True)
    assert report.failed == 1
    after = await deps.repo.subscriber(sub.id)
    assert after is not None and after.status == "paused" and "550" in (after.paused_reason or "")
    [event] = deps.published  # type: ignore[attr-defined]
    assert event.payload.status == "failed"
    smtp_sink.refuse = None
    assert (await deps.deliver(now=NOW + timedelta(days=1), force=True)).due == 0


async def test_quiet_day_is_shorter_or_a_note_never_empty(
    settings: DeliverySettings, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    strict = settings.model_copy(update={"ranking": RankingSettings(min_relevance=0.45)})
    async with make_deps(strict, embedder=embedder) as deps:
        await seed(deps, embedder)
        short = await subscriber(deps, "short@example.com", "sourdough bread baking", quiet_day_policy="shorter")
        note = await subscriber(deps, "note@example.com", "medieval embroidery stitches", quiet_day_policy="shorter")
        report = await deps.deliver(now=NOW, force=True)
        assert report.sent == 2
        s_row = await deps.repo.brief_on(short.id, NOW.date())
        n_row = await deps.repo.brief_on(note.id, NOW.date())
        assert s_row is not None and n_row is not None
        assert s_row.body["kind"] == "shorter" and 1 <= len(s_row.body["items"]) < 5
        assert n_row.body["kind"] == "note" and n_row.body["items"] == []
        by_to = {str(m["To"]): m for m in briefs_in(smtp_sink)}
        assert "Nothing new today" in parts(by_to["note@example.com"])[0]
        assert "A quiet day" in parts(by_to["short@example.com"])[1]


async def test_feedback_moves_the_interest_vector(deps: Deps, embedder: Embedder) -> None:
    await seed(deps, embedder)
    sub = await subscriber(deps, "fb@example.com", "nuclear power")
    rows = await deps.repo.candidates(NOW - timedelta(days=30))
    sleep = next(r for r in rows if "sleep" in r.text)
    d = np.frombuffer(sleep.vector, dtype=np.float32)

    async def sim() -> float:
        s = await deps.repo.subscriber(sub.id)
        assert s is not None and s.interest_vector
        return float(np.frombuffer(s.interest_vector, dtype=np.float32) @ d)

    before = await sim()
    assert await subscribers.apply_feedback(
        sub.id, sleep.insight_id, "up", repo=deps.repo, metrics=deps.metrics, feedback=deps.settings.feedback
    )
    up = await sim()
    assert up > before
    assert await subscribers.apply_feedback(
        sub.id, sleep.insight_id, "up", repo=deps.repo, metrics=deps.metrics, feedback=deps.settings.feedback
    )
    assert await sim() == pytest.approx(up), "the same click counts once"
    assert await subscribers.apply_feedback(
        sub.id, sleep.insight_id, "down", repo=deps.repo, metrics=deps.metrics, feedback=deps.settings.feedback
    )
    assert await sim() < up


async def test_handler_is_idempotent_and_a_later_event_updates_the_cluster(deps: Deps, embedder: Embedder) -> None:
    ev = clustered(show="A", title="T", text="Home batteries are cheap", vector=embedder.embed(["x"])[0])
    await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder)
    await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder)
    assert await deps.repo.count_insights() == 1
    later = ev.model_copy(update={"payload": ev.payload.model_copy(update={"cluster_size": 4, "cluster_shows": 3})})
    await on_insight_clustered(later, repo=deps.repo, embedder=deps.embedder)
    [row] = (await deps.repo.insights([ev.payload.insight.insight_id])).values()
    assert (row.cluster_size, row.cluster_shows) == (4, 3)
    # A vector from another model is replaced by our own embedding of the text.
    other = clustered(show="B", title="U", text="Sleep matters", vector=[1.0] * 8, model="other-model")
    await on_insight_clustered(other, repo=deps.repo, embedder=deps.embedder)
    [row] = (await deps.repo.insights([other.payload.insight.insight_id])).values()
    assert len(row.vector) == 4 * 384


async def test_export_and_delete(deps: Deps, embedder: Embedder, smtp_sink: SmtpSink) -> None:
    await seed(deps, embedder)
    sub = await subscriber(deps, "mine@example.com", "batteries")
    await deps.deliver(now=NOW, force=True)
    data = await subscribers.export(sub, repo=deps.repo)
    assert data["subscriber"]["email"] == "mine@example.com"
    assert len(data["briefs"]) == 1 and data["deliveries"][0]["status"] == "sent"
    assert len(data["sent_insights"]) == len(data["briefs"][0]["items"]) >= 1
    assert "api_key_hash" not in data["subscriber"] and "interest_vector" not in data["subscriber"]
    assert await deps.repo.delete_subscriber(sub.id)
    assert await deps.repo.subscriber(sub.id) is None
    assert await deps.repo.briefs(sub.id) == [] and await deps.repo.ledger(sub.id) == []


async def test_scheduler_sends_only_when_the_local_hour_has_come(
    deps: Deps, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    await seed(deps, embedder)
    tokyo = await subscriber(deps, "tokyo@example.com", "batteries", timezone="Asia/Tokyo", delivery_hour=7)
    ny = await subscriber(deps, "ny@example.com", "batteries", timezone="America/New_York", delivery_hour=7)
    # 22:30 UTC on the 28th: 07:30 on the 29th in Tokyo, 17:30 on the 28th in New York (past 07:00 too).
    at = NOW.replace(day=28, hour=22, minute=30)
    report = await deps.deliver(now=at)
    assert report.sent == 2
    dates = {o.subscriber_id: o.brief_date for o in report.outcomes}
    assert dates[str(tokyo.id)] == "2026-11-29" and dates[str(ny.id)] == "2026-11-28"
    # An hour later nothing is due; the next New York morning (12:00 UTC on the 29th) is.
    assert (await deps.deliver(now=at + timedelta(hours=1))).due == 0
    nxt = await deps.deliver(now=NOW)
    assert [o.subscriber_id for o in nxt.outcomes] == [str(ny.id)]


async def test_a_day_missed_during_an_outage_is_sent_late_not_skipped(
    deps: Deps, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    await seed(deps, embedder)
    sub = await subscriber(deps, "late@example.com", "batteries", timezone="UTC", delivery_hour=7)
    # Confirmed before the 27th's delivery hour; the service then stayed down until noon on the 29th.
    await deps.repo.update_subscriber(sub.id, confirmed_at=NOW - timedelta(days=3))
    report = await deps.deliver(now=NOW)
    assert sorted(o.brief_date for o in report.outcomes) == ["2026-11-28", "2026-11-29"]
    assert report.sent == 2
    # Caught up once: nothing is due again, and the day before the catch-up window is not resurrected.
    assert (await deps.deliver(now=NOW + timedelta(hours=1))).due == 0


def test_missed_days_start_after_confirmation() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    fresh = Subscriber(
        id=uuid.uuid4(),
        email="new@example.com",
        status="active",
        timezone="Europe/Berlin",
        delivery_hour=7,
        quiet_day_policy="shorter",
        created_at=now,
        updated_at=now,
        confirmed_at=datetime(2026, 11, 29, 9, tzinfo=UTC),
    )
    assert schedule.missed_days(fresh, date(2026, 11, 29), 3, now) == []
    old = fresh
    old.confirmed_at = datetime(2026, 11, 1, tzinfo=UTC)
    assert [d for _, d, _ in schedule.missed_days(old, date(2026, 11, 29), 2, now)] == [
        date(2026, 11, 28),
        date(2026, 11, 27),
    ]
