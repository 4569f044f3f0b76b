"""A sender that dies between its ledger claim and the SMTP outcome (a crash, SIGKILL, OOM) must not lose the
day's brief: after `claim_lease_s` a later run takes the claim over and sends it, once. Found by the fault
suite (tests/faults: delivery killed during SMTP DATA)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from podbrief.clock import utcnow
from podbrief.embeddings import Embedder
from podbrief.events.ids import brief_id
from podbrief_delivery import subscribers
from podbrief_delivery.deps import Deps
from podbrief_delivery.handlers import on_insight_clustered
from podbrief_delivery.models import LedgerRow
from podbrief_testing import SmtpSink
from podbrief_testing.delivery import NOW, day_events

pytestmark = pytest.mark.unit


async def test_a_dead_senders_claim_is_taken_over_after_the_lease(
    deps: Deps, embedder: Embedder, smtp_sink: SmtpSink
) -> None:
    for ev in day_events(embedder):
        await on_insight_clustered(ev, repo=deps.repo, embedder=deps.embedder, metrics=deps.metrics)
    sub = await deps.sign_up("crash@example.com", subscribers.SignupProfile(interests="batteries"))
    sub, _ = await subscribers.confirm(sub.id, sub.token_version, repo=deps.repo, metrics=deps.metrics)
    day = NOW.date()
    # The dead replica: it claimed the brief and never recorded an outcome.
    assert await deps.repo.claim(sub.id, day, brief_id(sub.id, day), None) is not None

    fresh = await deps.deliver(now=NOW, force=True)
    assert fresh.sent == 0, "a live claim (within its lease) must not be sent by another run"

    async with deps.repo.sessions.begin() as s:
        stale = utcnow() - timedelta(seconds=deps.settings.claim_lease_s + 1)
        await s.execute(sa.update(LedgerRow).where(LedgerRow.subscriber_id == sub.id).values(claimed_at=stale))
    taken = await deps.deliver(now=NOW, force=True)
    again = await deps.deliver(now=NOW, force=True)
    assert (taken.sent, again.sent) == (1, 0)
    assert [m["To"] for m in smtp_sink.messages if m["X-Podbrief-Brief-Id"]] == ["crash@example.com"]
