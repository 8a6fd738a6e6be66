from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, update

from api.storage import audit, database, tables
from tests.api.calls import Headers, screen
from tests.api.storage.test_audit_body import migrate
from tests.factories import tourist


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
