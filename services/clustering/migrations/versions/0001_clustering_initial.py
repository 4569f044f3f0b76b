"""clustering: clusters and members

Revision ID: 0001_clustering
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_clustering"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clustering_clusters",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("centroid", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("shows", sa.JSON(), nullable=False),
        sa.Column("show_count", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_clustering_clusters_last_seen", "clustering_clusters", ["last_seen"])
    op.create_table(
        "clustering_members",
        sa.Column("insight_id", sa.Uuid(), primary_key=True),
        sa.Column("cluster_id", sa.Uuid(), nullable=False),
        sa.Column("episode_id", sa.Uuid(), nullable=False),
        sa.Column("show", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("duplicate_of", sa.Uuid(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_clustering_members_cluster_id", "clustering_members", ["cluster_id"])
    op.create_index("ix_clustering_members_episode_id", "clustering_members", ["episode_id"])
    op.create_index("ix_clustering_members_seen_at", "clustering_members", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_clustering_members_seen_at", table_name="clustering_members")
    op.drop_index("ix_clustering_members_episode_id", table_name="clustering_members")
    op.drop_index("ix_clustering_members_cluster_id", table_name="clustering_members")
    op.drop_table("clustering_members")
    op.drop_index("ix_clustering_clusters_last_seen", table_name="clustering_clusters")
    op.drop_table("clustering_clusters")
