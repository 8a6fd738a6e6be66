from __future__ import annotations

import fcntl
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import ProgrammingError

from api.storage import activation, audit, database
from tests.api.conftest import POSTGRES
from tests.api.servers import free_port, postgres_schema


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the machine's PostgreSQL, its connections named after it."""
    with postgres_schema(POSTGRES) as url:
        yield url


def terminate_connections(url: str) -> int:
    """Ends every server connection made with `url`, as a restart of the database would."""
    name = url.split("application_name=")[1].split("&")[0]
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": name},
        ).scalar_one()
    admin.dispose()
    return int(ended)


def test_work_on_a_lost_connection_runs_once_more_on_a_new_one(postgres_url: str) -> None:
    engine = database.connect(postgres_url, serving=True)  # no ping before each use
    database.upgrade(engine)
    assert terminate_connections(postgres_url) >= 1  # the pooled connection is gone

    tries = []

    def work() -> int:
        tries.append(1)
        with database.transaction(engine) as connection:
            return int(connection.execute(text("SELECT count(*) FROM audit_head")).scalar_one())

    assert database.once_more_if_lost(work) == 1
    assert len(tries) == 2, "the first try met the lost connection"
    engine.dispose()


@pytest.mark.parametrize("at_once", [False, True], ids=["thread", "event-loop"])
def test_a_lost_connection_met_by_the_driver_runs_once_more_on_a_new_one(
    postgres_url: str, at_once: bool
) -> None:
    # a group of screenings opens its transaction with statements run on the driver itself (on
    # the event loop, its BEGIN too)
    engine = database.connect(postgres_url, serving=True)
    database.upgrade(engine)
    assert terminate_connections(postgres_url) >= 1
    tries = []

    def work() -> audit.Head:
        tries.append(1)
        with database.transaction(engine, at_once=at_once) as connection:
            _seen, head = activation.generation_and_head(connection)
            return head

    assert database.once_more_if_lost(work) == (0, audit.GENESIS)
    assert len(tries) == 2, "the first try met the lost connection"
    engine.dispose()


@pytest.mark.parametrize("first", ["driver", "sqlalchemy"])
@pytest.mark.parametrize("at_once", [False, True], ids=["thread", "event-loop"])
def test_a_lost_connection_met_by_the_driver_drops_every_pooled_one(
    postgres_url: str, at_once: bool, first: str
) -> None:
    # after a restart every pooled connection is lost, not only the one the first try met: as
    # SQLAlchemy does for its own statements, the pool drops them all, so the second try gets
    # a new one (the event loop's BEGIN is on the driver: a group with escorts, whose first
    # statement was SQLAlchemy's, now meets the loss there)
    engine = database.connect(postgres_url, serving=True)
    database.upgrade(engine)
    pooled = [engine.connect() for _ in range(3)]
    for connection in pooled:
        connection.close()
    assert terminate_connections(postgres_url) >= 3
    tries = []

    def work() -> int:
        tries.append(1)
        with database.transaction(engine, at_once=at_once) as connection:
            if first == "driver":
                activation.generation_and_head(connection)
            return int(connection.execute(text("SELECT count(*) FROM audit_head")).scalar_one())

    assert database.once_more_if_lost(work) == 1
    assert len(tries) == 2, "the first try met the lost connection"
    engine.dispose()


def test_other_errors_are_not_tried_again(postgres_url: str) -> None:
    engine = database.connect(postgres_url, serving=True)
    tries = []

    def work() -> None:
        tries.append(1)
        with database.transaction(engine) as connection:
            connection.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(ProgrammingError, match="no_such_table"):
        database.once_more_if_lost(work)
    assert len(tries) == 1
    engine.dispose()


def sqlite_file(tmp_path: Path) -> Engine:
    """A serving engine on a new SQLite file with one table, its log left to `WalCheckpoints`."""
    engine = database.connect(f"sqlite:///{tmp_path / 'wal.db'}", serving=True)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)"))
    return engine


def test_one_threads_transactions_keep_to_one_sqlite_connection(tmp_path: Path) -> None:
    # as when the checkpoints' thread held a connection while a screening stored its own
    engine = sqlite_file(tmp_path)
    with engine.connect() as first, engine.connect() as second:
        opened = {id(first.connection.driver_connection), id(second.connection.driver_connection)}
    assert len(opened) == 2
    used = set()
    for _ in range(4):
        with database.transaction(engine) as connection:
            used.add(id(connection.connection.driver_connection))
    assert len(used) == 1
    engine.dispose()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_a_sqlite_database_in_memory_connects(url: str) -> None:
    engine = database.connect(url)
    with database.transaction(engine) as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()


def write_note(engine: Engine, size: int = 16_000) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO notes (body) VALUES (:body)"), {"body": b"x" * size})


def log_frames(engine: Engine) -> int:
    """Frames in the write-ahead log now (a checkpoint that copies them says how many)."""
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        assert raw is not None
        return int(raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])


class CommitsDuringPasses(database.WalCheckpoints):
    """Checkpoints during which another connection commits, after each of the first passes,
    unless it finds the writers' lock taken."""

    def __init__(self, engine: Engine, writer: Engine, busy_passes: int) -> None:
        super().__init__(engine)
        self.writer, self.busy_passes = writer, busy_passes
        self.passes_made, self.held_back = 0, 0

    def _pass(self, raw: Any) -> tuple[int, int, int]:
        made = super()._pass(raw)
        self.passes_made += 1
        if self.passes_made <= self.busy_passes:
            if writers_held_back(self.writer):
                self.held_back += 1
            else:
                write_note(self.writer)
        return made


def writers_held_back(engine: Engine) -> bool:
    with open(f"{engine.url.database}.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(lock, fcntl.LOCK_UN)
        return False


def test_a_checkpoint_copies_again_what_commits_added_until_the_log_can_start_again(
    tmp_path: Path,
) -> None:
    engine = sqlite_file(tmp_path)
    writer = database.connect(f"sqlite:///{tmp_path / 'wal.db'}", serving=True)
    for _ in range(20):
        write_note(writer)
    checkpoints = CommitsDuringPasses(engine, writer, busy_passes=3)

    assert checkpoints.round()
    assert checkpoints.passes_made == 4  # the fourth had no commit during it
    assert checkpoints.held_back == 0
    write_note(writer)  # starts the log again: one note's frames, not 23 notes'
    assert log_frames(engine) < 10
    engine.dispose()
    writer.dispose()


def test_when_commits_outrun_every_pass_the_last_holds_the_writers_back(tmp_path: Path) -> None:
    engine = sqlite_file(tmp_path)
    writer = database.connect(f"sqlite:///{tmp_path / 'wal.db'}", serving=True)
    checkpoints = CommitsDuringPasses(engine, writer, busy_passes=100)

    assert checkpoints.round()
    assert checkpoints.passes_made == checkpoints.passes + 1
    assert checkpoints.held_back == 1  # during the last pass only
    assert not writers_held_back(writer)  # and not after it
    engine.dispose()
    writer.dispose()


def test_the_checkpoints_thread_copies_the_log_so_that_it_can_start_again(
    tmp_path: Path,
) -> None:
    """The thread a server runs: once it has copied the log into the database, the next
    commit writes the log from its beginning. (How large the log grows under steady commits
    depends on the CPU the thread gets: bench/sqlite_wal.py measures it.)"""
    engine = sqlite_file(tmp_path)
    for _ in range(50):  # 800 kB, in the log only: nothing checkpoints but the thread
        write_note(engine)
    assert (tmp_path / "wal.db").stat().st_size < 100_000
    checkpoints = database.WalCheckpoints(engine, seconds=0.01)
    checkpoints.start()
    try:
        deadline = time.monotonic() + 30
        while (tmp_path / "wal.db").stat().st_size < 800_000:
            assert time.monotonic() < deadline, "the thread never copied the log"
            time.sleep(0.01)
    finally:
        checkpoints.stop()  # after the round it was in
    write_note(engine)
    assert log_frames(engine) < 10  # one note's frames, not 51 notes'
    engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_reading_transaction_sees_one_moment_and_holds_no_writer_back(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'lindung.db'}"
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
    engine = database.connect(url)
    database.upgrade(engine)
    count = text("SELECT count(*) FROM audit_head")
    with database.reading(engine) as reader:
        before = reader.execute(count).scalar_one()
        started = time.perf_counter()
        with database.transaction(engine) as writer:  # SQLite would wait 30 s for a lock
            writer.execute(text("DELETE FROM audit_head"))
        assert time.perf_counter() - started < 5
        assert reader.execute(count).scalar_one() == before == 1  # as at its first statement
    with database.reading(engine) as reader:
        assert reader.execute(count).scalar_one() == 0
    engine.dispose()


def error_of(engine: Engine, statement: str) -> BaseException:
    """What running `statement` on `engine` raises, as the app's handlers would see it."""
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    except Exception as error:
        return error
    raise AssertionError(f"{statement} did not fail")


def test_a_database_that_refuses_or_drops_connections_is_unreachable(
    postgres_url: str, tmp_path: Path
) -> None:
    refused = create_engine(f"postgresql+psycopg://root@127.0.0.1:{free_port()}/test")
    assert database.unreachable(error_of(refused, "SELECT 1"))  # nothing listens there
    restarted = create_engine(postgres_url)
    with restarted.connect() as connection:  # ended while it waits in the pool
        connection.exec_driver_sql("SELECT 1")
    assert terminate_connections(postgres_url) == 1
    assert database.unreachable(error_of(restarted, "SELECT 1"))
    restarted.dispose()
    for engine in (create_engine(postgres_url), create_engine(f"sqlite:///{tmp_path / 'x.db'}")):
        # the database answered: the request's own fault, or a bug, not an outage
        assert not database.unreachable(error_of(engine, "SELEC 1"))
        assert not database.unreachable(error_of(engine, "SELECT * FROM no_such_table"))
        engine.dispose()
    assert not database.unreachable(RuntimeError("not the database's"))


def test_a_postgresql_server_that_never_answers_is_given_up_on_within_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host that takes the connection and then says nothing (gone, or dropping packets) is
    an unreachable database after CONNECT_SECONDS, not after the system's TCP time-out; a URL
    that sets its own connect_timeout keeps it."""
    monkeypatch.setattr(database, "CONNECT_SECONDS", 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever answers
        url = f"postgresql+psycopg://root@127.0.0.1:{silent.getsockname()[1]}/test"
        for given, expected in ((url, 2), (f"{url}?connect_timeout=3", 3)):
            waited, error = given_up_on(database.connect(given))
            assert database.unreachable(error)
            assert expected - 0.5 <= waited < expected + 1.5


def given_up_on(engine: Engine) -> tuple[float, BaseException]:
    """How long a first connection to `engine` took to fail, and its error; in a thread, so that
    one that never gives up fails the test instead of holding it up."""
    failed: list[tuple[float, BaseException]] = []

    def connect() -> None:
        started = time.monotonic()
        error = error_of(engine, "SELECT 1")
        failed.append((time.monotonic() - started, error))

    trying = threading.Thread(target=connect, daemon=True)
    trying.start()
    trying.join(10)
    assert failed, "still connecting after 10 s"
    return failed[0]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_failed_statements_error_shows_no_value_it_was_given(
    kind: str, postgres_url: str, tmp_path: Path
) -> None:
    """An error's text, which the server logs, names the statement but not the values it was
    sent with: what is stored may be an identifier's keyed hash, and no value belongs in a log."""
    url = postgres_url if kind == "postgresql" else f"sqlite:///{tmp_path / 'x.db'}"
    engine = database.connect(url)
    value = "3171234567890001"
    try:
        with engine.connect() as connection:
            connection.execute(
                text("SELECT holder FROM no_such_table WHERE nik = :nik"), {"nik": value}
            )
    except Exception as error:
        said = str(error)
    else:
        raise AssertionError("the statement did not fail")
    finally:
        engine.dispose()
    assert "no_such_table" in said
    assert value not in said
