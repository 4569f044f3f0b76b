"""The clustering service's tables: clusters with their running stats, and one membership row per insight."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ClusterRow(Base):
    __tablename__ = "clustering_clusters"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    # Mean of the member vectors (not normalised: its norm says how tight the cluster is).
    centroid: Mapped[list[float]] = mapped_column(sa.JSON, nullable=False)
    size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    shows: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False)
    show_count: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    label: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
    first_seen: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    last_seen: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)


class MemberRow(Base):
    __tablename__ = "clustering_members"

    insight_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True)
    cluster_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    episode_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    show: Mapped[str] = mapped_column(sa.Text, nullable=False)
    text: Mapped[str] = mapped_column(sa.Text, nullable=False)
    duplicate_of: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    # When the insight was said (the episode's publication time), else when it arrived.
    seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False)


def row_dict(row: Any) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in sa.inspect(row).mapper.column_attrs}
