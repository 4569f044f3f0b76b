"""Bytes <-> events. Decoding always validates, through a discriminated union on `event_type`."""

from __future__ import annotations

from typing import Annotated, TypeVar

import orjson
from pydantic import Field, TypeAdapter, ValidationError

from podbrief.errors import InvalidEventError
from podbrief.events.base import Event
from podbrief.events.models import (
    BriefDelivered,
    EpisodeDiscovered,
    EpisodeTranscribed,
    InsightClustered,
    InsightsExtracted,
)

AnyEvent = Annotated[
    EpisodeDiscovered | EpisodeTranscribed | InsightsExtracted | InsightClustered | BriefDelivered,
    Field(discriminator="event_type"),
]
_any_adapter: TypeAdapter[Event] = TypeAdapter(AnyEvent)

E = TypeVar("E", bound=Event)


def encode(event: Event) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode(raw: bytes, model: type[E] | None = None) -> E | Event:
    """Parse and validate; anything malformed becomes InvalidEventError (dead-lettered, never retried)."""
    try:
        if model is not None:
            return model.model_validate_json(raw)
        return _any_adapter.validate_json(raw)
    except ValidationError as exc:
        raise InvalidEventError(f"invalid event: {exc.error_count()} error(s): {exc.errors()[:3]}") from exc
    except ValueError as exc:
        raise InvalidEventError(f"undecodable event: {exc}") from exc
