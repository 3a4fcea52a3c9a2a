"""Documents: the document, its passages (chunks) and their vectors (embeddings).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("blank", sa.JSON(), nullable=False),
        sa.Column("chars", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(1024), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('pdf', 'docx', 'txt', 'md', 'paste')", name="ck_documents_kind"
        ),
        sa.CheckConstraint("unit IN ('page', 'paragraph')", name="ck_documents_unit"),
        sa.ForeignKeyConstraint(["owner_id"], ["people.id"], name="fk_documents_owner_id_people"),
        sa.PrimaryKeyConstraint("id", name="pk_documents"),
        sa.UniqueConstraint("path", name="uq_documents_path"),
    )
    op.create_index("ix_documents_owner_id_created", "documents", ["owner_id", "created"])
    op.create_index("ix_documents_shared_created", "documents", ["shared", "created"])
    op.create_index("ix_documents_created", "documents", ["created"])
    op.create_table(
        "document_chunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("unit_start", sa.Integer(), nullable=False),
        sa.Column("unit_end", sa.Integer(), nullable=False),
        sa.Column("heading", sa.Boolean(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name="fk_document_chunks_document_id_documents",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_document_chunks"),
    )
    op.create_index(
        "ix_document_chunks_document_id_position",
        "document_chunks",
        ["document_id", "position"],
        unique=True,
    )
    op.create_table(
        "document_embeddings",
        sa.Column("chunk_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["document_chunks.id"],
            name="fk_document_embeddings_chunk_id_document_chunks",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name="fk_document_embeddings_document_id_documents",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["people.id"], name="fk_document_embeddings_owner_id_people"
        ),
        sa.PrimaryKeyConstraint("chunk_id", name="pk_document_embeddings"),
    )
    op.create_index(
        "ix_document_embeddings_owner_id_document_id",
        "document_embeddings",
        ["owner_id", "document_id"],
    )


def downgrade() -> None:
    op.drop_table("document_embeddings")
    op.drop_table("document_chunks")
    op.drop_table("documents")
