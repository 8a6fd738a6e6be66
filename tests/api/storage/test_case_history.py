from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from api.storage import database, tables
from api.storage.case_history import DatabaseCaseHistory, PreviewHistory, escort_lock

WINDOW = timedelta(days=30)
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def link(engine: Engine, escort: str, traveller: str, at: datetime = AT) -> int:
    with database.transaction(engine) as connection:
        return DatabaseCaseHistory(connection).link(escort, traveller, at, WINDOW)


def test_counts_distinct_travellers_within_the_window(engine: Engine) -> None:
    assert link(engine, "escort_ref:aa", "t1") == 1
    assert link(engine, "escort_ref:aa", "t1", AT + timedelta(hours=1)) == 1  # the same person
    assert link(engine, "escort_ref:aa", "t2", AT + timedelta(hours=2)) == 2
    assert link(engine, "escort_ref:bb", "t3", AT + timedelta(hours=2)) == 1  # another escort
    assert link(engine, "escort_ref:aa", "t4", AT + WINDOW + timedelta(hours=1, minutes=30)) == 2


def test_a_case_screened_late_counts_the_travellers_linked_after_it_within_a_window(
    engine: Engine,
) -> None:
    """A desk syncing after an outage: its case at 08:00 arrives after the escort's travellers
    of 09:00 and 10:00 were linked, and is the third (it counted one before). A window holds
    them all, never more: a traveller a whole window after another is not counted with it."""
    assert link(engine, "escort_ref:ba", "t2", AT + timedelta(hours=1)) == 1
    assert link(engine, "escort_ref:ba", "t3", AT + timedelta(hours=2)) == 2
    assert link(engine, "escort_ref:ba", "t1", AT) == 3
    # before and after, each less than a window away, but never both in one window
    link(engine, "escort_ref:bc", "t1", AT - WINDOW + timedelta(hours=1))
    link(engine, "escort_ref:bc", "t2", AT + WINDOW - timedelta(hours=1))
    assert link(engine, "escort_ref:bc", "t3") == 2


def test_a_link_rolled_back_with_its_request_is_not_counted(engine: Engine) -> None:
    try:
        with database.transaction(engine) as connection:
            DatabaseCaseHistory(connection).link("escort_ref:cc", "t1", AT, WINDOW)
            raise RuntimeError("the decision could not be stored")
    except RuntimeError:
        pass
    assert link(engine, "escort_ref:cc", "t2") == 1


def test_desks_linking_the_same_escort_at_once_each_count_the_others(engine: Engine) -> None:
    """Three desks (threads with their own connections, as in different processes) record
    travellers of one escort at the same moment: the counts are 1, 2 and 3, never two alike."""
    start = threading.Barrier(3)
    counts: list[int] = []

    def desk(traveller: str) -> None:
        start.wait()  # not inside: SQLite's write lock, taken at BEGIN, would hold the others
        with database.transaction(engine) as connection:
            counts.append(
                DatabaseCaseHistory(connection).link("escort_ref:dd", traveller, AT, WINDOW)
            )

    threads = [threading.Thread(target=desk, args=(f"t{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(counts) == [1, 2, 3]


def test_a_preview_counts_what_the_transaction_would_and_records_nothing(engine: Engine) -> None:
    """Links already stored, the bulk's own earlier ones, the same person twice, another escort
    and the window: the same counts as `DatabaseCaseHistory` gives, linking in the same order."""
    link(engine, "escort_ref:ee", "t1", AT - timedelta(days=40))  # out of every window below
    link(engine, "escort_ref:ee", "t2", AT - timedelta(days=1))
    # after the bulk's first cases, within a window of them: a desk syncing late counts it
    link(engine, "escort_ref:ee", "t9", AT + timedelta(days=1))
    bulk = [
        ("escort_ref:ee", "t3", AT),
        ("escort_ref:ff", "t3", AT),
        ("escort_ref:ee", "t2", AT + timedelta(hours=1)),
        ("escort_ref:ee", "t4", AT + timedelta(hours=2)),
        ("escort_ref:ee", "t5", AT + WINDOW),
    ]
    with database.reading(engine) as connection:
        preview = PreviewHistory(connection, {escort for escort, _, _ in bulk})
        previewed = [preview.link(*one, WINDOW) for one in bulk]
    assert stored_links(engine) == 3
    with database.transaction(engine) as connection:
        history = DatabaseCaseHistory(connection)
        counted = [history.link(*one, WINDOW) for one in bulk]
        connection.rollback()
    assert previewed == counted == [3, 1, 3, 4, 4]
    assert preview.links[1] == {"escort": "escort_ref:ff", "traveller": "t3", "at": AT}


def test_the_transaction_learns_which_escorts_were_linked_since_the_preview(
    engine: Engine,
) -> None:
    link(engine, "escort_ref:ab", "t1")
    with database.reading(engine) as connection:
        preview = PreviewHistory(connection, ["escort_ref:ab", "escort_ref:ac", "escort_ref:ad"])
        preview.link("escort_ref:ab", "t2", AT, WINDOW)
    link(engine, "escort_ref:ac", "t7", AT - timedelta(days=90))  # another desk, meanwhile
    with database.transaction(engine) as connection:
        history = DatabaseCaseHistory(connection)
        history.lock(["escort_ref:ab", "escort_ref:ac", "escort_ref:ad"])
        assert preview.changed(connection) == {"escort_ref:ac"}
        history.record(preview.links)
    assert link(engine, "escort_ref:ab", "t3") == 3


def test_links_counted_beforehand_are_recorded_only_under_their_escorts_lock(
    engine: Engine,
) -> None:
    with database.transaction(engine) as connection:
        history = DatabaseCaseHistory(connection)
        history.lock(["escort_ref:ae"])
        with pytest.raises(RuntimeError, match="lock an escort"):
            history.record([{"escort": "escort_ref:af", "traveller": "t1", "at": AT}])


def stored_links(engine: Engine) -> int:
    with engine.connect() as connection:
        count = select(func.count()).select_from(tables.escort_links)
        return int(connection.execute(count).scalar_one())


def test_lock_keys_are_signed_64_bit() -> None:
    assert escort_lock("escort_ref:" + "f" * 32) == -1
    assert escort_lock("escort_ref:" + "0" * 31 + "1") == 0
    assert -(2**63) <= escort_lock("escort_ref:8" + "0" * 31) < 2**63
