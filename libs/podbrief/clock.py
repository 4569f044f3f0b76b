"""Time as the pipeline keeps it: timezone-aware UTC everywhere, and the repair for SQLite, which hands back
naive datetimes even from timezone-aware columns (everything stored is UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, overload

from pydantic import AfterValidator


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
@overload
def aware(value: datetime | None) -> datetime | None: ...
def aware(value: datetime | None) -> datetime | None:
    """`value` with its time zone: a naive datetime read back from the database is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# A datetime read from the database into a response model (`from_attributes`): made aware on the way.
StoredDatetime = Annotated[datetime, AfterValidator(aware)]
