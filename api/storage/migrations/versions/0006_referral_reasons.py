"""Referrals say whom else to tell and why: the other agencies, the referring flags' reasons

Any desk works the referral queue, but a desk reads only its own decisions: the referral row
carries what the desk working it needs of the decision beyond the agency. Referrals opened
before are filled from their decisions in the audit log, as `lindung audit verify` checks them;
one whose entry no longer reads keeps empty lists (verify reports that entry).

Revision ID: 0006
Revises: 0005
"""

import json

import sqlalchemy as sa
from alembic import op

from api.storage.audit_body import unpack

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BATCH = 2_000


def upgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("also_notify", sa.Text(), server_default="[]", nullable=False)
        )
        batch_op.add_column(sa.Column("reasons", sa.Text(), server_default="[]", nullable=False))

    referrals = sa.table(
        "referrals",
        sa.column("decision_id", sa.String),
        sa.column("also_notify", sa.Text),
        sa.column("reasons", sa.Text),
    )
    decisions = sa.table(
        "decisions", sa.column("decision_id", sa.String), sa.column("audit_seq", sa.BigInteger)
    )
    log = sa.table("audit_log", sa.column("seq", sa.BigInteger), sa.column("body", sa.LargeBinary))
    bind = op.get_bind()
    after = ""
    while True:
        rows = bind.execute(
            sa.select(referrals.c.decision_id, log.c.body)
            .join_from(referrals, decisions, decisions.c.decision_id == referrals.c.decision_id)
            .join(log, log.c.seq == decisions.c.audit_seq)
            .where(referrals.c.decision_id > after)
            .order_by(referrals.c.decision_id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        filled = [
            {"referred": row.decision_id, **why}
            for row in rows
            if (why := _why_referred(bytes(row.body))) is not None
        ]
        if filled:
            bind.execute(
                referrals.update()
                .where(referrals.c.decision_id == sa.bindparam("referred"))
                .values(also_notify=sa.bindparam("notify"), reasons=sa.bindparam("why")),
                filled,
            )
        after = rows[-1].decision_id


def _why_referred(body: bytes) -> dict[str, str] | None:
    """The other agencies and the referring flags' titles and reasons, as the decision has
    them; None for a body that no longer reads."""
    try:
        decision = json.loads(unpack(body))
        referral = decision["referral"]
        reasons = [
            {"rule_id": flag["rule_id"], "title": flag["title"], "reason": flag["reason"]}
            for flag in decision["flags"]
            if flag["rule_id"] in referral["rule_ids"]
        ]
        return {"notify": json.dumps(referral["also_notify"]), "why": json.dumps(reasons)}
    except (ValueError, KeyError, TypeError):
        return None


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_column("reasons")
        batch_op.drop_column("also_notify")
