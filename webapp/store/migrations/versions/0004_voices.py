"""Brand voice tuning: datasets of approved texts and training runs (tuned voice versions
with their approval).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voice_datasets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("held_back", sa.Integer(), nullable=False),
        sa.Column("pairs", sa.Integer(), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["people.id"], name="fk_voice_datasets_owner_id_people"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_voice_datasets"),
        sa.UniqueConstraint("path", name="uq_voice_datasets_path"),
    )
    op.create_index("ix_voice_datasets_owner_id_created", "voice_datasets", ["owner_id", "created"])
    op.create_table(
        "voice_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("voice", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("base_model", sa.String(255), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("preset", sa.String(32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True),
        sa.Column("folder", sa.String(1024), nullable=False),
        sa.Column("adapter_path", sa.String(1024), nullable=True),
        sa.Column("evaluation", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("approved_by", sa.String(255), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed', 'cancelled')",
            name="ck_voice_runs_status",
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["people.id"], name="fk_voice_runs_owner_id_people"),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["voice_datasets.id"], name="fk_voice_runs_dataset_id_voice_datasets"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_voice_runs"),
        sa.UniqueConstraint("folder", name="uq_voice_runs_folder"),
    )
    op.create_index("ix_voice_runs_voice_version", "voice_runs", ["voice", "version"], unique=True)
    op.create_index("ix_voice_runs_owner_id_created", "voice_runs", ["owner_id", "created"])
    op.create_index("ix_voice_runs_job_id", "voice_runs", ["job_id"])


def downgrade() -> None:
    op.drop_table("voice_runs")
    op.drop_table("voice_datasets")
