"""Outcomes recorded by several officers at once: a decision is confirmed once, and a
confirmation corrected once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, func, inspect, select

from api.problems import Conflict
from api.storage import audit, database, outcomes, tables
from api.storage.keys import Caller
from tests.api.storage.test_audit_body import migrate
from tests.factories import tourist

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def confirm(
    engine: Engine, decision_id: str, caller: Caller, confirmed: str, corrects: str | None = None
) -> None:
    with database.transaction(engine) as connection:
        record(connection, decision_id, caller, confirmed, corrects)


def record(
    connection: Connection,
    decision_id: str,
    caller: Caller,
    confirmed: str,
    corrects: str | None = None,
    note: str | None = None,
) -> None:
    """A confirmation (or, with `corrects`, a correction) in the caller's transaction."""
    outcomes.record(
        connection,
        decision_id,
        action=None,
        confirmed=confirmed,
        note=note or ("checked again" if corrects else None),
        caller=caller,
        at=AT,
        corrects=corrects,
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
        record(first, decision_id, caller, "trafficking")
        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive(), "the second confirmation did not wait for the first"
    waiting.join(timeout=10)
    assert [str(error) for error in refused] == [
        "this decision's outcome was already confirmed as trafficking; to correct it, send"
        ' "corrects": "trafficking" with a note saying why'
    ]
    with engine.connect() as connection:
        o = tables.outcomes.c
        kept = connection.execute(
            select(o.confirmed, func.count()).group_by(o.confirmed).where(o.confirmed.is_not(None))
        ).all()
    assert [tuple(row) for row in kept] == [("trafficking", 1)]


def test_a_second_correction_waiting_on_the_first_is_refused(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    """Two officers correct one wrong confirmation at once, each to another outcome: the one
    that waited is refused (it corrects an outcome no longer in force), not applied over the
    first."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns from BEGIN: the second reads the first")
    answer = client.post("/v1/screenings", json=tourist(), headers=desk)
    decision_id = answer.json()["decision_id"]
    stored = client.get(f"/v1/decisions/{decision_id}", headers=desk).json()
    caller = Caller(stored["asked_by"]["key_id"], "desk", "desk")
    confirm(engine, decision_id, caller, "trafficking")
    refused: list[Conflict] = []

    def second() -> None:
        try:
            confirm(engine, decision_id, caller, "non_procedural", corrects="trafficking")
        except Conflict as error:
            refused.append(error)

    with database.transaction(engine) as first:
        checked = "the placement file checked out"
        record(first, decision_id, caller, "procedural", "trafficking", checked)
        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive(), "the second correction did not wait for the first"
    waiting.join(timeout=10)
    assert [(str(error), error.field) for error in refused] == [
        (
            "this decision's outcome is confirmed as procedural, not trafficking: reload it",
            "corrects",
        )
    ]
    with engine.connect() as connection:
        summary = outcomes.summary(connection, decision_id)
    assert summary["confirmed"] == "procedural"
    assert [c["confirmed"] for c in summary["confirmations"]] == ["trafficking", "procedural"]


def test_outcomes_confirmed_before_revision_0008_are_corrected_in_an_upgraded_database(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    decision_id = client.post("/v1/screenings", json=tourist(), headers=desk).json()["decision_id"]
    url = f"/v1/decisions/{decision_id}/outcome"
    assert client.post(url, json={"confirmed": "trafficking"}, headers=desk).status_code == 201
    migrate(engine, "0007", down=True)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("outcomes")}
    assert "corrects" not in columns

    migrate(engine, "head")
    with engine.connect() as connection:
        assert audit.verify(connection).ok
    correction = {"confirmed": "procedural", "corrects": "trafficking", "note": "wrong button"}
    assert client.post(url, json=correction, headers=desk).status_code == 201
    history = client.get(url, headers=desk).json()["confirmations"]
    assert [(c["confirmed"], c["corrects"]) for c in history] == [
        ("trafficking", None),
        ("procedural", "trafficking"),
    ]
    with engine.connect() as connection:
        assert audit.verify(connection).ok


def test_a_database_holding_corrections_is_not_downgraded_past_them(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    """The earlier version labels a case by its first confirmation: the corrected one."""
    decision_id = client.post("/v1/screenings", json=tourist(), headers=desk).json()["decision_id"]
    url = f"/v1/decisions/{decision_id}/outcome"
    assert client.post(url, json={"confirmed": "trafficking"}, headers=desk).status_code == 201
    correction = {"confirmed": "procedural", "corrects": "trafficking", "note": "wrong button"}
    assert client.post(url, json=correction, headers=desk).status_code == 201
    with pytest.raises(RuntimeError, match="1 outcome corrections are stored"):
        migrate(engine, "0007", down=True)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("outcomes")}
        assert "corrects" in columns
        assert audit.verify(connection).ok
    assert client.get(url, headers=desk).json()["confirmed"] == "procedural"
