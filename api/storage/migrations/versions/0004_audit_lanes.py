"""The audit trail in lanes, so that PostgreSQL writers chain side by side

With one head, every writer of every server process waited for the one before it to commit
(its row lock is held until the commit is on disk). Now the log is chained in lanes, each with
a head of its own: a writer takes the first lane no one holds. Entries are still numbered
across all lanes, each lane's in increasing order; `lindung audit verify` walks every lane.

PostgreSQL gets eight lanes. SQLite keeps one: its writers take turns on the whole file anyway.
Entries already recorded form lane 1, and their hashes are unchanged.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LANES = 8  # on PostgreSQL: more than the writers likely to commit at one moment
GENESIS = "0" * 64


def upgrade() -> None:
    op.add_column(
        "audit_log", sa.Column("lane", sa.SmallInteger(), nullable=False, server_default="1")
    )
    if op.get_bind().dialect.name == "postgresql":
        audit_head = sa.table(
            "audit_head", sa.column("id", sa.Integer), sa.column("seq"), sa.column("hash")
        )
        op.bulk_insert(
            audit_head, [{"id": lane, "seq": 0, "hash": GENESIS} for lane in range(2, LANES + 1)]
        )


def downgrade() -> None:
    bind = op.get_bind()
    used = bind.execute(sa.text("SELECT count(*) FROM audit_log WHERE lane <> 1")).scalar()
    if used:
        raise RuntimeError(f"{used} audit entries are in lanes other than 1: one chain cannot hold")
    op.execute("DELETE FROM audit_head WHERE id <> 1")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("lane")
