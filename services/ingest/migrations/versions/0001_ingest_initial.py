"""ingest: feeds, episodes, outbox

Revision ID: 0001_ingest
Revises:
Create Date: 2026-11-29

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_ingest"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ingest_feeds",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("source_url", sa.Text(), nullable=False, unique=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("title", sa.Text()),
        sa.Column("link", sa.Text()),
        sa.Column("language", sa.String(64)),
        sa.Column("podcast_guid", sa.String(200)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("locked", sa.Boolean(), nullable=False),
        sa.Column("update_frequency", sa.Text()),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("etag", sa.Text()),
        sa.Column("last_modified", sa.Text()),
        sa.Column("moved_from", sa.JSON(), nullable=False),
        sa.Column("backfilled", sa.Boolean(), nullable=False),
        sa.Column("poll_interval_s", sa.Float(), nullable=False),
        sa.Column("next_poll_at", TS, nullable=False),
        sa.Column("last_polled_at", TS),
        sa.Column("last_success_at", TS),
        sa.Column("last_new_episode_at", TS),
        sa.Column("last_outcome", sa.String(32)),
        sa.Column("last_error", sa.Text()),
        sa.Column("last_error_reason", sa.String(64)),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("not_modified_count", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_ingest_feeds_next_poll_at", "ingest_feeds", ["next_poll_at"])
    op.create_table(
        "ingest_episodes",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("feed_id", sa.Uuid(), sa.ForeignKey("ingest_feeds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("guid", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("link", sa.Text()),
        sa.Column("published_at", TS),
        sa.Column("sort_at", TS, nullable=False),
        sa.Column("enclosure_url", sa.Text()),
        sa.Column("enclosure_type", sa.String(200)),
        sa.Column("enclosure_length", sa.BigInteger()),
        sa.Column("duration_s", sa.Float()),
        sa.Column("transcripts", sa.JSON(), nullable=False),
        sa.Column("chapters_url", sa.Text()),
        sa.Column("persons", sa.JSON(), nullable=False),
        sa.Column("transcript_source", sa.String(16)),
        sa.Column("transcript_error", sa.Text()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("discovered_at", TS, nullable=False),
    )
    op.create_index("ix_ingest_episodes_feed_sort", "ingest_episodes", ["feed_id", "sort_at", "id"])
    op.create_table(
        "ingest_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("episode_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("claimed_until", TS),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index("ix_ingest_outbox_episode_id", "ingest_outbox", ["episode_id"])
    op.create_index("ix_ingest_outbox_sent_at", "ingest_outbox", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_ingest_outbox_sent_at", table_name="ingest_outbox")
    op.drop_index("ix_ingest_outbox_episode_id", table_name="ingest_outbox")
    op.drop_table("ingest_outbox")
    op.drop_index("ix_ingest_episodes_feed_sort", table_name="ingest_episodes")
    op.drop_table("ingest_episodes")
    op.drop_index("ix_ingest_feeds_next_poll_at", table_name="ingest_feeds")
    op.drop_table("ingest_feeds")
