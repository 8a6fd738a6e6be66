"""Rescore jobs' heartbeat: the time their runner last said it still runs them

A server process on another machine, in another container or started again with a stopped
one's PID cannot tell by the PID whether a job's runner still runs; it can tell by the
heartbeat. Jobs taken before have none, nor those a server of the earlier version still running
takes: they are judged as before, by their runner's PID on the same host.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("rescore_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("beat_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rescore_jobs", schema=None) as batch_op:
        batch_op.drop_column("beat_at")
