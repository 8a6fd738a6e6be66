"""Audit bodies compressed with Zstandard (`api.storage.audit_body`, first byte 2)

Nothing in the schema changes: this revision marks a database whose new entries an earlier
release cannot read (it would find every one of them changed), so that such a release refuses
the database rather than verifying it. Downgrading writes each Zstandard body again deflated
against the same dictionary (first byte 1), as releases before read them; the hashes cover the
text, which does not change.

Revision ID: 0012
Revises: 0011
"""

import zlib

import sqlalchemy as sa
from alembic import op

from api.storage.audit_body import DEFLATED_1, DICTIONARY_1, ZSTD_1, dictionary, unpack

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BATCH = 2_000
DEFLATE_LEVEL = 3  # as bodies were deflated before


def upgrade() -> None:
    pass


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
        deflated = [
            {"number": row.seq, "packed": _deflated(unpack(bytes(row.body)))}
            for row in rows
            if bytes(row.body)[:1] == bytes([ZSTD_1])
        ]
        if deflated:
            bind.execute(
                log.update()
                .where(log.c.seq == sa.bindparam("number"))
                .values(body=sa.bindparam("packed")),
                deflated,
            )
        after = rows[-1].seq


def _deflated(text: str) -> bytes:
    deflate = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15, zdict=dictionary(DICTIONARY_1))
    return bytes([DEFLATED_1]) + deflate.compress(text.encode()) + deflate.flush()
