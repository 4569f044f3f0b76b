"""The outbox's dispatcher: publish the EpisodeDiscovered events that polls wrote beside their episodes.

A poll writes an episode and its event's outbox row in one transaction; this claims unsent rows with a
conditional UPDATE (so two replicas never publish the same row at once), publishes them, and marks them sent.
A crash between publishing and marking re-publishes the same event ids after the lease, which consumers drop:
at least once, never lost."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from podbrief.bus import Publish
from podbrief.clock import utcnow
from podbrief.events.base import new_event
from podbrief.events.codec import decode
from podbrief.events.ids import event_id
from podbrief.events.models import EpisodeDiscovered, FeedWithdrawn, FeedWithdrawnPayload
from podbrief_ingest.adapters.repo import IngestRepo
from podbrief_ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)

BATCH = 500


def short(exc: BaseException) -> str:
    """An error as stored on a row and logged: its message, bounded, or its type when it has none."""
    return str(exc)[:1000] or type(exc).__name__


@dataclass
class Outbox:
    repo: IngestRepo
    # None (the local CLI): rows wait for the running service to publish them.
    publish: Publish | None
    owner: str
    lease_s: float
    metrics: IngestMetrics
    # Serialises publishing within a replica; across replicas the claims do.
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def dispatch(self, outbox_ids: Sequence[int] | None = None) -> int:
        """Publish unsent outbox rows this replica can claim (the given ones, or every unsent row); returns
        how many it published."""
        if self.publish is None:
            return 0
        published = 0
        async with self._lock:
            while True:
                batch = list(outbox_ids) if outbox_ids is not None else await self.repo.unsent_outbox(utcnow(), BATCH)
                sent_now = await self._publish_batch(batch, self.publish)
                published += sent_now
                if outbox_ids is not None or len(batch) < BATCH or sent_now == 0:
                    break
        self.metrics.outbox_pending.set(await self.repo.pending_count())
        return published

    async def withdraw(self, feed_id: uuid.UUID, reason: Literal["blocked", "removed"]) -> bool:
        """Tell the pipeline that a feed's episodes must no longer be shown (delivery answers 410 for them).
        Published directly, not through the outbox table: a blocked feed publishes it again on every poll that
        still finds the block, and a removal publishes it before the feed is deleted, so an error here leaves
        the feed in place and the caller sees it. False when this process has no bus (the local CLI)."""
        if self.publish is None:
            return False
        event = new_event(
            FeedWithdrawn,
            FeedWithdrawnPayload(feed_id=feed_id, reason=reason, withdrawn_at=utcnow()),
            key=str(feed_id),
            # A feed's withdrawal belongs to no one episode: the feed's id ties its withdrawals together.
            correlation_id=feed_id,
            # Every repeat of one withdrawal (a feed still blocked) is the same event, so consumers may drop it.
            event_id=event_id("feed.withdrawn", f"{feed_id}:{reason}"),
        )
        await self.publish(event)
        log.info("feed withdrawn", extra={"feed_id": str(feed_id), "reason": reason})
        return True

    async def _publish_batch(self, batch: Sequence[int], publish: Publish) -> int:
        claimed = await self.repo.claim_outbox(batch, self.owner, utcnow(), self.lease_s)
        sent: list[int] = []
        try:
            for oid, raw in claimed:
                try:
                    await publish(decode(raw.encode(), EpisodeDiscovered))
                except Exception as exc:
                    # Left unsent: the next sweep (here or on another replica) tries again.
                    await self.repo.release_outbox(oid, self.owner, short(exc))
                    log.warning("publish failed; will retry", extra={"outbox_id": oid, "error": short(exc)})
                    continue
                sent.append(oid)
        finally:
            # Marked in one statement; a crash before this re-publishes the same event ids after the lease,
            # which consumers dedupe (at-least-once, never lost).
            await self.repo.mark_sent(sent, self.owner, utcnow())
        return len(sent)
