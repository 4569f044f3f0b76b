"""delivery: initial tables

Revision ID: 0001_delivery
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_delivery"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "delivery_subscribers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("interests", sa.Text, nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("followed_shows", sa.JSON, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("delivery_hour", sa.Integer, nullable=False),
        sa.Column("quiet_day_policy", sa.String(16), nullable=False),
        sa.Column("interest_vector", sa.LargeBinary, nullable=True),
        sa.Column("interest_phrases", sa.JSON, nullable=False),
        sa.Column("embedding_model", sa.String(200), nullable=True),
        sa.Column("api_key_hash", sa.String(64), nullable=True),
        sa.Column("paused_reason", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("confirmed_at", TZ, nullable=True),
        sa.UniqueConstraint("email", name="uq_delivery_subscribers_email"),
        sa.UniqueConstraint("api_key_hash", name="uq_delivery_subscribers_api_key"),
    )
    op.create_index("ix_delivery_subscribers_status", "delivery_subscribers", ["status"])

    op.create_table(
        "delivery_insights",
        sa.Column("insight_id", sa.Uuid, primary_key=True),
        sa.Column("episode_id", sa.Uuid, nullable=False),
        sa.Column("feed_id", sa.Uuid, nullable=False),
        sa.Column("show", sa.Text, nullable=False),
        sa.Column("episode_title", sa.Text, nullable=False),
        sa.Column("episode_link", sa.Text, nullable=True),
        sa.Column("enclosure_url", sa.Text, nullable=True),
        sa.Column("published_at", TZ, nullable=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("quote", sa.Text, nullable=False),
        sa.Column("start_s", sa.Float, nullable=False),
        sa.Column("end_s", sa.Float, nullable=False),
        sa.Column("speaker", sa.Text, nullable=True),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("importance", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("cluster_id", sa.Uuid, nullable=False),
        sa.Column("cluster_label", sa.Text, nullable=False),
        sa.Column("cluster_size", sa.Integer, nullable=False),
        sa.Column("cluster_shows", sa.Integer, nullable=False),
        sa.Column("duplicate_of", sa.Uuid, nullable=True),
        sa.Column("related", sa.JSON, nullable=False),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_delivery_insights_episode_id", "delivery_insights", ["episode_id"])
    op.create_index("ix_delivery_insights_cluster_id", "delivery_insights", ["cluster_id"])
    op.create_index("ix_delivery_insights_received_at", "delivery_insights", ["received_at"])

    op.create_table(
        "delivery_briefs",
        sa.Column("brief_id", sa.Uuid, primary_key=True),
        sa.Column("subscriber_id", sa.Uuid, nullable=False),
        sa.Column("brief_date", sa.Date, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("subscriber_id", "brief_date", name="uq_delivery_briefs_sub_date"),
    )
    op.create_index("ix_delivery_briefs_subscriber_id", "delivery_briefs", ["subscriber_id"])

    op.create_table(
        "delivery_ledger",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("subscriber_id", sa.Uuid, nullable=False),
        sa.Column("brief_date", sa.Date, nullable=False),
        sa.Column("brief_id", sa.Uuid, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claim_token", sa.Uuid, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("message_id", sa.Text, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
        sa.Column("scheduled_for", TZ, nullable=True),
        sa.Column("claimed_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.UniqueConstraint("subscriber_id", "brief_date", name="uq_delivery_ledger_sub_date"),
    )
    op.create_index("ix_delivery_ledger_brief_date", "delivery_ledger", ["brief_date"])
    op.create_index("ix_delivery_ledger_status", "delivery_ledger", ["status"])

    op.create_table(
        "delivery_sent_insights",
        sa.Column("subscriber_id", sa.Uuid, primary_key=True),
        sa.Column("insight_id", sa.Uuid, primary_key=True),
        sa.Column("brief_date", sa.Date, nullable=False),
        sa.Column("sent_at", TZ, nullable=False),
    )

    op.create_table(
        "delivery_feedback",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("subscriber_id", sa.Uuid, nullable=False),
        sa.Column("insight_id", sa.Uuid, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("subscriber_id", "insight_id", "kind", name="uq_delivery_feedback"),
    )
    op.create_index("ix_delivery_feedback_subscriber_id", "delivery_feedback", ["subscriber_id"])


def downgrade() -> None:
    op.drop_index("ix_delivery_feedback_subscriber_id", table_name="delivery_feedback")
    op.drop_table("delivery_feedback")
    op.drop_table("delivery_sent_insights")
    op.drop_index("ix_delivery_ledger_status", table_name="delivery_ledger")
    op.drop_index("ix_delivery_ledger_brief_date", table_name="delivery_ledger")
    op.drop_table("delivery_ledger")
    op.drop_index("ix_delivery_briefs_subscriber_id", table_name="delivery_briefs")
    op.drop_table("delivery_briefs")
    op.drop_index("ix_delivery_insights_received_at", table_name="delivery_insights")
    op.drop_index("ix_delivery_insights_cluster_id", table_name="delivery_insights")
    op.drop_index("ix_delivery_insights_episode_id", table_name="delivery_insights")
    op.drop_table("delivery_insights")
    op.drop_index("ix_delivery_subscribers_status", table_name="delivery_subscribers")
    op.drop_table("delivery_subscribers")
