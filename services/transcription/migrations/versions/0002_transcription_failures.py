"""transcription: the last failure of each episode not yet transcribed

Revision ID: 0002_transcription
Revises: 0001_transcription
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_transcription"
down_revision = "0001_transcription"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transcription_failures",
        sa.Column("episode_id", sa.Uuid(), primary_key=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_transcription_failures_reason", "transcription_failures", ["reason"])


def downgrade() -> None:
    op.drop_index("ix_transcription_failures_reason", table_name="transcription_failures")
    op.drop_table("transcription_failures")
