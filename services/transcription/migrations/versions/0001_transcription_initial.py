"""transcription: transcripts table

Revision ID: 0001_transcription
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_transcription"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transcription_transcripts",
        sa.Column("episode_id", sa.Uuid(), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("language", sa.String(20), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("model", sa.String(500), nullable=True),
        sa.Column("rtf", sa.Float(), nullable=True),
        sa.Column("transcript", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("transcription_transcripts")
