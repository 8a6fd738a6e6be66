"""A group of decisions stored in one transaction that ends with its writes (on PostgreSQL the
COMMIT rides with them), opened by one statement that reads the components' generation and
locks the audit head: all of the group or none of it, chained after every other writer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from api.settings import Settings
from api.storage import activation, audit, database, decisions, tables
from api.storage.keys import Caller
from engine.case_input import parse_case
from engine.pseudonym import Pseudonymiser, pseudonymised_record
from engine.rule_pack import load_rule_pack
from engine.screening import Screener
from tests.api.calls import screen
from tests.api.storage.test_audit_body import migrate
from tests.factories import tourist

DESK = Caller("d" * 32, "desk", "desk")
AT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    made = database.connect(settings.database_url, serving=True)
    database.upgrade(made)
    yield made
    made.dispose()


def screened(count: int, first: int = 0) -> list[decisions.Screened]:
    pseudonymiser = Pseudonymiser("k" * 32)
    screener = Screener(load_rule_pack(Settings().rule_pack), pseudonymiser=pseudonymiser)
    made = []
    for n in range(first, first + count):
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
    store_group(engine, screened(2, first=3))
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
        assert audit.head(connection) == (0, audit.GENESIS)
    store_group(engine, [first, second])  # the pool's connection is fine afterwards
    assert stored(engine) == (2, 2)


def test_the_generation_is_read_with_the_head(engine: Engine) -> None:
    with database.transaction(engine) as connection:
        seen, head = activation.generation_and_head(connection)
        assert seen == activation.generation(connection)
        assert head == audit.head(connection)


def head_waiting_at_most(engine: Engine, wait: str) -> audit.Head:
    """The head, as another writer reads it, waiting at most `wait` for its lock."""
    with database.transaction(engine) as other:
        other.execute(text(f"SET LOCAL lock_timeout = '{wait}'"))
        return audit.head(other)


def test_the_head_read_with_the_generation_is_locked_until_the_group_is_stored(
    engine: Engine,
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's write lock is the whole file's, taken at BEGIN IMMEDIATE")
    with database.transaction(engine) as holder:
        activation.generation_and_head(holder)
        with pytest.raises(OperationalError, match="lock timeout"):
            head_waiting_at_most(engine, "200ms")
    store_group(engine, screened(1))  # once the holder ended, the head is free again
    assert stored(engine) == (1, 1)


def test_a_case_stored_twice_before_revision_0011_answers_a_retry_with_the_first_decision(
    client: TestClient, make_key: Any
) -> None:
    """Before 0011 a retry stored the case again: the upgrade gives the first of the copies its
    desk, leaves the later ones without, and a new retry gets the first decision."""
    desk = make_key("desk")
    first = screen(client, desk, tourist(case_id="T-7"))
    copy = screen(client, make_key("desk"), tourist(case_id="T-7"))
    served = client.app.state.service.engine  # type: ignore[attr-defined]
    migrate(served, "0010", down=True)
    d = tables.decisions.c
    with database.transaction(served) as connection:  # as if the first desk had sent it twice
        first_key = connection.execute(
            select(d.key_id).where(d.decision_id == first["decision_id"])
        ).scalar_one()
        connection.execute(
            update(tables.decisions)
            .where(d.decision_id == copy["decision_id"])
            .values(key_id=first_key)
        )
    migrate(served, "head")
    with served.connect() as connection:
        holders = dict(connection.execute(select(d.decision_id, d.holder)).all())
    assert holders == {first["decision_id"]: first_key, copy["decision_id"]: None}
    assert screen(client, desk, tourist(case_id="T-7"))["decision_id"] == first["decision_id"]
    assert stored(served)[0] == 2
