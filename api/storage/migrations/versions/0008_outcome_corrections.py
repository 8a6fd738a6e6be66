"""Outcome corrections: a confirmation that names the confirmed outcome it corrects

An officer who confirmed the wrong outcome corrects it with a new confirmation naming the one
it corrects (and a note saying why); the latest confirmation is the label. Outcomes recorded
before corrected nothing: their column stays empty, as their audit entries say.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("corrects", sa.String(length=20), nullable=True))


def downgrade() -> None:
    corrected = op.get_bind().execute(
        sa.text("SELECT count(*) FROM outcomes WHERE corrects IS NOT NULL")
    )
    count = corrected.scalar_one()
    if count:  # the earlier version labels a case by its first confirmation: the wrong one
        raise RuntimeError(
            f"not downgraded past revision 0008: {count} outcome corrections are stored, and the "
            "earlier version would label those cases by the confirmations they corrected"
        )
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_column("corrects")
