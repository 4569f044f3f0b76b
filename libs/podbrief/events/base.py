"""The envelope every event shares."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from podbrief.clock import utcnow


class Frozen(BaseModel):
    # extra="ignore": an additive field from a newer producer never breaks an older consumer.
    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Frozen):
    event_id: uuid.UUID
    event_type: str
    schema_version: int = 1
    occurred_at: AwareDatetime
    correlation_id: uuid.UUID
    # The partitioning key: one episode's events stay in order on one partition.
    key: str = Field(description="partition key (the episode id for episode-scoped events)")
    payload: Any


E = TypeVar("E", bound=Event)


def new_event(
    cls: type[E],
    payload: Any,
    *,
    key: str,
    correlation_id: uuid.UUID,
    event_id: uuid.UUID | None = None,
) -> E:
    """Build an event. The correlation id is always given: the episode's id at ingest, then the correlation id of
    the event being handled, so one id follows an episode from its feed to the brief that carries it."""
    # event_type comes from the subclass's Literal default.
    return cls(  # type: ignore[call-arg]
        event_id=event_id or uuid.uuid4(),
        occurred_at=utcnow(),
        correlation_id=correlation_id,
        key=key,
        payload=payload,
    )
