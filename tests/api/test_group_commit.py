from __future__ import annotations

import asyncio
import fcntl
import os
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.group_commit import GroupCommit
from api.problems import Unavailable
from api.service import Service
from api.settings import Settings
from api.storage import audit, database, tables
from api.storage.case_history import escort_lock
from api.storage.keys import Caller
from api.storage.write_lock import Busy
from engine.case import Case
from engine.case_input import parse_case
from engine.decision import Decision
from tests.api.storage.test_write_lock import HEAD, held_in_another_transaction
from tests.factories import tourist

DESK = Caller("d" * 32, "desk", "desk")
Asked = Sequence[tuple[Sequence[Case], Caller]]


class Store:
    """A store that records each group it is given and refuses cases named "refused"."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []

    def __call__(self, asked: Asked) -> list[list[Decision]]:
        ids = [case.case_id for cases, _caller in asked for case in cases]
        self.groups.append(ids)
        if "refused" in ids:
            raise RuntimeError("the database refused the group")
        # the case ids stand in for decisions: what a store returns is passed on as it is
        return [[case.case_id for case in cases] for cases, _caller in asked]  # type: ignore[misc]


class Turn:
    """A wait for the write lock another process holds, which ends when the test frees it."""

    def __init__(self, runs_out: int = 0) -> None:
        self.taken = None  # no thread takes a lock file for it: a lock the store found taken
        self.free = threading.Event()
        self.given_back = 0
        self.runs_out = runs_out  # waits that end Busy, as SQLite's own wait runs out
        self.waits = 0

    def wait(self) -> None:
        self.waits += 1
        if self.runs_out:
            self.runs_out -= 1
            raise Busy(self)  # type: ignore[arg-type]
        assert self.free.wait(10), "the lock was never freed"

    def give_back(self) -> None:
        self.given_back += 1


class BusyStore(Store):
    """A store that finds the write lock taken (Busy, nothing stored) until `turn` is freed."""

    def __init__(self, turn: Turn) -> None:
        super().__init__()
        self.turn = turn

    def __call__(self, asked: Asked) -> list[list[Decision]]:
        if not self.turn.free.is_set():
            self.groups.append([case.case_id for cases, _caller in asked for case in cases])
            raise Busy(self.turn)  # type: ignore[arg-type]
        return super().__call__(asked)


def cases(*ids: str) -> list[Case]:
    return [parse_case(tourist(case_id=case_id)) for case_id in ids]


async def screen_all(group: GroupCommit, *ids: str) -> list[Any]:
    return await asyncio.gather(
        *(group.screen([case], DESK) for case in cases(*ids)), return_exceptions=True
    )


def test_requests_waiting_together_share_one_group() -> None:
    store = Store()
    answers = asyncio.run(screen_all(GroupCommit(store), "a", "b", "c"))
    assert answers == [["a"], ["b"], ["c"]]
    assert store.groups == [["a", "b", "c"]]


def test_a_group_never_has_more_cases_than_its_limit_unless_one_request_does() -> None:
    store = Store()
    group = GroupCommit(store, most_cases=2)

    async def run() -> None:
        await asyncio.gather(
            group.screen(cases("a"), DESK),
            group.screen(cases("b", "c", "d"), DESK),  # alone: more than the limit by itself
            group.screen(cases("e"), DESK),
            group.screen(cases("f"), DESK),
        )

    asyncio.run(run())
    assert store.groups == [["a"], ["b", "c", "d"], ["e", "f"]]


def test_a_request_that_cannot_be_stored_fails_alone() -> None:
    store = Store()
    answers = asyncio.run(screen_all(GroupCommit(store), "a", "refused", "c"))
    assert answers[0] == ["a"]
    assert isinstance(answers[1], RuntimeError)
    assert answers[2] == ["c"]
    # the group failed whole, then each request was stored on its own
    assert store.groups == [["a", "refused", "c"], ["a"], ["refused"], ["c"]]


class UnavailableStore(Store):
    """A store that fails every group for a reason of the whole process."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def __call__(self, asked: Asked) -> list[list[Decision]]:
        self.groups.append([case.case_id for cases, _caller in asked for case in cases])
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        PoolTimeout("QueuePool limit of size 5 overflow 10 reached"),
        OperationalError(None, None, Exception("connection refused")),
        Unavailable("the registry file changed since it was put in use", "registry"),
    ],
    ids=["no-connection-free", "database-unreachable", "components-unbuildable"],
)
def test_a_failure_of_the_whole_process_fails_every_waiting_group_after_one_try(
    error: Exception,
) -> None:
    """Each try waited for a connection on the loop, or built the components again there: the
    requests are not tried one by one, nor the next groups, holding up the whole server."""
    store = UnavailableStore(error)
    answers = asyncio.run(screen_all(GroupCommit(store, most_cases=2), "a", "b", "c", "d"))
    assert all(answer is error for answer in answers), answers
    assert store.groups == [["a", "b"]]


def test_a_request_whose_client_left_is_not_stored() -> None:
    store = Store()
    group = GroupCommit(store)

    async def run() -> list[Any]:
        leaving = asyncio.ensure_future(group.screen(cases("gone"), DESK))
        staying = asyncio.ensure_future(group.screen(cases("here"), DESK))
        await asyncio.sleep(0)  # both are waiting for the group now
        leaving.cancel()
        return await asyncio.gather(leaving, staying, return_exceptions=True)

    gone, here = asyncio.run(run())
    assert isinstance(gone, asyncio.CancelledError)
    assert here == ["here"]
    assert store.groups == [["here"]]


async def heartbeat(stop: asyncio.Event) -> float:
    """The longest the loop was kept from running this, in seconds, until `stop`."""
    longest, last = 0.0, time.monotonic()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = time.monotonic()
        longest, last = max(longest, now - last), now
    return longest


def test_a_group_that_finds_the_lock_taken_waits_for_it_off_the_loop() -> None:
    turn = Turn()
    store = BusyStore(turn)
    group = GroupCommit(store)

    async def run() -> tuple[list[Any], float]:
        stop = asyncio.Event()
        beating = asyncio.ensure_future(heartbeat(stop))
        first = asyncio.ensure_future(screen_all(group, "a", "b"))
        await asyncio.sleep(1)  # the lock is still taken: "c" queues behind "a" and "b"
        later = asyncio.ensure_future(screen_all(group, "c"))
        await asyncio.sleep(1)
        assert not first.done()
        assert not later.done()
        turn.free.set()
        answers = await first + await later
        stop.set()
        return answers, await beating

    answers, longest = asyncio.run(run())
    assert answers == [["a"], ["b"], ["c"]]
    assert store.groups == [["a", "b"], ["a", "b", "c"]], "tried at once, then once the lock came"
    assert turn.given_back == 1
    assert longest < 0.5, f"the loop was held up {longest:.2f} s (the lock was held 2 s)"


def test_a_request_that_waits_too_long_for_the_lock_gets_503_and_is_not_stored() -> None:
    turn = Turn()
    store = BusyStore(turn)
    group = GroupCommit(store, most_wait=0.5)

    async def run() -> list[Any]:
        early = asyncio.ensure_future(screen_all(group, "early"))
        await asyncio.sleep(0.3)
        late = asyncio.ensure_future(screen_all(group, "late"))
        await asyncio.sleep(0.4)  # "early" has waited 0.7 s, "late" 0.4 s
        turn.free.set()
        return await early + await late

    [early, late] = asyncio.run(run())
    assert isinstance(early, Unavailable)
    assert early.status == 503
    assert early.field == "database"
    assert "the database is busy" in early.detail
    assert late == ["late"]
    assert store.groups == [["early"], ["late"]]


def hold_lock(database_file: str, lock_file: bool, seconds: float) -> None:
    """SQLite's write lock held for `seconds` by another connection, in a thread, as a sqlite3
    shell's BEGIN IMMEDIATE holds it; with `lock_file`, Lindung's lock file too, as a command
    of another process holds it (a file opened apart is locked apart)."""
    held = threading.Event()

    def hold() -> None:
        descriptor = os.open(f"{database_file}.lock", os.O_RDWR | os.O_CREAT)
        if lock_file:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        other = sqlite3.connect(database_file, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        other.execute("ROLLBACK")
        other.close()
        os.close(descriptor)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(10)


def test_a_wait_for_the_lock_that_runs_out_begins_again_for_the_requests_still_waiting() -> None:
    turn = Turn(runs_out=1)
    store = BusyStore(turn)

    async def run() -> list[Any]:
        waiting = asyncio.ensure_future(screen_all(GroupCommit(store), "a"))
        await asyncio.sleep(0.3)
        turn.free.set()
        return await waiting

    assert asyncio.run(run()) == [["a"]]
    assert turn.waits == 2
    assert store.groups == [["a"], ["a"]]


@pytest.fixture
def service(settings: Settings) -> Any:
    service = Service(settings, database.connect(settings.database_url, serving=True))
    service.start()
    yield service
    service.stop()


def test_desks_screening_at_once_are_stored_in_one_transaction_and_chained(
    service: Service,
) -> None:
    records = [tourist(case_id=f"T-{n}") for n in range(12)]

    async def run() -> list[list[Decision]]:
        return await asyncio.gather(
            *(service.screen_together([parse_case(record)], DESK) for record in records)
        )

    made = asyncio.run(run())
    assert [decisions[0].case_id for decisions in made] == [r["case_id"] for r in records]
    engine: Engine = service.engine
    with engine.connect() as connection:
        times = connection.execute(
            select(func.count(func.distinct(tables.audit_log.c.recorded_at))).where(
                tables.audit_log.c.kind == "decision"
            )
        ).scalar_one()
        stored = connection.execute(select(func.count()).select_from(tables.decisions))
        assert stored.scalar_one() == 12
        assert times == 1, "one transaction records every entry of its group at one time"
        assert audit.verify(connection).ok


@pytest.mark.parametrize("lock_file", [False, True], ids=["sqlite3-shell", "lindung-command"])
def test_another_process_holding_the_lock_holds_up_only_the_screenings_waiting_for_it(
    service: Service, lock_file: bool
) -> None:
    file = service.engine.url.database
    if service.engine.dialect.name != "sqlite" or file is None:
        pytest.skip("a SQLite file's write lock")
    before = asyncio.run(service.screen_together([parse_case(tourist())], DESK))  # warm

    async def run() -> tuple[list[Decision], float, float]:
        stop = asyncio.Event()
        beating = asyncio.ensure_future(heartbeat(stop))
        hold_lock(file, lock_file, seconds=3)
        released = time.monotonic() + 3
        made = await service.screen_together([parse_case(tourist(case_id="held-up"))], DESK)
        late = time.monotonic() - released
        stop.set()
        return made, await beating, late

    made, longest, late = asyncio.run(run())
    assert made[0].case_id == "held-up"
    assert before[0].case_id != "held-up"
    assert longest < 1.5, f"the loop was held up {longest:.2f} s (the lock was held 3 s)"
    assert -0.5 < late < 2, f"stored {late:.2f} s after the lock came free"
    with service.engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(tables.decisions)).scalar() == 2
        assert audit.verify(connection).ok


# Its lock is the whole server's, not a schema's: each test process has an escort of its own.
ESCORT_REF = f"+62 812-{random.randrange(10_000):04}-{random.randrange(10_000):04}"


def escort_lock_of(service: Service) -> str:
    escort = service.pseudonymiser.token("escort_ref", ESCORT_REF)
    return f"SELECT pg_advisory_xact_lock({escort_lock(escort)})"


def decisions_stored(engine: Engine) -> int:
    with engine.connect() as connection:
        assert audit.verify(connection).ok
        return int(connection.execute(select(func.count()).select_from(tables.decisions)).scalar())


def counted_stores(service: Service) -> list[float]:
    """The times `service`'s group commit tries to store a group, from now on (warmed first)."""
    asyncio.run(service.screen_together([parse_case(tourist())], DESK))
    tries: list[float] = []

    def store(asked: Asked) -> list[list[Decision]]:
        tries.append(time.monotonic())
        return service._store_at_once(asked)

    service.group = GroupCommit(store)
    return tries


@pytest.mark.parametrize("held", ["audit-head", "escort"])
def test_another_transaction_holding_a_lock_holds_up_only_the_screenings_waiting_for_it(
    service: Service, held: str
) -> None:
    if service.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's row and advisory locks")
    tries = counted_stores(service)
    if held == "audit-head":  # a case without an escort waits for the head first
        lock, case = HEAD, parse_case(tourist(case_id="held-up"))
    else:
        lock = escort_lock_of(service)
        case = parse_case(tourist(case_id="held-up", links={"escort_ref": ESCORT_REF}))

    async def run() -> tuple[list[Decision], float, float]:
        stop = asyncio.Event()
        beating = asyncio.ensure_future(heartbeat(stop))
        holding = held_in_another_transaction(service.engine, lock, seconds=3)
        released = time.monotonic() + 3
        made = await service.screen_together([case], DESK)
        late = time.monotonic() - released
        stop.set()
        longest = await beating
        holding.join()
        return made, longest, late

    made, longest, late = asyncio.run(run())
    assert made[0].case_id == "held-up"
    assert longest < 1.5, f"the loop was held up {longest:.2f} s (the lock was held 3 s)"
    assert -0.5 < late < 2, f"stored {late:.2f} s after the lock came free"
    assert len(tries) <= 3, f"tried {len(tries)} times: at once, then once the lock came"
    assert decisions_stored(service.engine) == 2


def test_a_screening_waiting_too_long_for_a_lock_another_transaction_holds_gets_503(
    service: Service,
) -> None:
    if service.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's row locks")
    service.group = GroupCommit(service._store_at_once, most_wait=1)

    async def run() -> tuple[Any, float, float]:
        stop = asyncio.Event()
        beating = asyncio.ensure_future(heartbeat(stop))
        holding = held_in_another_transaction(service.engine, HEAD, seconds=3)
        asked = time.monotonic()
        [answer] = await screen_all(service.group, "gives-up")
        waited = time.monotonic() - asked
        stop.set()
        longest = await beating
        holding.join()  # the turn's wait for the head ends with it
        return answer, waited, longest

    answer, waited, longest = asyncio.run(run())
    assert isinstance(answer, Unavailable)
    assert answer.status == 503
    assert answer.field == "database"
    assert waited < 2.5, f"answered after {waited:.2f} s: most_wait is 1 s, the lock was held 3 s"
    assert longest < 1.5, f"the loop was held up {longest:.2f} s (the lock was held 3 s)"
    assert decisions_stored(service.engine) == 0


def test_a_lock_no_turn_waits_for_is_not_tried_again_and_again_on_the_loop(
    service: Service,
) -> None:
    # a lock the turn does not take (a table another transaction locked: a migration, an
    # admin's psql) is free to the turn at once, and the group found it taken again
    if service.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's table locks")
    tries = counted_stores(service)
    lock = "LOCK TABLE decisions IN SHARE MODE"

    async def run() -> list[Decision]:
        holding = held_in_another_transaction(service.engine, lock, seconds=3)
        made = await service.screen_together([parse_case(tourist(case_id="held-up"))], DESK)
        holding.join()
        return made

    made = asyncio.run(run())
    assert made[0].case_id == "held-up"
    assert decisions_stored(service.engine) == 2
    assert len(tries) <= 10, f"tried {len(tries)} times in 3 s, each holding the loop 50 ms"
