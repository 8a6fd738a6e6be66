"""The database schema (SQLAlchemy Core). Alembic migrations under `migrations/` create it.

The audit log is the record: every decision, outcome, referral step, key, registry upload and
activation is one chained entry there. The other tables index it for queries and hold the
operational state (a referral's status); `lindung audit verify` checks them against the log.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

from api.storage.audit_body import AuditBody


class UtcDateTime(TypeDecorator[datetime]):
    """Times are stored as UTC without a zone (SQLite keeps none) and read back as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("times must carry a zone")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

DIGEST = 64  # a SHA-256 in hex
ID = 32  # a uuid4 in hex

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("actor", String(ID), nullable=False),  # the API key's id, or "cli"
    Column("kind", String(32), nullable=False),
    Column("subject", String(200), nullable=False),
    # canonical JSON, packed as stored; on SQLite the column keeps its first declared type,
    # TEXT, which holds these bytes as they are (revision 0004)
    Column("body", AuditBody, nullable=False),
    Column("prev_hash", String(DIGEST), nullable=False),
    Column("hash", String(DIGEST), nullable=False),
)

audit_head = Table(  # one row: the newest entry; deleting the last entry cannot go unnoticed
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(DIGEST), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("key_hash", String(DIGEST), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
    Column("audit_seq", BigInteger, ForeignKey("audit_log.seq"), nullable=False),
    # A key made to replace another (rotation): the key it replaces, and its holder, the id of
    # the holder's first key. A first key has neither: it is its own holder.
    Column("holder", String(ID)),
    Column("replaces", String(ID)),
    Index(None, "replaces", unique=True),  # a key is replaced once
    Index(None, "holder"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(ID), primary_key=True),
    Column("audit_seq", BigInteger, ForeignKey("audit_log.seq"), nullable=False, unique=True),
    Column("case_id", String(200), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("risk_score", Float),
    Column("screened_at", UtcDateTime, nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("key_id", String(ID), nullable=False),
    Column("rule_pack", String(200), nullable=False),
    Column("model", String(200)),
    # The desk that asked (its keys' holder): a case it sends again with the same case_id and
    # screened_at (a retry after a lost answer) is answered from here, never stored twice.
    # Empty for the later copies of a case stored twice before revision 0011.
    Column("holder", String(ID)),
    Index(None, "screened_at"),
    Index(None, "key_id", "screened_at"),
    Index(None, "tier", "screened_at"),
    Index(None, "case_id"),
    Index(None, "holder", "case_id", "screened_at", unique=True),
)

decision_flags = Table(
    "decision_flags",
    metadata,
    Column("decision_id", String(ID), ForeignKey("decisions.decision_id"), primary_key=True),
    Column("rule_id", String(100), primary_key=True),
    Index(None, "rule_id"),
)

escort_links = Table(
    "escort_links",
    metadata,
    Column("link_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("escort", String(100), nullable=False),
    Column("traveller", String(100), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index(None, "escort", "at"),
)

referrals = Table(
    "referrals",
    metadata,
    Column("decision_id", String(ID), ForeignKey("decisions.decision_id"), primary_key=True),
    Column("agency", String(100), nullable=False),
    # what the desk working it needs and may not read in the decision (another desk's): the
    # other agencies to tell, and the referring flags' titles and reasons (JSON lists)
    Column("also_notify", Text, nullable=False, server_default="[]"),
    Column("reasons", Text, nullable=False, server_default="[]"),
    Column("deadline", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # open | acknowledged | resolved
    Column("opened_at", UtcDateTime, nullable=False),
    Column("acknowledged_at", UtcDateTime),
    Column("acknowledged_by", String(ID)),
    Column("resolved_at", UtcDateTime),
    Column("resolved_by", String(ID)),
    Column("note", Text),
    Index(None, "status", "deadline"),
    Index(None, "status", "resolved_at"),  # resolved ones, most recently resolved first
)

outcomes = Table(
    "outcomes",
    metadata,
    Column("outcome_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("audit_seq", BigInteger, ForeignKey("audit_log.seq"), nullable=False, unique=True),
    Column("decision_id", String(ID), ForeignKey("decisions.decision_id"), nullable=False),
    Column("action", String(16)),
    Column("confirmed", String(20)),
    Column("corrects", String(20)),  # the confirmed outcome this one corrects (revision 0008)
    Column("recorded_at", UtcDateTime, nullable=False),
    Column("key_id", String(ID), nullable=False),
    Index(None, "decision_id"),
)

registries = Table(
    "registries",
    metadata,
    Column("registry_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("audit_seq", BigInteger, ForeignKey("audit_log.seq"), nullable=False, unique=True),
    Column("uploaded_at", UtcDateTime, nullable=False),
    Column("key_id", String(ID), nullable=False),
    Column("sha256", String(DIGEST), nullable=False),
    Column("licences", Integer, nullable=False),
    Column("content", Text, nullable=False),
)

activations = Table(
    "activations",
    metadata,
    Column("activation_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("audit_seq", BigInteger, ForeignKey("audit_log.seq"), nullable=False, unique=True),
    Column("activated_at", UtcDateTime, nullable=False),
    Column("key_id", String(ID), nullable=False),
    Column("rule_pack", String(200), nullable=False),
    Column("model", String(200), nullable=False),
)

rule_packs = Table(  # each pack label with the content it stands for: one content a label
    "rule_packs",
    metadata,
    Column("label", String(200), primary_key=True),
    Column("audit_seq", BigInteger, ForeignKey("audit_log.seq"), nullable=False, unique=True),
    Column("pinned_at", UtcDateTime, nullable=False),
    Column("sha256", String(DIGEST), nullable=False),
)

rescore_jobs = Table(  # analysts' batch rescoring jobs: the files live under LINDUNG_JOB_DIR
    "rescore_jobs",
    metadata,
    Column("job_id", String(ID), primary_key=True),
    Column("key_id", String(ID), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("status", String(16), nullable=False),  # queued, running, done, failed, cancelled
    Column("source_name", String(200), nullable=False),
    Column("options", Text, nullable=False),  # JSON
    Column("progress", Text),  # JSON: stage, done, total
    Column("summary", Text),  # JSON: what `lindung rescore` printed
    Column("error", Text),
    Column("runner", String(200)),  # the server process holding it (api/runners.py)
    Column("beat_at", UtcDateTime),  # its runner's last heartbeat, by the database's clock
    Index(None, "created_at"),
)
