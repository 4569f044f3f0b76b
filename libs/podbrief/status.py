"""What a service says about its stage, for operators: episodes per state from its own store, failures by reason
code (podbrief.reasons), its consumer group's lag and its dead letters. Each service answers it at
`GET /v1/status` (admin key); `podbrief status` reads it from there, or, for the embedded `podbrief run`,
builds the same thing from the data directory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import InstrumentedAttribute

from podbrief.bus import Transport, dlq


class StageStatus(BaseModel):
    """A service's view of the episodes in its store."""

    model_config = ConfigDict(frozen=True)

    # Episodes per state, e.g. {"transcribed": 12} or {"extracted": 10, "failing": 1}.
    episodes: dict[str, int] = Field(default_factory=dict)
    # What failed, by reason code: {"feeds": {"dns": 2}, "episodes": {"enclosure_not_audio": 1}}.
    failures: dict[str, dict[str, int]] = Field(default_factory=dict)


class ConsumerStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    group: str
    # Messages of each topic the group has not committed yet, over all its partitions.
    lag: dict[str, int]


class ServiceStatus(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    stage: StageStatus
    consumer: ConsumerStatus | None = None
    # Dead letters of each topic the service consumes, by reason code.
    dead_letters: dict[str, dict[str, int]] = Field(default_factory=dict)


def count(values: Iterable[str | None], default: str = "unexpected") -> dict[str, int]:
    """Occurrences of each value, most frequent first (a missing one counts as `default`)."""
    return dict(Counter(v or default for v in values).most_common())


async def counts_by(
    conn: AsyncConnection, column: InstrumentedAttribute[Any], *where: sa.ColumnElement[bool]
) -> dict[str, int]:
    """Rows per value of `column` (a status column), where `where` holds."""
    rows = await conn.execute(sa.select(column, sa.func.count()).where(*where).group_by(column))
    return {str(value): int(n) for value, n in rows.all()}


async def bus_status(
    transport: Transport, group: str, topics: Sequence[str]
) -> tuple[ConsumerStatus | None, dict[str, dict[str, int]]]:
    """The lag of consumer `group` on `topics`, and their dead letters by reason."""
    if not topics:
        return None, {}
    lag = await transport.group_lag(group, topics)
    dead = {t: count(d.reason for d in await dlq.dead_letters(transport, t)) for t in topics}
    return ConsumerStatus(group=group, lag=lag), dead


__all__ = ["ConsumerStatus", "ServiceStatus", "StageStatus", "bus_status", "count", "counts_by"]
