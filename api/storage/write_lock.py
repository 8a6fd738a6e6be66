"""The lock file next to a SQLite file, on which writers of every process queue, and the event
loop's way of waiting for it and for the database's own locks without stopping.

A thread may wait for a lock as long as it takes. The event loop may not: while it waits, every
request of its worker waits, /healthz included. So it waits on the loop only as long as another
worker's commits take (`LOOP_WAIT_SECONDS`); where another process holds the lock longer, it is
told `Busy`, with a `Turn` that waits for the lock in another thread. On SQLite that is the
write lock (held by a command, a migration, a sqlite3 shell), which the turn then hands to the
loop. On PostgreSQL it is the audit head or an escort's advisory lock (held by another process's
transaction: an admin's upload, a bulk screening its escorts' cases inside the lock): the turn
takes them in a transaction of its own, as the loop's would, and lets them go, and the loop
takes them again.
"""

from __future__ import annotations

import fcntl
import os
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DBAPIError

from api.storage import tables
from engine.errors import LindungError

# The longest the event loop waits for a lock: other workers' commits (a few ms each) are
# waited for as before, a command's transaction is not.
LOOP_WAIT_SECONDS = 0.05
# The longest a thread waits for one (SQLite's busy timeout, a turn's wait on PostgreSQL): then
# it is told Busy too.
THREAD_WAIT_SECONDS = 30


class Busy(LindungError):
    """Another process holds a lock the transaction needs (SQLite's write lock; on PostgreSQL
    the audit head, an escort's), and the transaction was begun `at_once`: nothing was
    written. `turn` waits for the lock, in another thread."""

    def __init__(self, turn: Turn) -> None:
        super().__init__("another process holds a lock of the database")
        self.turn = turn


@contextmanager
def held(engine: Engine, at_once: bool = False) -> Iterator[None]:
    """On a SQLite file, writers of every process queue on a lock file next to it: SQLite's own
    wait for its write lock sleeps and retries (up to 100 ms a try), which a desk would notice;
    the kernel wakes the next writer as soon as the lock is free. Elsewhere, nothing.

    `at_once`: Busy where the lock is not had within LOOP_WAIT_SECONDS (at once where the
    thread's `Turn` came: the lock is held for it already)."""
    lock = _lock_file_of(engine)
    if lock is None:
        yield
        return
    if not at_once:
        fcntl.flock(lock, fcntl.LOCK_EX)
    else:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # flock cannot be told to give up: a thread waits on this thread's file instead
            taken = _taker(lock).take()
            try:
                taken.result(LOOP_WAIT_SECONDS)
            except TimeoutError:
                raise Busy(Turn(engine, lock, taken)) from None
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


class Turn:
    """The locks the event loop's transaction found taken, waited for in another thread on its
    behalf.

    On SQLite, the write lock: once `wait` has returned, the lock file is held for the loop's
    next transaction, which finds it taken already (and lets it go at its end), and SQLite's
    own lock was free a moment before. `give_back` lets it go if no transaction came.

    On PostgreSQL, a row lock cannot be handed to another connection: `wait` takes the
    `advisory` locks (an escort's, in the order the loop's transaction takes them) and the
    audit head in a transaction of its own, waiting for each as long as another process holds
    it (up to THREAD_WAIT_SECONDS), then lets them go; the loop's next transaction takes them
    again (waiting, at most, for another worker's commit). `give_back` has nothing to give
    back."""

    def __init__(
        self,
        engine: Engine,
        lock: int | None,
        taken: Future[None] | None,
        advisory: Sequence[int] = (),
    ) -> None:
        self.engine, self.lock, self.taken, self.advisory = engine, lock, taken, advisory

    @classmethod
    def of(cls, engine: Engine, advisory: Sequence[int] = ()) -> Turn:
        """The calling thread's turn, not waited for yet."""
        return cls(engine, _lock_file_of(engine), None, advisory)

    def wait(self) -> None:
        """Wait until the locks are free, or on SQLite this turn's (in a thread: not on the
        event loop); Busy where the wait runs out (THREAD_WAIT_SECONDS)."""
        if self.taken is not None:  # a thread waits for the lock file already
            self.taken.result()
        elif self.lock is not None:  # this thread's lock file: a lock is held by a file
            fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            # on SQLite, BEGIN IMMEDIATE takes the write lock, waiting up to its busy timeout
            with self.engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    self._take_postgres_locks(connection)
        except BaseException as error:
            self.taken = None  # a wait again takes the lock file anew
            self.give_back()
            if busy(error):
                raise Busy(self) from None
            raise

    def _take_postgres_locks(self, connection: Connection) -> None:
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {round(THREAD_WAIT_SECONDS * 1000)}")
        for key in self.advisory:
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        head = tables.audit_head.c
        connection.execute(select(head.seq).where(head.id == 1).with_for_update())

    def give_back(self) -> None:
        if self.lock is not None:
            fcntl.flock(self.lock, fcntl.LOCK_UN)


def busy(error: BaseException) -> bool:
    """Whether `error` says another connection held the lock it waited for until the wait ran
    out: SQLite's busy, PostgreSQL's lock timeout."""
    found = error.orig if isinstance(error, DBAPIError) else error
    if getattr(found, "sqlstate", None) == _LOCK_NOT_AVAILABLE:  # psycopg's errors have one
        return True
    return isinstance(found, sqlite3.OperationalError) and (
        found.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY
    )


_LOCK_NOT_AVAILABLE = "55P03"


class _Taker:
    """A thread that takes a lock file for the thread whose file it is, which may stop waiting
    for it meanwhile (one thread per file, kept: starting one costs up to half a millisecond).
    A daemon: a lock that never comes does not keep the process from exiting."""

    def __init__(self, lock: int) -> None:
        self.lock = lock
        self.asked: queue.SimpleQueue[Future[None]] = queue.SimpleQueue()

    def take(self) -> Future[None]:
        taken: Future[None] = Future()
        self.asked.put(taken)
        return taken

    def run(self) -> None:
        while True:
            taken = self.asked.get()
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX)
            except OSError as error:
                taken.set_exception(error)
            else:
                taken.set_result(None)


_takers: dict[int, _Taker] = {}
_takers_started = threading.Lock()


def _taker(lock: int) -> _Taker:
    with _takers_started:
        taker = _takers.get(lock)
        if taker is None:
            taker = _takers[lock] = _Taker(lock)
            threading.Thread(target=taker.run, name="lindung-lock-file", daemon=True).start()
    return taker


def _lock_file_of(engine: Engine) -> int | None:
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        return None
    return _lock_file(f"{path}.lock")


_lock_files = threading.local()


def _lock_file(path: str) -> int:
    """The lock file, opened once per thread (a lock is held by an open file, so threads of one
    process exclude each other only with files of their own)."""
    opened: dict[str, int] | None = getattr(_lock_files, "opened", None)
    if opened is None:
        opened = _lock_files.opened = {}
    descriptor = opened.get(path)
    if descriptor is None:
        descriptor = opened[path] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    return descriptor
