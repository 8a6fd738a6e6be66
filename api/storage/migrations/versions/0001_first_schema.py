"""The first schema: audit log, keys, decisions, referrals, outcomes, registries, activations

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "escort_links",
        sa.Column("link_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("escort", sa.String(length=100), nullable=False),
        sa.Column("traveller", sa.String(length=100), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("link_id", name=op.f("pk_escort_links")),
    )
    with op.batch_alter_table("escort_links", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_escort_links_escort_at"), ["escort", "at"], unique=False
        )

    op.create_table(
        "activations",
        sa.Column(
            "activation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("activated_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("rule_pack", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_seq"], ["audit_log.seq"], name=op.f("fk_activations_audit_seq_audit_log")
        ),
        sa.PrimaryKeyConstraint("activation_id", name=op.f("pk_activations")),
        sa.UniqueConstraint("audit_seq", name=op.f("uq_activations_audit_seq")),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_seq"], ["audit_log.seq"], name=op.f("fk_api_keys_audit_seq_audit_log")
        ),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "decisions",
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("risk_score", sa.Float(), nullable=True),
        sa.Column("screened_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("rule_pack", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["audit_seq"], ["audit_log.seq"], name=op.f("fk_decisions_audit_seq_audit_log")
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_decisions")),
        sa.UniqueConstraint("audit_seq", name=op.f("uq_decisions_audit_seq")),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_decisions_key_id_screened_at"), ["key_id", "screened_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_decisions_screened_at"), ["screened_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_decisions_tier_screened_at"), ["tier", "screened_at"], unique=False
        )

    op.create_table(
        "registries",
        sa.Column(
            "registry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("licences", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_seq"], ["audit_log.seq"], name=op.f("fk_registries_audit_seq_audit_log")
        ),
        sa.PrimaryKeyConstraint("registry_id", name=op.f("pk_registries")),
        sa.UniqueConstraint("audit_seq", name=op.f("uq_registries_audit_seq")),
    )
    op.create_table(
        "decision_flags",
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.decision_id"],
            name=op.f("fk_decision_flags_decision_id_decisions"),
        ),
        sa.PrimaryKeyConstraint("decision_id", "rule_id", name=op.f("pk_decision_flags")),
    )
    with op.batch_alter_table("decision_flags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decision_flags_rule_id"), ["rule_id"], unique=False)

    op.create_table(
        "outcomes",
        sa.Column(
            "outcome_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=True),
        sa.Column("confirmed", sa.String(length=20), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["audit_seq"], ["audit_log.seq"], name=op.f("fk_outcomes_audit_seq_audit_log")
        ),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.decision_id"],
            name=op.f("fk_outcomes_decision_id_decisions"),
        ),
        sa.PrimaryKeyConstraint("outcome_id", name=op.f("pk_outcomes")),
        sa.UniqueConstraint("audit_seq", name=op.f("uq_outcomes_audit_seq")),
    )
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outcomes_decision_id"), ["decision_id"], unique=False)

    op.create_table(
        "referrals",
        sa.Column("decision_id", sa.String(length=32), nullable=False),
        sa.Column("agency", sa.String(length=100), nullable=False),
        sa.Column("deadline", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=32), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["decision_id"],
            ["decisions.decision_id"],
            name=op.f("fk_referrals_decision_id_decisions"),
        ),
        sa.PrimaryKeyConstraint("decision_id", name=op.f("pk_referrals")),
    )
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_referrals_status_deadline"), ["status", "deadline"], unique=False
        )

    audit_head = sa.table(
        "audit_head", sa.column("id", sa.Integer), sa.column("seq"), sa.column("hash")
    )
    op.bulk_insert(audit_head, [{"id": 1, "seq": 0, "hash": "0" * 64}])  # the empty chain


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_status_deadline"))

    op.drop_table("referrals")
    with op.batch_alter_table("outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outcomes_decision_id"))

    op.drop_table("outcomes")
    with op.batch_alter_table("decision_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_flags_rule_id"))

    op.drop_table("decision_flags")
    op.drop_table("registries")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decisions_tier_screened_at"))
        batch_op.drop_index(batch_op.f("ix_decisions_screened_at"))
        batch_op.drop_index(batch_op.f("ix_decisions_key_id_screened_at"))
        batch_op.drop_index(batch_op.f("ix_decisions_case_id"))

    op.drop_table("decisions")
    op.drop_table("api_keys")
    op.drop_table("activations")
    with op.batch_alter_table("escort_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_escort_links_escort_at"))

    op.drop_table("escort_links")
    op.drop_table("audit_log")
    op.drop_table("audit_head")
