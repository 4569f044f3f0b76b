"""delivery: feeds withdrawn from the public pages (podcast:block or removed), and insights by feed

Revision ID: 0002_delivery
Revises: 0001_delivery
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_delivery"
down_revision: str | None = "0001_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "delivery_withdrawn_feeds",
        sa.Column("feed_id", sa.Uuid, primary_key=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("withdrawn_at", TZ, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
    )
    op.create_index("ix_delivery_insights_feed_id", "delivery_insights", ["feed_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_insights_feed_id", table_name="delivery_insights")
    op.drop_table("delivery_withdrawn_feeds")
