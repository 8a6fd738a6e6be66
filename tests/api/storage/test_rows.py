from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, bindparam, func, select, update

from api.storage import database, tables
from api.storage.rows import DriverStatement, RowInsert

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
            "holder": None,  # one case in both calls: a desk's would be unique
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


def test_a_statement_through_the_driver_reads_what_sqlalchemy_reads(engine: Engine) -> None:
    log = tables.audit_log.c
    query = (
        select(log.seq, log.kind, log.subject, func.coalesce(func.length(log.subject), 0))
        .where(log.seq >= bindparam("first"), log.seq < 4000 + 3)  # a literal and a parameter
        .order_by(log.seq)
    )
    entries = [
        {**entry, "subject": f"{entry['subject']}-ünïcode"} for entry in audit_entries(5, 4000)
    ]
    with database.transaction(engine) as connection:
        connection.execute(tables.audit_log.insert(), entries)
        by_driver = DriverStatement(query).rows(connection, {"first": 4001})
        by_sqlalchemy = [tuple(row) for row in connection.execute(query, {"first": 4001})]
    assert by_driver == by_sqlalchemy
    assert [row[0] for row in by_driver] == [4001, 4002]
    assert by_driver[0][2:] == ("d4001-ünïcode", 13)


def test_a_statement_through_the_driver_converts_its_parameters_as_their_columns_do(
    engine: Engine,
) -> None:
    """A time in another zone is stored in UTC, as SQLAlchemy stores it."""
    d = tables.decisions.c
    moved = datetime(2026, 12, 3, 14, 0, 1, 5, tzinfo=WIB)
    with database.transaction(engine) as connection:
        connection.execute(tables.audit_log.insert(), audit_entries(2, 5000))
        connection.execute(tables.decisions.insert(), decision_rows([5000, 5001], "e"))
        DriverStatement(
            update(tables.decisions)
            .where(d.decision_id == bindparam("id"))
            .values(recorded_at=bindparam("at"))
        ).run(connection, {"id": f"e{5000:030d}", "at": moved})
        connection.execute(
            update(tables.decisions)
            .where(d.decision_id == f"e{5001:030d}")
            .values(recorded_at=moved)
        )
    read, held = stored(engine, "e")
    at = COLUMNS.index("recorded_at") - 2
    assert read[0][at] == read[1][at] == datetime(2026, 12, 3, 7, 0, 1, 5, tzinfo=UTC)
    assert held[0][at] == held[1][at]


def test_a_statement_through_the_driver_names_a_parameter_missing_or_unknown(
    engine: Engine,
) -> None:
    log = tables.audit_log.c
    query = DriverStatement(select(log.seq).where(log.seq == bindparam("seq")))
    with engine.connect() as connection:
        with pytest.raises(ValueError, match=r"missing: \['seq'\], unknown: \[\]"):
            query.rows(connection)
        with pytest.raises(ValueError, match=r"missing: \[\], unknown: \['sequence'\]"):
            query.rows(connection, {"seq": 1, "sequence": 1})
