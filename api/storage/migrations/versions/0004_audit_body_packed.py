"""Audit bodies stored packed (deflated against a fixed dictionary, `api.storage.audit_body`)

The body column holds bytes, which PostgreSQL keeps in the row (STORAGE MAIN) rather than in
the TOAST table beside it. Entries already written keep their JSON text, as UTF-8 bytes,
which `audit_body.unpack` reads as they are; entries from now on are packed. PostgreSQL
changes the column to bytea; SQLite keeps the column it declared (TEXT, whose values may be
bytes) and turns its values into bytes. Downgrading writes every body back as JSON text.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from api.storage.audit_body import PLAIN, unpack

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BATCH = 2_000


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE audit_log ALTER COLUMN body TYPE bytea USING convert_to(body, 'UTF8')"
        )
        # a packed body (2 kB) is kept in the row, not in the TOAST table: one write, not three
        op.execute("ALTER TABLE audit_log ALTER COLUMN body SET STORAGE MAIN")
    else:
        op.execute("UPDATE audit_log SET body = CAST(body AS BLOB)")


def downgrade() -> None:
    bind = op.get_bind()
    log = sa.table("audit_log", sa.column("seq", sa.BigInteger), sa.column("body", sa.LargeBinary))
    after = 0
    while True:
        rows = bind.execute(
            sa.select(log.c.seq, log.c.body)
            .where(log.c.seq > after)
            .order_by(log.c.seq)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        packed = [
            {"number": row.seq, "text": unpack(bytes(row.body)).encode()}
            for row in rows
            if bytes(row.body)[:1] != bytes([PLAIN])
        ]
        if packed:
            bind.execute(
                log.update()
                .where(log.c.seq == sa.bindparam("number"))
                .values(body=sa.bindparam("text")),
                packed,
            )
        after = rows[-1].seq
    if bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE audit_log ALTER COLUMN body TYPE text USING convert_from(body, 'UTF8')"
        )
    else:
        op.execute("UPDATE audit_log SET body = CAST(body AS TEXT)")
