"""A group of decisions stored in one transaction that ends with its writes (on PostgreSQL the
COMMIT rides with them), opened by one statement that reads the components' generation and
takes an audit lane's head: all of the group or none of it, chained after the lane's other
writers, beside those of other lanes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from api.settings import Settings
from api.storage import activation, audit, database, decisions, tables
from api.storage.keys import Caller
from engine.case_input import parse_case
from engine.pseudonym import Pseudonymiser, pseudonymised_record
from engine.rule_pack import load_rule_pack
from engine.screening import Screener
from tests.factories import tourist

DESK = Caller("d" * 32, "desk", "desk")
AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    made = database.connect(settings.database_url, serving=True)
    database.upgrade(made)
    yield made
    made.dispose()


def screened(count: int) -> list[decisions.Screened]:
    pseudonymiser = Pseudonymiser("k" * 32)
    screener = Screener(load_rule_pack(Settings().rule_pack), pseudonymiser=pseudonymiser)
    made = []
    for n in range(count):
        case = parse_case(tourist(case_id=f"T-{n}"))
        record = pseudonymised_record(case, pseudonymiser)
        made.append(decisions.screened(screener.screen(case), record, DESK))
    return made


def stored(engine: Engine) -> tuple[int, int]:
    """(decisions, audit entries) stored."""
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(tables.decisions))
        entries = connection.execute(select(func.count()).select_from(tables.audit_log))
        return count.scalar_one(), entries.scalar_one()


def store_group(engine: Engine, group: list[decisions.Screened]) -> None:
    """As the service stores a group whose cases name no escort."""
    with database.transaction(engine) as connection:
        _seen, head = activation.generation_and_head(connection)
        decisions.store(connection, group, AT, head=head, commit=True)


def test_a_group_ending_its_transaction_is_stored_whole_and_chained(engine: Engine) -> None:
    store_group(engine, screened(3))
    store_group(engine, screened(2))
    assert stored(engine) == (5, 5)
    with engine.connect() as connection:
        result = audit.verify(connection)
    assert result.ok, result.problems


def test_a_group_whose_writes_fail_leaves_nothing_and_the_next_one_is_stored(
    engine: Engine,
) -> None:
    [first, second] = screened(2)
    with pytest.raises(IntegrityError):
        store_group(engine, [first, second, first])  # one decision twice
    assert stored(engine) == (0, 0)
    with engine.connect() as connection:
        head = audit.head(connection)
        assert (head.seq, head.hash) == (0, audit.GENESIS)
    store_group(engine, [first, second])  # the pool's connection is fine afterwards
    assert stored(engine) == (2, 2)


def test_the_generation_is_read_with_the_head(engine: Engine) -> None:
    with database.transaction(engine) as connection:
        seen, head = activation.generation_and_head(connection)
        assert seen == activation.generation(connection)
        assert head == audit.head(connection)


def head_waiting_at_most(engine: Engine, wait: str) -> audit.Head:
    """A lane's head, as another writer takes it, waiting at most `wait` for its lock."""
    with database.transaction(engine) as other:
        other.execute(text(f"SET LOCAL lock_timeout = '{wait}'"))
        return audit.head(other)


def lane_waiting_at_most(engine: Engine, lane: int, wait: str) -> None:
    """Lock `lane`'s head as another writer would, waiting at most `wait`."""
    head = tables.audit_head
    with database.transaction(engine) as other:
        other.execute(text(f"SET LOCAL lock_timeout = '{wait}'"))
        other.execute(select(head.c.seq).where(head.c.id == lane).with_for_update())


def test_writers_at_once_chain_side_by_side_in_lanes_of_their_own(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one lane: its writers take turns on the whole file")
    first, second = screened(2)
    with database.transaction(engine) as holder:
        _seen, held = activation.generation_and_head(holder)
        with database.transaction(engine) as other:
            other.execute(text("SET LOCAL lock_timeout = '200ms'"))  # it must not wait
            _seen, taken = activation.generation_and_head(other)
            assert taken.lane != held.lane
            decisions.store(other, [second], AT, head=taken, commit=True)
        with pytest.raises(OperationalError, match="lock timeout"):
            lane_waiting_at_most(engine, held.lane, "200ms")  # its own lane stays locked
        decisions.store(holder, [first], AT, head=held, commit=True)
    assert stored(engine) == (2, 2)
    with engine.connect() as connection:
        result = audit.verify(connection)
    assert result.ok, result.problems
    assert set(result.heads) == {held.lane, taken.lane}


def test_when_every_lane_is_held_a_writer_waits_for_one(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one lane: its writers take turns on the whole file")
    with engine.connect() as connection:
        lanes = connection.execute(select(func.count()).select_from(tables.audit_head))
        count = lanes.scalar_one()
    assert count > 1
    with ExitStack() as holding:
        held = {audit.head(holding.enter_context(database.transaction(engine))).lane}
        while len(held) < count:
            held.add(audit.head(holding.enter_context(database.transaction(engine))).lane)
        with pytest.raises(OperationalError, match="lock timeout"):
            head_waiting_at_most(engine, "200ms")  # for lane 1
    store_group(engine, screened(1))  # once they ended, the lanes are free again
    assert stored(engine) == (1, 1)


@pytest.mark.parametrize(
    ("lane", "seq", "newest", "lanes", "numbers"),
    [
        (1, 0, 0, 1, [1, 2, 3]),  # SQLite's one lane: one number after another
        (1, 7, 7, 1, [8, 9, 10]),
        (3, 0, 17, 8, [19, 27, 35]),  # above every lane's newest, in the lane's own residue
        (8, 0, 17, 8, [24, 32, 40]),
        (2, 42, 17, 8, [50, 58, 66]),  # above its own newest, read after the others' were
    ],
)
def test_a_lanes_entries_are_numbered_after_every_lanes_newest_and_apart_from_other_lanes(
    lane: int, seq: int, newest: int, lanes: int, numbers: list[int]
) -> None:
    assert audit.Head(lane, seq, audit.GENESIS, newest, lanes).numbers(3) == numbers
