from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from api.storage import database
from api.storage.case_history import DatabaseCaseHistory, escort_lock

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


def test_lock_keys_are_signed_64_bit() -> None:
    assert escort_lock("escort_ref:" + "f" * 32) == -1
    assert escort_lock("escort_ref:" + "0" * 31 + "1") == 0
    assert -(2**63) <= escort_lock("escort_ref:8" + "0" * 31) < 2**63
