"""Key rotation: a key made to replace another carries its holder on

A desk's decisions are the holder's, not one key's: a key that replaces another sees what the
replaced key's holder sees. Keys made before are each their own holder (both columns empty), as
are keys that a command of the earlier version makes.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("holder", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("replaces", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_holder"), ["holder"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_keys_replaces"), ["replaces"], unique=True)


def downgrade() -> None:
    replacing = op.get_bind().execute(
        sa.text("SELECT count(*) FROM api_keys WHERE holder IS NOT NULL")
    )
    count = replacing.scalar_one()
    if count:  # the earlier version knows no holder: each would lose its desk's decisions
        raise RuntimeError(
            f"not downgraded past revision 0010: {count} keys replace others, and the earlier "
            "version would show each only the decisions screened with it"
        )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_replaces"))
        batch_op.drop_index(batch_op.f("ix_api_keys_holder"))
        batch_op.drop_column("replaces")
        batch_op.drop_column("holder")
