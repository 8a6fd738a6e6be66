from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from api.group_commit import GroupCommit
from api.service import Service
from api.settings import Settings
from api.storage import audit, database, tables
from api.storage.keys import Caller
from engine.case import Case
from engine.case_input import parse_case
from engine.decision import Decision
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
