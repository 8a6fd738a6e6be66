"""Rule packs pinned: each label with the SHA-256 of the files it stands for

A pack edited in place under the same version is another pack with the same label. The first
process that runs a label pins its content; a process whose copy differs refuses it. The rows
index the log's `rule_pack_pinned` entries: an upgrade after a downgrade makes them again.

Revision ID: 0005
Revises: 0004
"""

import json

import sqlalchemy as sa
from alembic import op

from api.storage.audit_body import unpack

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_packs",
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("pinned_at", sa.DateTime(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_seq"], ["audit_log.seq"], name=op.f("fk_rule_packs_audit_seq_audit_log")
        ),
        sa.PrimaryKeyConstraint("label", name=op.f("pk_rule_packs")),
        sa.UniqueConstraint("audit_seq", name=op.f("uq_rule_packs_audit_seq")),
    )
    # Pins an earlier upgrade made and a downgrade dropped: the table indexes the log
    log = sa.table(
        "audit_log",
        sa.column("seq", sa.BigInteger),
        sa.column("recorded_at", sa.DateTime),
        sa.column("kind", sa.String),
        sa.column("subject", sa.String),
        sa.column("body", sa.LargeBinary),
    )
    bind = op.get_bind()
    pins = bind.execute(
        sa.select(log.c.seq, log.c.recorded_at, log.c.subject, log.c.body).where(
            log.c.kind == "rule_pack_pinned"
        )
    ).all()
    if pins:
        rule_packs = sa.table(
            "rule_packs",
            sa.column("label", sa.String),
            sa.column("audit_seq", sa.BigInteger),
            sa.column("pinned_at", sa.DateTime),
            sa.column("sha256", sa.String),
        )
        bind.execute(
            rule_packs.insert(),
            [
                {
                    "label": pin.subject,
                    "audit_seq": pin.seq,
                    "pinned_at": pin.recorded_at,
                    "sha256": json.loads(unpack(bytes(pin.body)))["sha256"],
                }
                for pin in pins
            ],
        )


def downgrade() -> None:
    op.drop_table("rule_packs")
