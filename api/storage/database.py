"""Connecting to the database and bringing its schema up to date.

SQLite (the default, one file) and PostgreSQL behave alike here: every write transaction is
serialised where it must be. On SQLite a writing transaction starts with BEGIN IMMEDIATE, so
several server processes sharing the file take turns instead of failing to upgrade a read lock;
on PostgreSQL, row and advisory locks serialise only what conflicts (the audit chain, one escort).
On both, the event loop's transactions (`at_once`) wait for those locks no longer than another
worker's commits take (`write_lock`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import QueuePool

from api.storage import write_lock
from api.storage.rows import driver_errors
from engine.errors import LindungError

log = logging.getLogger("lindung.storage")
T = TypeVar("T")
MIGRATIONS = Path(__file__).parent / "migrations"
UPGRADE_LOCK = 7_302_611  # PostgreSQL advisory lock held while migrating
SQLITE_BUSY_SECONDS = write_lock.THREAD_WAIT_SECONDS
CONNECT_SECONDS = 5  # for a PostgreSQL server to answer a new connection
# for one of the process's pooled connections while every one is in use (requests holding them
# while they wait for a lock, say): then the request is told the database is busy (SQLAlchemy's
# default, named here so that the answer can say it)
POOL_WAIT_SECONDS = 30
# connections each process's pool keeps, and opens beyond them at most, by database
POOLS = {"sqlite": (5, 10), "postgresql": (10, 20)}


class DatabaseProblem(LindungError):
    """LINDUNG_DATABASE_URL names a database this installation cannot use."""


class NoDatabase(DatabaseProblem):
    """LINDUNG_DATABASE_URL names no database of Lindung's: a SQLite file not made yet, or a
    database without Lindung's tables."""


def connect(url: str, *, serving: bool = False) -> Engine:
    """An engine for `url`; a SQLite file's folder is created.

    A serving engine leaves SQLite's checkpoints to `WalCheckpoints` (a checkpoint inside a
    commit held a desk up 30 ms) and does not ping PostgreSQL before each use (a round trip per
    group of screenings): its callers run again once on a lost connection (`once_more_if_lost`).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseProblem(
            "not a database URL (sqlite:///FILE or postgresql+psycopg://...)"
        ) from None
    if parsed.get_backend_name() != "sqlite":
        # a server that does not answer (its host gone, packets dropped) is given up on after
        # CONNECT_SECONDS, not the system's TCP time-out of minutes: a server process connects
        # on its event loop, which nothing else is answered meanwhile (a URL may set its own)
        timeout = {} if "connect_timeout" in parsed.query else {"connect_timeout": CONNECT_SECONDS}
        try:
            return create_engine(
                url,
                pool_size=POOLS["postgresql"][0],
                max_overflow=POOLS["postgresql"][1],
                pool_pre_ping=not serving,
                pool_recycle=1800,
                pool_timeout=POOL_WAIT_SECONDS,
                connect_args=timeout,
                hide_parameters=True,  # an error's text, which is logged, shows no stored value
            )
        except ModuleNotFoundError as error:  # a driver this installation lacks
            raise DatabaseProblem(
                f"{parsed.drivername} is not a database this installation can use ({error})"
            ) from None
    pool: dict[str, Any] = {}
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # The connection last given back is handed out next. First in, first out, one thread's
        # transactions took turns on every connection the pool had opened (the checkpoints'
        # thread opens a second), each finding its page cache outdated by the other's commit:
        # 46 page reads a screening where 18 do. (A database in memory has a connection per
        # thread, and no such choice.)
        pool["pool_use_lifo"] = True
        pool["pool_timeout"] = POOL_WAIT_SECONDS
        pool["pool_size"], pool["max_overflow"] = POOLS["sqlite"]
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS},
        hide_parameters=True,
        **pool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        record.info[_BUSY_MS] = SQLITE_BUSY_SECONDS * 1000  # the driver's timeout, as connected
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event starts transactions
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        if serving:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # on the driver: SQLAlchemy's own execution would cost more than the statement
        options = connection.get_execution_options()
        raw: Any = connection.connection.driver_connection
        at_once = options.get(_AT_ONCE, False)
        busy_ms = 0 if at_once else SQLITE_BUSY_SECONDS * 1000
        info = connection.connection.info
        if info.get(_BUSY_MS) != busy_ms:  # set only when it changes (8 us): the event loop's
            raw.execute(f"PRAGMA busy_timeout = {busy_ms}")  # commits reuse one connection
            info[_BUSY_MS] = busy_ms
        try:
            raw.execute("BEGIN" if options.get(_READING) else "BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if at_once and write_lock.busy(error):
                raise write_lock.Busy(write_lock.Turn.of(engine)) from None
            raise

    return engine


def connections_at_most(engine: Engine) -> int | None:
    """How many connections `engine` opens at most (None: one for each thread, a SQLite
    database in memory)."""
    if not isinstance(engine.pool, QueuePool):
        return None
    size, overflow = POOLS[engine.dialect.name]
    return size + overflow


def sqlite_file(url: str) -> Path | None:
    """The SQLite file `url` names, if it names one."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


class WalCheckpoints:
    """Copies a SQLite file's write-ahead log into the database, in a thread of its own, every
    `seconds` (PASSIVE: it never waits for a writer, and holds one up only as said below).

    Under a steady stream of commits one pass never catches up: the commits made while it copies
    stay in the log, and the log starts again from its beginning only once every frame has been
    copied. It grew by 17 MB a second at 200 screenings a second, and a commit that had to grow
    the file waited up to 9 ms. So each round repeats the pass, each copying only what the last
    left, until nobody committed during a pass (or another process is checkpointing); the next
    writer then starts the log from the beginning, over the space it already has. Under more
    commits than that (a server at full load grew the log by 60 MB a second), a last pass holds
    the writers back for the little the other passes left.
    """

    def __init__(self, engine: Engine, seconds: float = 0.25, passes: int = 8) -> None:
        self.engine, self.seconds, self.passes = engine, seconds, passes
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lindung-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stopping.wait(self.seconds):
            try:
                self.round()
            except Exception as error:  # the next round tries again; commits go on meanwhile
                log.warning("SQLite checkpoint failed: %s", type(error).__name__)

    def round(self) -> bool:
        """Copy the log into the database until a pass finds nothing new; whether every frame
        was copied (False when another process was checkpointing, or a reader still needed
        frames). When commits outrun every pass, one more holds the writers back (they queue
        on the lock file, as for each other) while it copies the little the others left."""
        with self.engine.connect() as connection:  # outside any transaction:
            raw = connection.connection.driver_connection  # SQLAlchemy would begin one
            assert raw is not None
            before = _data_version(raw)
            for _ in range(self.passes):
                busy, frames, copied = self._pass(raw)
                if busy or copied < frames:
                    return False
                after = _data_version(raw)
                if after == before:  # nobody committed since the pass began
                    return True
                before = after
            with write_lock.held(self.engine):
                busy, frames, copied = self._pass(raw)
            return not busy and copied == frames

    def _pass(self, raw: Any) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, frames in the log, frames copied)."""
        busy, frames, copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(busy), int(frames), int(copied)


def _data_version(raw: Any) -> int:
    """A number that changes whenever another connection commits to the file."""
    return int(raw.execute("PRAGMA data_version").fetchone()[0])


def once_more_if_lost(work: Callable[[], T]) -> T:
    """`work`, run again once if the connection it used turned out to be lost (the database
    restarted): the pool then drops every connection it holds, and the second try gets a new
    one. Any other error, or a second loss, is raised."""
    try:
        return work()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
        log.warning("the database connection was lost; trying once more")
        return work()


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached: the connection was lost (the
    server restarted, or ended it) or could not be made (the server down, restarting or
    refusing the login), as opposed to an answer the database gave to a statement."""
    if not isinstance(error, DBAPIError):
        return False
    # raised by the driver outside any statement (a new connection refused), not an error the
    # server sent (those have a code: a serialization failure at COMMIT, say)
    return error.connection_invalidated or (
        isinstance(error, OperationalError)
        and error.statement is None
        and getattr(error.orig, "sqlstate", None) is None
    )


@contextmanager
def pipelined(connection: Connection, *, commit: bool = False) -> Iterator[None]:
    """On PostgreSQL, the statements of the block are sent without waiting for each answer
    (psycopg's pipeline mode): one round trip where there were one per statement. A statement
    whose rows are read waits for its answer as before. Elsewhere, nothing changes.

    With `commit`, the block's statements end the caller's transaction: on PostgreSQL the COMMIT
    rides in the same round trip (a failed statement skips it, and the transaction rolls back
    as before), so nothing may run in the transaction after the block. Elsewhere the caller's
    transaction commits as usual."""
    raw = connection.connection.driver_connection
    if not is_postgres(connection) or raw is None:
        yield
        return
    with driver_errors(connection), raw.pipeline():  # errors come when the pipeline ends
        yield
        if commit:
            # sent as a statement, not with psycopg's commit(), which waits for its answer
            # before the pipeline's end; SQLAlchemy's commit then finds nothing left to do
            raw.execute("COMMIT")


def is_postgres(connection: Connection | Engine) -> bool:
    return connection.dialect.name == "postgresql"


@contextmanager
def transaction(
    engine: Engine, *, at_once: bool = False, advisory: Sequence[int] = ()
) -> Iterator[Connection]:
    """One transaction: committed if the block ends normally, rolled back otherwise.

    `at_once`, for the event loop, which must not wait long: where another process holds a
    lock the block needs longer than `write_lock.LOOP_WAIT_SECONDS`, `write_lock.Busy` is
    raised with nothing written, instead of waiting for it. On SQLite that is the write lock (a
    command, a migration, a sqlite3 shell holds it; not at once, a thread waits for it up to
    SQLITE_BUSY_SECONDS). On PostgreSQL, any lock a statement waits for, above all the audit
    head and an escort's advisory lock, which another process's transaction holds (an admin's
    upload, a bulk); not at once, a thread waits as long as it takes, as before. The Busy's
    turn waits for the write lock, or on PostgreSQL for the audit head and the `advisory`
    locks the block takes (an escort's, in the order it takes them): Lindung's writers hold
    up one another only there, since decisions are written only by those holding the head."""
    with write_lock.held(engine, at_once), engine.connect() as connection:
        if at_once:
            connection.execution_options(**{_AT_ONCE: True})
        postgres_at_once = at_once and is_postgres(connection)
        try:
            with connection.begin():
                if postgres_at_once:
                    _begin_giving_up_on_locks(connection, write_lock.LOOP_WAIT_SECONDS)
                yield connection
        except DBAPIError as error:
            if postgres_at_once and write_lock.busy(error):  # rolled back: nothing was written
                raise write_lock.Busy(write_lock.Turn.of(engine, advisory)) from None
            raise


def _begin_giving_up_on_locks(connection: Connection, seconds: float) -> None:
    """Begin the transaction on PostgreSQL with its lock waits giving up after `seconds`
    (LockNotAvailable). One message to the server, as the BEGIN alone was: psycopg sends its
    BEGIN before the first statement and waits for the answer (in pipeline mode too), so a SET
    LOCAL would cost a round trip of its own. Begun here, the transaction is psycopg's as if it
    had begun it: it sends no BEGIN, and commits and rolls back as usual."""
    raw: Any = connection.connection.driver_connection
    psycopg = connection.dialect.loaded_dbapi  # not imported here: SQLite alone does without
    begin = f"BEGIN; SET LOCAL lock_timeout = {round(seconds * 1000)}"
    with driver_errors(connection, begin):
        result = raw.pgconn.exec_(begin.encode())
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)


_READING = "lindung_reading"
_AT_ONCE = "lindung_at_once"
_BUSY_MS = "lindung_busy_ms"  # a SQLite connection's busy timeout, as last set


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A transaction that only reads, rolled back at the end: it sees the database as of its
    first statement (on PostgreSQL, REPEATABLE READ), and on SQLite it begins with a plain
    BEGIN, taking no write lock, so that writers of every process go on meanwhile. While it
    lasts, the write-ahead log cannot start again from its beginning (`WalCheckpoints`), so a
    long one beside a busy server lets the log grow."""
    with engine.connect() as connection:
        if is_postgres(connection):
            connection.execution_options(isolation_level="REPEATABLE READ")
        connection.execution_options(**{_READING: True})
        with connection.begin() as began:
            yield connection
            began.rollback()


def upgrade(engine: Engine) -> None:
    """Run the migrations that have not run yet (safe when several processes start at once).
    A schema already up to date is only read: a command run beside a busy server neither waits
    for its writes nor holds them up."""
    config = _migrations()
    if _revisions(engine) == set(ScriptDirectory.from_config(config).get_heads()):
        return
    with engine.begin() as connection:
        if is_postgres(connection):
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def existing(url: str) -> Engine:
    """An engine for `url`'s database as it is, for a command that only reads: it is neither
    made (nor a SQLite file's folder) nor migrated. NoDatabase where there is none, or none with
    Lindung's tables; DatabaseProblem where its schema is another version's."""
    file = sqlite_file(url)
    if file is not None and not file.exists():
        raise NoDatabase(f"no database at {file.resolve()}")
    engine = connect(url)
    try:
        if not migrated(engine):
            raise NoDatabase("no Lindung tables in LINDUNG_DATABASE_URL's database")
    except BaseException:
        engine.dispose()
        raise
    return engine


def migrated(engine: Engine) -> bool:
    """Whether the database has this version's schema, read without changing anything: False
    where it has none yet, DatabaseProblem where it has another version's."""
    found = _revisions(engine)
    wanted = set(ScriptDirectory.from_config(_migrations()).get_heads())
    if not found or found == wanted:
        return bool(found)
    raise DatabaseProblem(
        f"its schema is at revision {', '.join(sorted(found))}, this version of Lindung reads "
        f"{', '.join(sorted(wanted))} (its `lindung serve` migrates an older one)"
    )


def _revisions(engine: Engine) -> set[str]:
    with reading(engine) as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def _migrations() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def ping(engine: Engine) -> None:
    """Raise if the database cannot be reached."""
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
