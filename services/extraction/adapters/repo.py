"""The extraction store: episode status and counters, and the insights kept for each episode."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from podbrief.clock import utcnow
from podbrief.errors import RetryableError
from podbrief.events import EpisodeRef, Insight
from podbrief.reasons import Reason, meaning
from podbrief.storage.db import session_factory
from podbrief_extraction.models import EpisodeRow, InsightRow
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class EpisodeStatus:
    episode_id: uuid.UUID
    status: str
    episode: EpisodeRef
    correlation_id: uuid.UUID | None
    attempts: int
    chunks_total: int
    chunks_failed: int
    insights_kept: int
    dropped: dict[str, int]
    tokens_in: int
    tokens_out: int
    model: str | None
    prompt_version: str | None
    detail: str | None
    last_error: str | None
    last_error_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: EpisodeRow) -> EpisodeStatus:
        return cls(
            row.episode_id,
            row.status,
            EpisodeRef.model_validate(row.episode),
            row.correlation_id,
            row.attempts,
            row.chunks_total,
            row.chunks_failed,
            row.insights_kept,
            dict(row.dropped or {}),
            row.tokens_in,
            row.tokens_out,
            row.model,
            row.prompt_version,
            row.detail,
            row.last_error,
            row.last_error_reason,
            row.created_at,
            row.updated_at,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "episode_id": str(self.episode_id),
            "status": self.status,
            "show": self.episode.show,
            "title": self.episode.title,
            "attempts": self.attempts,
            "chunks_total": self.chunks_total,
            "chunks_failed": self.chunks_failed,
            "insights_kept": self.insights_kept,
            "dropped": self.dropped,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "detail": self.detail,
            # A stable code and a short reason only: the raw error (a validation message with the model's input,
            # a URL) stays in the row and the logs, never in a public response.
            "error_reason": self.last_error_reason,
            "error": public_error(self.last_error, self.last_error_reason),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def public_error(raw: str | None, reason: str | None) -> str | None:
    """What a public response says about an episode's last error: the reason code's meaning, or for an error
    recorded without a code, that there was one."""
    if raw is None and reason is None:
        return None
    return meaning(reason) if reason else "the last attempt failed; see the service's logs"


class ExtractionRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = session_factory(engine)

    async def get(self, episode_id: uuid.UUID) -> EpisodeStatus | None:
        async with self.sessions() as s:
            row = await s.get(EpisodeRow, episode_id)
            return EpisodeStatus.of(row) if row else None

    async def begin(self, episode: EpisodeRef, correlation_id: uuid.UUID | None) -> EpisodeStatus:
        """Record an attempt (status running), creating the row on first sight."""
        try:
            async with self.sessions.begin() as s:
                row = await s.get(EpisodeRow, episode.episode_id, with_for_update=True)
                now = utcnow()
                if row is None:
                    row = EpisodeRow(
                        episode_id=episode.episode_id,
                        status="running",
                        episode=episode.model_dump(mode="json"),
                        correlation_id=correlation_id,
                        attempts=1,
                        dropped={},
                        created_at=now,
                        updated_at=now,
                    )
                    s.add(row)
                else:
                    row.status, row.attempts, row.updated_at = "running", row.attempts + 1, now
                    row.episode = episode.model_dump(mode="json")
                await s.flush()
                return EpisodeStatus.of(row)
        except OperationalError as exc:
            raise RetryableError("extraction database unavailable", reason="database") from exc

    async def fail(self, episode_id: uuid.UUID, error: str, reason: Reason) -> None:
        async with self.sessions.begin() as s:
            await s.execute(
                sa.update(EpisodeRow)
                .where(EpisodeRow.episode_id == episode_id)
                .values(status="error", last_error=error[:2000], last_error_reason=reason, updated_at=utcnow())
            )

    async def finish(
        self,
        episode_id: uuid.UUID,
        *,
        status: str,
        insights: list[Insight],
        chunks_total: int,
        chunks_failed: int,
        dropped: dict[Reason, int],
        tokens_in: int,
        tokens_out: int,
        model: str,
        prompt_version: str,
        detail: str | None,
    ) -> None:
        """Store it in one transaction (insights replaced, row updated) before anything is published."""
        now = utcnow()
        async with self.sessions.begin() as s:
            await s.execute(sa.delete(InsightRow).where(InsightRow.episode_id == episode_id))
            for pos, ins in enumerate(insights):
                s.add(
                    InsightRow(
                        insight_id=ins.insight_id,
                        episode_id=episode_id,
                        position=pos,
                        start_s=ins.start_s,
                        data=ins.model_dump(mode="json"),
                        created_at=now,
                    )
                )
            await s.execute(
                sa.update(EpisodeRow)
                .where(EpisodeRow.episode_id == episode_id)
                .values(
                    status=status,
                    chunks_total=chunks_total,
                    chunks_failed=chunks_failed,
                    insights_kept=len(insights),
                    dropped=dropped,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    model=model,
                    prompt_version=prompt_version,
                    detail=detail,
                    last_error=None,
                    last_error_reason=None,
                    updated_at=now,
                )
            )

    async def insights(self, episode_id: uuid.UUID) -> list[Insight]:
        async with self.sessions() as s:
            rows = (
                await s.scalars(
                    sa.select(InsightRow).where(InsightRow.episode_id == episode_id).order_by(InsightRow.position)
                )
            ).all()
            return [Insight.model_validate(r.data) for r in rows]

    async def ping(self) -> bool:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True
