"""Desks' screenings gathered into one transaction whenever the server is free (group commit).

Requests arrive faster than one transaction each can commit. The screenings that reached the
event loop together are screened as one frame and stored in one transaction, on the event
loop's own thread: while a group is being stored, the next requests wait in their sockets and
make the next group. Keeping this work on one thread matters as much as grouping it: a second
Python thread doing it would wait for the interpreter lock at every database call (up to 5 ms a
time), which is what made a desk's screening take 50 ms.

A request is answered only after its decisions are committed, so nothing is reported that is
not stored. When a group fails, its requests are tried again one at a time, so that a request
that cannot be stored fails alone; unless the failure is the whole process's (no database
connection came free or could be made, the components in use could not be built), which every
request waiting is then answered with at once, as each would have met it again.

Only a long wait for another process is left to a thread. Where another process holds a lock
the group needs for longer than another worker's commits take, a group does not wait for it on
the loop, which would hold up every request of the worker, /healthz included: the store says
Busy, with nothing stored, a thread waits for the lock (`write_lock.Turn`), and the requests
queue meanwhile. On SQLite that is the file's write lock (a command, a migration, a sqlite3
shell holds it: up to 30 s), which the thread then hands to the loop; on PostgreSQL the audit
head or an escort's advisory lock (another process's transaction holds it: an admin's upload, a
bulk), which the thread waits for and lets go, and the group takes again. Then the requests are
stored on the loop as before; a request that waited longer than `most_wait` gets 503, with
nothing stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.metrics import GROUP_CASES, GROUP_SECONDS
from api.problems import Unavailable
from api.storage.database import SQLITE_BUSY_SECONDS, unreachable
from api.storage.keys import Caller
from api.storage.write_lock import Busy, Turn
from engine.case import Case
from engine.decision import Decision

log = logging.getLogger("lindung.api")

MOST_CASES = 64  # in one group: a desk waits for its whole group
MOST_WAIT = float(SQLITE_BUSY_SECONDS)  # for another process's lock, as a thread waits
LOOP_BACKOFF, MOST_BACKOFF = 0.05, 1.0  # before a turn again, when Busy follows Busy


@dataclass(frozen=True)
class Request:
    cases: Sequence[Case]
    caller: Caller
    answer: asyncio.Future[list[Decision]]
    since: float  # time.monotonic()


# Screens and stores the cases of several callers in one transaction; their decisions, in order.
# Raises Busy, having stored nothing, where another process holds a lock it needs.
StoreGroup = Callable[[Sequence[tuple[Sequence[Case], Caller]]], list[list[Decision]]]


class GroupCommit:
    def __init__(
        self, store: StoreGroup, most_cases: int = MOST_CASES, most_wait: float = MOST_WAIT
    ) -> None:
        self._store = store
        self._most_cases = most_cases
        self._most_wait = most_wait
        self._waiting: list[Request] = []
        self._flush_due = False
        self._turn: asyncio.Task[None] | None = None  # the wait for another process's lock
        # Busy again and again with no group stored between: a lock no turn waits for (a
        # table another transaction locked) is tried again less and less often
        self._busy_in_a_row = 0

    async def screen(self, cases: Sequence[Case], caller: Caller) -> list[Decision]:
        """The decisions for `cases`, once they are stored with the other requests waiting."""
        loop = asyncio.get_running_loop()
        request = Request(cases, caller, loop.create_future(), time.monotonic())
        self._waiting.append(request)
        if not self._flush_due:
            # after the requests already under way on the loop, so that they join this group
            self._flush_due = True
            loop.call_soon(self._flush)
        return await request.answer

    def _flush(self) -> None:
        self._flush_due = False
        if self._turn is not None:  # the requests wait behind those waiting for the lock
            return
        waiting, self._waiting = self._waiting, []
        groups = self._groups(waiting)
        for number, group in enumerate(groups):
            try:
                self._commit(group)
            except _Unavailable as unavailable:  # the next groups would wait as long, each
                for request in (r for later in groups[number:] for r in later):
                    if not request.answer.done():
                        request.answer.set_exception(unavailable.error)
                return
            except Busy as busy:
                delay = min(MOST_BACKOFF, LOOP_BACKOFF * (2**self._busy_in_a_row - 1))
                if busy.turn.taken is not None:  # SQLite: a thread holds the lock file for it
                    delay = 0.0
                self._busy_in_a_row += 1
                # this group and the next wait for the lock, ahead of those that come meanwhile
                # (a request already answered is left out when they are grouped again)
                self._waiting = [r for later in groups[number:] for r in later] + self._waiting
                self._turn = asyncio.get_running_loop().create_task(
                    self._wait_for(busy.turn, delay)
                )
                return

    async def _wait_for(self, turn: Turn, delay: float = 0.0) -> None:
        """Wait in a thread for the lock another process holds, answering 503 to the requests
        that wait for it longer than `most_wait`; then store the others, on the loop."""
        try:
            if delay:
                await asyncio.sleep(delay)
            while True:
                taken = _in_thread(turn)
                try:
                    while not taken.done():
                        self._give_up_on_overdue()
                        oldest = min((r.since for r in self._waiting), default=time.monotonic())
                        timeout = max(0.0, oldest + self._most_wait - time.monotonic())
                        await asyncio.wait([taken], timeout=timeout)
                except asyncio.CancelledError:  # the server stops: a turn that comes is given back
                    if not taken.cancel() and taken.exception() is None:
                        turn.give_back()
                    raise
                error = taken.exception()
                if error is None:
                    break
                if not isinstance(error, Busy):  # the database failed: as a store would have
                    self._fail_all(error)
                    return
                self._give_up_on_overdue()  # SQLite's own wait ran out: again, for the others
                if not self._waiting:
                    return
        finally:
            self._turn = None
        try:
            self._give_up_on_overdue()
            self._flush()  # the first group's transaction finds the lock held for it
        finally:
            # if none began (or, Busy again, a new wait was set, whose thread starts after this)
            turn.give_back()

    def _give_up_on_overdue(self) -> None:
        now = time.monotonic()
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            if request.answer.done():
                continue
            if now - request.since >= self._most_wait:
                request.answer.set_exception(
                    Unavailable(
                        "the database is busy: another process held a lock this screening "
                        f"needs for the {now - request.since:.0f} s it waited; nothing was stored, "
                        "send the case again",
                        "database",
                    )
                )
            else:
                self._waiting.append(request)

    def _fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, []
        for request in waiting:
            if not request.answer.done():
                request.answer.set_exception(error)

    def _groups(self, waiting: list[Request]) -> list[list[Request]]:
        groups: list[list[Request]] = []
        cases = 0  # in the last group
        for request in waiting:
            if request.answer.done():  # its client went away: nothing to store
                continue
            if groups and cases + len(request.cases) <= self._most_cases:
                groups[-1].append(request)
                cases += len(request.cases)
            else:
                groups.append([request])
                cases = len(request.cases)
        return groups

    def _commit(self, group: list[Request]) -> None:
        """Store `group`; Busy (its requests not answered) where another process holds the
        lock."""
        started = time.perf_counter()
        try:
            answers = self._store([(request.cases, request.caller) for request in group])
        except Busy:
            raise
        except Exception as error:
            if isinstance(error, PoolTimeout | Unavailable) or unreachable(error):
                # not this group's fault: tried again one by one, each request would wait on
                # the loop as long as this one did (up to POOL_WAIT_SECONDS or CONNECT_SECONDS),
                # or build the components in use again (a pack or registry that cannot be read)
                raise _Unavailable(error) from error
            if len(group) == 1:
                group[0].answer.set_exception(error)
                return
            log.warning(
                "a group of %d requests failed (%s); storing them one by one",
                len(group),
                type(error).__name__,
            )
            for request in group:
                self._commit([request])
            return
        self._busy_in_a_row = 0
        GROUP_SECONDS.observe(time.perf_counter() - started)
        GROUP_CASES.observe(sum(len(request.cases) for request in group))
        for request, decisions in zip(group, answers, strict=True):
            if not request.answer.done():
                request.answer.set_result(decisions)


class _Unavailable(Exception):
    """A group failed for reasons of the whole process, not of its requests: no connection came
    free, none could be made, or the components in use could not be built."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _in_thread(turn: Turn) -> asyncio.Future[None]:
    """The end of `turn.wait`, in a thread of its own: a daemon, which a lock that never comes
    does not keep from exiting (an executor's threads are waited for). A turn that came when
    nobody waits for it any more is given back."""
    loop = asyncio.get_running_loop()
    taken: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if taken.cancelled():
            if error is None:
                turn.give_back()
        elif error is not None:
            taken.set_exception(error)
        else:
            taken.set_result(None)

    def run() -> None:
        try:
            turn.wait()
        except BaseException as error:
            outcome: BaseException | None = error
        else:
            outcome = None
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop has closed
            if outcome is None:
                turn.give_back()

    threading.Thread(target=run, name="lindung-write-turn", daemon=True).start()
    return taken
