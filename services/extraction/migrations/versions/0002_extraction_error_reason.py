"""extraction: the reason code of an episode's last error

Revision ID: 0002_extraction
Revises: 0001_extraction
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_extraction"
down_revision: str | None = "0001_extraction"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("extraction_episodes") as batch:
        batch.add_column(sa.Column("last_error_reason", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("extraction_episodes") as batch:
        batch.drop_column("last_error_reason")
