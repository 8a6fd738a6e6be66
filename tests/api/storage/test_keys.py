from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, inspect, update

from api.problems import Conflict, Problem
from api.storage import audit, database, keys, tables
from tests.api.calls import Headers, screen
from tests.api.storage.test_audit_body import migrate
from tests.factories import tourist

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def test_keys_made_before_revision_0010_are_their_own_holders_and_can_be_rotated(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    """An upgraded database: each key made before sees what it saw, and one replaced after
    the upgrade hands its decisions on; the trail verifies."""
    made = screen(client, desk, tourist(case_id="T-before"))
    asked_by = client.get(f"/v1/decisions/{made['decision_id']}", headers=desk).json()
    migrate(engine, "0009", down=True)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("api_keys")}
    assert {"holder", "replaces"}.isdisjoint(columns)

    migrate(engine, "head")
    client.app.state.keys.forget()  # type: ignore[attr-defined]
    assert client.get(f"/v1/decisions/{made['decision_id']}", headers=desk).status_code == 200
    old_id = asked_by["asked_by"]["key_id"]
    rotated = client.post("/v1/keys", json={"role": "desk", "replaces": old_id}, headers=admin)
    assert rotated.status_code == 201, rotated.text
    new = {"Authorization": f"Bearer {rotated.json()['key']}"}
    read = client.get(f"/v1/decisions/{made['decision_id']}", headers=new)
    assert read.status_code == 200, read.text
    with engine.connect() as connection:
        verified = audit.verify(connection)
    assert verified.ok, verified.problems


def test_a_name_stored_before_names_were_checked_still_counts_and_is_not_handed_on(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    """A live key named with a zero-width space before this release: a new key named as it
    looks is refused, and its replacement needs a name of its own."""
    made = client.post("/v1/keys", json={"role": "desk", "name": "Nunukan 1"}, headers=admin)
    old_id = made.json()["key_id"]
    keys = tables.api_keys.c
    with database.transaction(engine) as connection:
        connection.execute(
            update(tables.api_keys).where(keys.key_id == old_id).values(name="Nunukan\u200b 1")
        )
    twin = client.post("/v1/keys", json={"role": "desk", "name": "nunukan 1"}, headers=admin)
    assert (twin.status_code, twin.json()["field"]) == (409, "name"), twin.text
    rotated = client.post("/v1/keys", json={"role": "desk", "replaces": old_id}, headers=admin)
    assert (rotated.status_code, rotated.json()["field"]) == (422, "name"), rotated.text
    assert "U+200B ZERO WIDTH SPACE" in rotated.json()["detail"]
    named = {"role": "desk", "replaces": old_id, "name": "Nunukan 1"}
    assert client.post("/v1/keys", json=named, headers=admin).status_code == 201


@pytest.mark.parametrize("taken", ["name", "replaces"])
def test_two_admins_at_once_cannot_take_one_name_or_replace_one_key_twice(
    client: TestClient, admin: Headers, engine: Engine, taken: str
) -> None:
    """The second waits for the first (the audit head is locked from the checks to the
    commit), then sees its key and is refused."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers take turns from BEGIN: the second reads the first")
    made = client.post("/v1/keys", json={"role": "desk", "name": "Dumai 1"}, headers=admin)
    old_id = made.json()["key_id"]
    first, second = {
        "name": ({"name": "Batam 7"}, {"name": "BATAM 7"}),
        "replaces": ({"replaces": old_id}, {"replaces": old_id, "name": "Dumai 1 (new)"}),
    }[taken]
    refused: list[Problem] = []

    def other() -> None:
        try:
            with database.transaction(engine) as connection:
                create(connection, second)
        except Problem as error:
            refused.append(error)

    with database.transaction(engine) as connection:
        create(connection, first)
        waiting = threading.Thread(target=other)
        waiting.start()
        waiting.join(timeout=0.5)
        assert waiting.is_alive(), "the second admin did not wait for the first"
    waiting.join(timeout=10)
    assert [(type(error), error.field) for error in refused] == [(Conflict, taken)]


def create(connection: Connection, choice: dict[str, str]) -> None:
    keys.create(connection, "desk", choice.get("name"), AT, replaces=choice.get("replaces"))


def test_a_database_holding_rotated_keys_is_not_downgraded_past_them(
    client: TestClient, desk: Headers, admin: Headers, engine: Engine
) -> None:
    """The earlier version knows no holder: a rotated desk would lose its decisions."""
    made = screen(client, desk, tourist(case_id="T-rotated"))
    old_id = client.get(f"/v1/decisions/{made['decision_id']}", headers=desk).json()["asked_by"]
    rotated = client.post(
        "/v1/keys", json={"role": "desk", "replaces": old_id["key_id"]}, headers=admin
    )
    assert rotated.status_code == 201, rotated.text
    with pytest.raises(RuntimeError, match="1 keys replace others"):
        migrate(engine, "0009", down=True)
    with engine.connect() as connection:
        columns = {column["name"] for column in inspect(connection).get_columns("api_keys")}
    assert {"holder", "replaces"} <= columns
    new = {"Authorization": f"Bearer {rotated.json()['key']}"}
    assert client.get(f"/v1/decisions/{made['decision_id']}", headers=new).status_code == 200
