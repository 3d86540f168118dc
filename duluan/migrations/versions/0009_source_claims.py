"""source claims (per-source leases and next-due times for `duluan worker`) and the worker crawl history

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "source_claims",
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("next_due_at", sa.DateTime(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(), nullable=True),
        sa.Column("last_outcome", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("source_id"),
    )
    op.create_index("ix_source_claims_next_due_at", "source_claims", ["next_due_at"], unique=False)
    op.create_table(
        "worker_crawls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_worker_crawls_source_started", "worker_crawls", ["source_id", "started_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_worker_crawls_source_started", table_name="worker_crawls")
    op.drop_table("worker_crawls")
    op.drop_index("ix_source_claims_next_due_at", table_name="source_claims")
    op.drop_table("source_claims")
