"""delivery: the correlation id of the episode each candidate insight came from

Revision ID: 0003_delivery
Revises: 0002_delivery
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_delivery"
down_revision: str | None = "0002_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: insights stored before it have none, and their briefs fall back to the brief's own id.
    with op.batch_alter_table("delivery_insights") as batch:
        batch.add_column(sa.Column("correlation_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_insights") as batch:
        batch.drop_column("correlation_id")
