"""Outcomes recorded by several officers at once: a decision is confirmed once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from api.problems import Conflict
from api.storage import database, outcomes, tables
from api.storage.keys import Caller
from tests.factories import tourist

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def confirm(engine: Engine, decision_id: str, caller: Caller, confirmed: str) -> None:
    with database.transaction(engine) as connection:
        outcomes.record(
            connection,
            decision_id,
            action=None,
            confirmed=confirmed,
            note=None,
            caller=caller,
            at=AT,
        )


def test_a_second_confirmation_waiting_on_the_first_is_refused(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns from BEGIN: the second reads the first")
    answer = client.post("/v1/screenings", json=tourist(), headers=desk)
    decision_id = answer.json()["decision_id"]
    stored = client.get(f"/v1/decisions/{decision_id}", headers=desk).json()
    caller = Caller(stored["asked_by"]["key_id"], "desk", "desk")
    refused: list[Exception] = []

    def second() -> None:
        try:
            confirm(engine, decision_id, caller, "procedural")
        except Conflict as error:
            refused.append(error)

    with database.transaction(engine) as first:
        outcomes.record(
            first,
            decision_id,
            action=None,
            confirmed="trafficking",
            note=None,
            caller=caller,
            at=AT,
        )
        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive(), "the second confirmation did not wait for the first"
    waiting.join(timeout=10)
    assert [str(error) for error in refused] == [
        "this decision's outcome was already confirmed as trafficking"
    ]
    with engine.connect() as connection:
        o = tables.outcomes.c
        kept = connection.execute(
            select(o.confirmed, func.count()).group_by(o.confirmed).where(o.confirmed.is_not(None))
        ).all()
    assert [tuple(row) for row in kept] == [("trafficking", 1)]
