"""A message for bus tests: any valid event will do, one that says which it is."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from podbrief.events import BriefDelivered, BriefDeliveredPayload, new_event


def numbered_event(key: str, n: int) -> BriefDelivered:
    """A valid event with key `key` whose payload carries `n` (as `payload.detail`), for tests that follow
    messages through a consumer."""
    payload = BriefDeliveredPayload(
        brief_id=uuid.uuid4(),
        subscriber_id=uuid.uuid4(),
        brief_date=datetime.now(UTC).date(),
        insight_ids=(),
        status="sent",
        detail=str(n),
    )
    return new_event(BriefDelivered, payload, key=key, correlation_id=uuid.uuid4())
