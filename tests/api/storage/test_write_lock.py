from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from api.storage import database, write_lock
from api.storage.write_lock import Busy
from tests.api.storage.test_database import postgres_url  # noqa: F401


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = database.connect(f"sqlite:///{tmp_path / 'lindung.db'}", serving=True)
    with database.transaction(engine) as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    engine.dispose()


def held_apart(engine: Engine, seconds: float, sqlite_lock: bool = False) -> None:
    """The lock file held for `seconds` by a file opened apart, as another process holds it;
    with `sqlite_lock`, SQLite's write lock instead, as a sqlite3 shell's BEGIN IMMEDIATE."""
    file = str(engine.url.database)
    taken = threading.Event()

    def hold() -> None:
        if sqlite_lock:
            other = sqlite3.connect(file, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)
            other.execute("ROLLBACK")
            other.close()
            return
        descriptor = os.open(f"{file}.lock", os.O_RDWR)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        taken.set()
        time.sleep(seconds)
        os.close(descriptor)

    threading.Thread(target=hold, daemon=True).start()
    assert taken.wait(10)


def free_apart(engine: Engine) -> bool:
    """Whether a file opened apart can take the lock file now."""
    descriptor = os.open(f"{engine.url.database}.lock", os.O_RDWR)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)
    return True


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM t")).scalar_one())


def test_a_lock_file_held_briefly_is_waited_for_at_once(engine: Engine) -> None:
    held_apart(engine, write_lock.LOOP_WAIT_SECONDS / 5)
    with database.transaction(engine, at_once=True) as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert rows(engine) == 1
    assert free_apart(engine)


@pytest.mark.parametrize("sqlite_lock", [False, True], ids=["lock-file", "sqlite"])
def test_a_lock_held_long_is_busy_at_once_and_its_turn_hands_it_over(
    engine: Engine, sqlite_lock: bool
) -> None:
    held_apart(engine, 1.0, sqlite_lock)
    started = time.monotonic()
    with (
        pytest.raises(Busy) as busy,
        database.transaction(engine, at_once=True) as connection,
    ):
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert time.monotonic() - started < 0.5
    assert rows(engine) == 0, "nothing written"
    busy.value.turn.wait()  # in a thread of the server; here the lock came free meanwhile
    assert time.monotonic() - started > 0.9
    assert not free_apart(engine), "held for this thread's next transaction"
    with database.transaction(engine, at_once=True) as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert rows(engine) == 1
    assert free_apart(engine), "let go at its end"


def test_a_turn_not_used_is_given_back(engine: Engine) -> None:
    held_apart(engine, 0.5)
    with pytest.raises(Busy) as busy, database.transaction(engine, at_once=True):
        pass
    busy.value.turn.wait()
    assert not free_apart(engine)
    busy.value.turn.give_back()
    assert free_apart(engine)


def test_a_transaction_that_may_wait_still_waits_for_sqlites_lock(engine: Engine) -> None:
    held_apart(engine, 0.5, sqlite_lock=True)
    with pytest.raises(Busy), database.transaction(engine, at_once=True):
        pass
    with database.transaction(engine) as connection:  # the same connection, waiting again
        connection.execute(text("INSERT INTO t VALUES (1)"))
    assert rows(engine) == 1


@pytest.fixture
def postgres(postgres_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = database.connect(postgres_url, serving=True)
    database.upgrade(engine)
    with database.transaction(engine) as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    engine.dispose()


HEAD = "SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE"


def held_in_another_transaction(engine: Engine, lock: str, seconds: float) -> threading.Thread:
    """`lock` (a statement taking a PostgreSQL lock) held for `seconds` by a transaction on a
    connection of its own, as another process's transaction holds it (an admin's upload holds
    the audit head, a bulk its escorts'); the thread holding it, which ends when it lets go."""
    taken = threading.Event()

    def hold() -> None:
        with engine.connect() as other, other.begin():
            other.execute(text(lock))
            taken.set()
            time.sleep(seconds)
            other.rollback()

    holding = threading.Thread(target=hold, daemon=True)
    holding.start()
    assert taken.wait(10)
    return holding


# An escort's lock, as a group takes it. Advisory locks are the whole server's, not a schema's:
# each test process has a key of its own.
KEY = random.getrandbits(62)
ESCORT = f"SELECT pg_advisory_xact_lock({KEY})"


def store_a_case(engine: Engine, at_once: bool = True) -> None:
    """A row written, then the locks a group with an escort takes: its escort's, the head."""
    with database.transaction(engine, at_once=at_once, advisory=[KEY]) as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        connection.execute(text(ESCORT))
        connection.execute(text(HEAD))


@pytest.mark.parametrize("lock", [HEAD, ESCORT], ids=["head", "escort"])
def test_a_postgresql_lock_held_long_is_busy_at_once_and_its_turn_waits_for_it(
    postgres: Engine, lock: str
) -> None:
    holding = held_in_another_transaction(postgres, lock, 1.0)
    started = time.monotonic()
    with pytest.raises(Busy) as busy:
        store_a_case(postgres)
    assert time.monotonic() - started < 0.5
    assert rows(postgres) == 0, "nothing written"
    busy.value.turn.wait()  # in a thread of the server; here the lock came free meanwhile
    assert time.monotonic() - started > 0.9
    holding.join()
    store_a_case(postgres)
    assert rows(postgres) == 1


def test_a_turns_wait_for_a_postgresql_lock_runs_out_as_sqlites_does(
    postgres: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_lock, "THREAD_WAIT_SECONDS", 0.5)
    holding = held_in_another_transaction(postgres, HEAD, 2.0)
    with pytest.raises(Busy) as busy:
        store_a_case(postgres)
    turn = busy.value.turn
    started = time.monotonic()
    with pytest.raises(Busy) as again:
        turn.wait()
    assert 0.4 < time.monotonic() - started < 1.5
    assert again.value.turn is turn, "waited for again by the requests still waiting"
    holding.join()


def test_a_transaction_that_may_wait_still_waits_for_a_postgresql_lock(postgres: Engine) -> None:
    holding = held_in_another_transaction(postgres, HEAD, 0.5)
    # at once and committed: the limit on its waits ended with it
    with database.transaction(postgres, at_once=True) as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
    with pytest.raises(Busy):
        store_a_case(postgres)
    store_a_case(postgres, at_once=False)  # the same connection, waiting again
    assert rows(postgres) == 2
    holding.join()
