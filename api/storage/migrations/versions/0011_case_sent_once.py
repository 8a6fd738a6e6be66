"""A case is stored once: a desk's case sent again is answered with its decision

Decisions carry the desk (their key's holder) that asked, unique with the case_id and the
screening time. Decisions stored before are given theirs; where a desk's case was stored more
than once (a retry), the first keeps it and the later copies are left without.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_HOLDER = """
UPDATE decisions SET holder = coalesce(
    (SELECT coalesce(k.holder, k.key_id) FROM api_keys k WHERE k.key_id = decisions.key_id),
    decisions.key_id
)
"""
# numbered within each case (a window: a self-join costs rows x rows where many decisions share
# a screening time, minutes on SQLite for 200,000 of them)
_LATER_COPIES = """
SELECT decision_id FROM (
  SELECT decision_id, row_number() OVER (
    PARTITION BY holder, case_id, screened_at ORDER BY audit_seq
  ) AS copy FROM decisions
) numbered WHERE copy > 1
"""


def upgrade() -> None:
    # not in batch mode, here and below: a batch may copy the table on SQLite, which the flags,
    # referrals and outcomes refer to
    op.add_column("decisions", sa.Column("holder", sa.String(length=32), nullable=True))
    connection = op.get_bind()
    connection.execute(sa.text(_HOLDER))
    later = sorted({row[0] for row in connection.execute(sa.text(_LATER_COPIES))})
    for start in range(0, len(later), 500):
        connection.execute(
            sa.text("UPDATE decisions SET holder = NULL WHERE decision_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": later[start : start + 500]},
        )
    op.create_index(
        "ix_decisions_holder_case_id_screened_at",
        "decisions",
        ["holder", "case_id", "screened_at"],
        unique=True,
    )


def downgrade() -> None:  # the earlier version stores a case sent again once more
    # SQLite 3.35 and later drops a column in place
    op.drop_index("ix_decisions_holder_case_id_screened_at", table_name="decisions")
    op.drop_column("decisions", "holder")
