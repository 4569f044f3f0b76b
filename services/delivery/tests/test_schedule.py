"""Time zones and DST: a brief goes out once per local day, when the subscriber's local hour has come."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from podbrief_delivery.models import Subscriber
from podbrief_delivery.schedule import local_day

pytestmark = pytest.mark.unit


def sub(tz: str, hour: int) -> Subscriber:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return Subscriber(
        id=uuid.uuid4(),
        email="a@example.com",
        status="active",
        timezone=tz,
        delivery_hour=hour,
        quiet_day_policy="shorter",
        created_at=now,
        updated_at=now,
    )


def test_local_hour_in_another_zone() -> None:
    s = sub("Asia/Tokyo", 7)  # UTC+9
    day, at, come = local_day(s, datetime(2026, 11, 28, 21, 59, tzinfo=UTC))  # 06:59 on the 29th in Tokyo
    assert (day, come) == (date(2026, 11, 29), False)
    assert at == datetime(2026, 11, 28, 22, 0, tzinfo=UTC)
    day, _, come = local_day(s, datetime(2026, 11, 28, 22, 0, tzinfo=UTC))
    assert (day, come) == (date(2026, 11, 29), True)


def test_negative_offset_keeps_yesterday_as_local_date() -> None:
    s = sub("America/Los_Angeles", 7)
    day, _, come = local_day(s, datetime(2026, 11, 29, 3, 0, tzinfo=UTC))  # 19:00 on the 28th
    assert day == date(2026, 11, 28) and come


def test_spring_forward_gap_hour_still_delivers() -> None:
    # 2026-03-08 in New York: 02:00 does not exist; clocks jump from 01:59 EST to 03:00 EDT (07:00 UTC).
    s = sub("America/New_York", 2)
    assert local_day(s, datetime(2026, 3, 8, 6, 59, tzinfo=UTC))[2] is False  # 01:59 EST
    day, _, come = local_day(s, datetime(2026, 3, 8, 7, 0, tzinfo=UTC))  # 03:00 EDT
    assert day == date(2026, 3, 8) and come


def test_summer_time_moves_the_utc_send_time() -> None:
    s = sub("Europe/Paris", 7)
    _, winter, _ = local_day(s, datetime(2026, 1, 15, 12, tzinfo=UTC))
    _, summer, _ = local_day(s, datetime(2026, 7, 15, 12, tzinfo=UTC))
    assert winter.hour == 6 and summer.hour == 5


def test_fall_back_repeated_hour_maps_to_one_local_day() -> None:
    # 2026-10-25 in London: 01:00-01:59 happens twice (BST then GMT). Both fall on the same local date, so the
    # ledger key (subscriber, date) admits one send.
    s = sub("Europe/London", 1)
    first = local_day(s, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 01:30 BST
    second = local_day(s, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 01:30 GMT
    assert first[0] == second[0] == date(2026, 10, 25)
    assert first[2] and second[2]
