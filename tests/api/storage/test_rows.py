from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select

from api.storage import database, tables
from api.storage.rows import RowInsert

WIB = timezone(timedelta(hours=7))

COLUMNS = tuple(tables.decisions.columns.keys())


def audit_entries(count: int, first: int) -> list[dict[str, object]]:
    at = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
    return [
        {
            "seq": first + n,
            "recorded_at": at,
            "actor": "k",
            "kind": "decision",
            "subject": f"d{first + n}",
            "body": '{"é":"ünïcode"}',
            "prev_hash": "0" * 64,
            "hash": f"{first + n:064d}",
        }
        for n in range(count)
    ]


def decision_rows(seqs: list[int], prefix: str) -> list[dict[str, object]]:
    """Decisions numbered `seqs` in the log; the n-th of any call says the same as the n-th of
    another."""
    return [
        {
            "decision_id": f"{prefix}{seq:030d}",
            "audit_seq": seq,
            "case_id": f"C-{n}",
            "channel": "port_desk",
            "tier": "review",
            "risk_score": 0.1 + n / 1000 if n % 2 else None,
            "screened_at": datetime(2026, 12, 3, 12, 30, 15, 123456 - n, tzinfo=WIB),
            "recorded_at": datetime(2026, 12, 3, 5, 30, 16, n, tzinfo=UTC),
            "key_id": "k",
            "rule_pack": "default@1",
            "model": None if n % 3 else "lindung-risk@1",
        }
        for n, seq in enumerate(seqs)
    ]


def stored(
    engine: Engine, prefix: str
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The decisions whose ids start with `prefix`, but their ids and numbers: as SQLAlchemy
    reads them, and as the database holds them (SQLite compares times as their text)."""
    d = tables.decisions.c
    with engine.connect() as connection:
        read = connection.execute(
            select(*(d[name] for name in COLUMNS[2:]))
            .where(d.decision_id.startswith(prefix))
            .order_by(d.audit_seq)
        )
        held = connection.exec_driver_sql(
            f"SELECT {', '.join(COLUMNS[2:])} FROM decisions "
            f"WHERE substr(decision_id, 1, 1) = '{prefix}' ORDER BY audit_seq"
        )
        return [tuple(row) for row in read], [tuple(row) for row in held]


@pytest.mark.parametrize("count", [1, 3])
def test_rows_written_through_the_driver_read_back_as_sqlalchemy_writes_them(
    engine: Engine, count: int
) -> None:
    through_driver = RowInsert(tables.decisions)
    with database.transaction(engine) as connection:
        connection.execute(tables.audit_log.insert(), audit_entries(2 * count, 1000))
        connection.execute(
            tables.decisions.insert(), decision_rows(list(range(1000, 1000 + count)), "a")
        )
        through_driver(connection, decision_rows(list(range(1000 + count, 1000 + 2 * count)), "b"))

    by_sqlalchemy, by_driver = stored(engine, "a"), stored(engine, "b")
    read = by_driver[0]
    assert len(read) == count
    assert by_driver == by_sqlalchemy
    assert read[0][COLUMNS.index("screened_at") - 2] == datetime(
        2026, 12, 3, 5, 30, 15, 123456, tzinfo=UTC
    )


def test_rows_written_through_the_driver_roll_back_with_the_transaction(engine: Engine) -> None:
    def fails_after_writing() -> None:
        with database.transaction(engine) as connection:
            RowInsert(tables.audit_log)(connection, audit_entries(2, 2000))
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        fails_after_writing()
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(tables.audit_log.c.seq).where(tables.audit_log.c.seq >= 2000)
            ).all()
            == []
        )


def test_a_time_without_a_zone_is_refused_as_sqlalchemy_refuses_it(engine: Engine) -> None:
    rows = decision_rows([3000], "c")
    rows[0]["screened_at"] = datetime(2026, 12, 3, 12, 30)

    def write() -> None:
        with database.transaction(engine) as connection:
            connection.execute(tables.audit_log.insert(), audit_entries(1, 3000))
            RowInsert(tables.decisions)(connection, rows)

    with pytest.raises(ValueError, match="zone"):
        write()
    with engine.connect() as connection:
        assert (
            connection.execute(
                select(tables.audit_log.c.seq).where(tables.audit_log.c.seq == 3000)
            ).all()
            == []
        )


def test_a_column_the_table_lacks_is_named() -> None:
    with pytest.raises(ValueError, match="decisions has no column \\['tier_x'\\]"):
        RowInsert(tables.decisions, ("decision_id", "tier_x"))
