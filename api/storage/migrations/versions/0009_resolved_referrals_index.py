"""Resolved referrals indexed by when they were resolved

The referral queue lists resolved referrals, when asked for, after those still to work, most
recently resolved first: the index keeps a page of them from sorting every resolved one.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referrals_status_resolved_at"), ["status", "resolved_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_status_resolved_at"))
