"""The jobs board: every app replica's jobs, so any replica shows and cancels them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "board_jobs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("replica", sa.String(128), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("owner_name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.Column("cancel_requested_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_board_jobs"),
    )
    op.create_index("ix_board_jobs_replica", "board_jobs", ["replica"])
    op.create_index("ix_board_jobs_owner_id", "board_jobs", ["owner_id"])
    op.create_table(
        "replicas",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("seen", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_replicas"),
    )


def downgrade() -> None:
    op.drop_table("replicas")
    op.drop_table("board_jobs")
