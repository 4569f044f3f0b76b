"""When a subscriber's brief is due: their local day and delivery hour (zoneinfo does the DST arithmetic), and
the earlier days a service that was down must still catch up on."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from podbrief.clock import aware, utcnow
from podbrief_delivery.adapters.repo import Repo
from podbrief_delivery.models import Subscriber
from podbrief_delivery.settings import DeliverySettings

log = logging.getLogger(__name__)

# (subscriber, their brief's date, when it was due)
Due = tuple[Subscriber, date, datetime]


def local_day(sub: Subscriber, now: datetime) -> tuple[date, datetime, bool]:
    """The subscriber's local date, when their delivery hour falls on it (UTC), and whether it has come.
    zoneinfo does the DST arithmetic: on a spring-forward day a 02:00 delivery goes out at 03:00 local."""
    tz = ZoneInfo(sub.timezone)
    local = now.astimezone(tz)
    day = local.date()
    at = datetime(day.year, day.month, day.day, sub.delivery_hour, tzinfo=tz).astimezone(UTC)
    return day, at, local.hour >= sub.delivery_hour or now >= at


def missed_days(sub: Subscriber, today: date, days: int, now: datetime) -> list[Due]:
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
    now: datetime,
    *,
    repo: Repo,
    settings: DeliverySettings,
    force: bool = False,
    day: date | None = None,
    only: Sequence[uuid.UUID] | None = None,
) -> tuple[int, list[Due]]:
    """(active subscribers considered, the briefs due now that the ledger has not seen done)."""
    subs = await repo.subscribers(["active"])
    if only is not None:
        wanted = set(only)
        subs = [x for x in subs if x.id in wanted]
    due: list[Due] = []
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
            due.extend(missed_days(sub, d, settings.catch_up_days, now))
    stale_before = utcnow() - timedelta(seconds=settings.claim_lease_s)
    done = await repo.ledger_keys({d for _, d, _ in due}, stale_before)
    return len(subs), [(s, d, at) for s, d, at in due if (s.id, d) not in done]
