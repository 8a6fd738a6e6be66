"""Rescore jobs: analysts' batch rescoring over HTTP

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rescore_jobs",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_name", sa.String(length=200), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("progress", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("runner", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_rescore_jobs")),
    )
    op.create_index(
        op.f("ix_rescore_jobs_created_at"), "rescore_jobs", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_rescore_jobs_created_at"), table_name="rescore_jobs")
    op.drop_table("rescore_jobs")
