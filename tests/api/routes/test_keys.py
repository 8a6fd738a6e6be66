from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.storage import audit, tables

Headers = dict[str, str]


def create(client: TestClient, admin: Headers, role: str = "desk", name: str | None = None) -> Any:
    """An admin's request for a key (named anew unless `name` says: live keys' names differ)."""
    name = f"Batam desk {uuid.uuid4().hex[:6]}" if name is None else name
    return client.post("/v1/keys", json={"role": role, "name": name}, headers=admin)


def bearer(secret: str) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


def everything_stored(engine: Engine) -> str:
    """Every value of the keys table and the audit log, as one text."""
    with engine.connect() as connection:
        values = [
            str(value)
            for table in (tables.api_keys, tables.audit_log, tables.audit_head)
            for row in connection.execute(select(table))
            for value in row
        ]
    return "\n".join(values)


def test_an_admin_creates_a_key_and_sees_its_secret_once(
    client: TestClient, admin: Headers
) -> None:
    answer = create(client, admin, "desk", "Batam desk 3")
    assert answer.status_code == 201
    made = answer.json()
    assert made["key"].startswith("lk_")
    assert len(made["key"]) > 30
    assert made["role"] == "desk"
    assert made["name"] == "Batam desk 3"
    assert made["key_id"]
    works = client.get("/v1/registry", headers=bearer(made["key"]))
    assert works.status_code == 200, "the new key works at once"
    again = create(client, admin, "desk", "Batam desk 4")
    assert again.json()["key"] != made["key"]

    listing = client.get("/v1/keys", headers=admin)
    assert listing.status_code == 200
    assert made["key"] not in listing.text
    assert again.json()["key"] not in listing.text
    listed = {key["key_id"]: key for key in listing.json()["keys"]}
    assert listed[made["key_id"]]["name"] == "Batam desk 3"
    assert listed[made["key_id"]]["role"] == "desk"
    assert listed[made["key_id"]]["revoked_at"] is None
    for key in listing.json()["keys"]:
        assert set(key) == {
            *("key_id", "name", "role", "created_at", "revoked_at", "holder", "replaces")
        }
        assert (key["holder"], key["replaces"]) == (key["key_id"], None), "each its own holder"


def test_the_secret_is_not_stored_anywhere_in_the_database(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    secrets = [
        create(client, admin, role, f"{role} key").json()["key"]
        for role in ("desk", "analyst", "admin")
    ]
    stored = everything_stored(engine)
    for secret in secrets:
        assert secret not in stored
        assert secret.removeprefix("lk_") not in stored
    with engine.connect() as connection:
        hashes = list(connection.execute(select(tables.api_keys.c.key_hash)).scalars())
    assert all(len(h) == 64 for h in hashes)


def test_a_revoked_key_is_refused_and_cannot_be_revoked_again(
    client: TestClient, admin: Headers
) -> None:
    made = create(client, admin, "desk").json()
    headers = bearer(made["key"])
    assert client.get("/v1/registry", headers=headers).status_code == 200
    revoked = client.delete(f"/v1/keys/{made['key_id']}", headers=admin)
    assert revoked.status_code == 200
    assert revoked.json() == {"key_id": made["key_id"], "revoked": True}
    refused = client.get("/v1/registry", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.json()["field"] == "Authorization"
    listed = {k["key_id"]: k for k in client.get("/v1/keys", headers=admin).json()["keys"]}
    assert listed[made["key_id"]]["revoked_at"] is not None
    again = client.delete(f"/v1/keys/{made['key_id']}", headers=admin)
    assert again.status_code == 404
    assert again.json()["field"] == "key_id"
    assert client.delete("/v1/keys/no-such-key", headers=admin).status_code == 404


def test_a_bad_role_or_name_is_422_naming_the_field(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    with engine.connect() as connection:
        before = len(connection.execute(select(tables.api_keys)).all())
    bad_role = create(client, admin, "superuser")
    assert bad_role.status_code == 422
    assert bad_role.json()["field"] == "role"
    no_role = client.post("/v1/keys", json={"name": "x"}, headers=admin)
    assert no_role.status_code == 422
    assert no_role.json()["field"] == "role"
    for name in ("", "   ", "desk\u0000one", "desk\none", "desk\tone", "desk\u0085one"):
        bad_name = create(client, admin, "desk", name)  # blank and a NUL were 500s
        assert (bad_name.status_code, bad_name.json()["field"]) == (422, "name"), name
    with engine.connect() as connection:
        assert len(connection.execute(select(tables.api_keys)).all()) == before


def test_only_admins_manage_keys_and_each_key_acts_with_its_role(
    client: TestClient, desk: Headers, analyst: Headers, admin: Headers
) -> None:
    made = create(client, admin).json()
    for headers in (desk, analyst):
        assert create(client, headers).status_code == 403
        assert client.get("/v1/keys", headers=headers).status_code == 403
        assert client.delete(f"/v1/keys/{made['key_id']}", headers=headers).status_code == 403
    assert client.get("/v1/keys").status_code == 401
    assert client.get("/v1/keys", headers=bearer("lk_made-up")).status_code == 401
    new_desk = bearer(create(client, admin, "desk").json()["key"])
    new_analyst = bearer(create(client, admin, "analyst").json()["key"])
    assert client.get("/v1/keys", headers=new_desk).status_code == 403
    assert client.get("/metrics", headers=new_analyst).status_code == 200
    assert client.get("/metrics", headers=new_desk).status_code == 403


def rotate(client: TestClient, admin: Headers, key_id: str, **choice: str) -> Any:
    return client.post(
        "/v1/keys", json={"role": "desk", "replaces": key_id, **choice}, headers=admin
    )


def test_a_replacement_key_is_the_same_holders_and_both_work_until_the_old_is_revoked(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    first = create(client, admin, "desk", "Batam desk 3").json()
    second = rotate(client, admin, first["key_id"])
    assert second.status_code == 201, second.text
    made = second.json()
    assert made["name"] == "Batam desk 3", "named as the key it replaces"
    assert (made["role"], made["holder"]) == ("desk", first["key_id"])
    assert made["replaces"] == first["key_id"]
    for secret in (first["key"], made["key"]):  # no downtime: both work
        assert client.get("/v1/registry", headers=bearer(secret)).status_code == 200
    assert client.delete(f"/v1/keys/{first['key_id']}", headers=admin).status_code == 200
    assert client.get("/v1/registry", headers=bearer(first["key"])).status_code == 401
    third = rotate(client, admin, made["key_id"], name="Batam desk 3 (2027)")  # a revoked one's
    assert third.status_code == 201, third.text
    assert third.json()["holder"] == first["key_id"], "the holder goes down the line"

    listed = {k["key_id"]: k for k in client.get("/v1/keys", headers=admin).json()["keys"]}
    assert [listed[k]["replaces"] for k in (first["key_id"], made["key_id"])] == [
        None,
        first["key_id"],
    ]
    assert listed[third.json()["key_id"]]["name"] == "Batam desk 3 (2027)"
    assert {listed[k]["holder"] for k in (first["key_id"], made["key_id"])} == {first["key_id"]}
    log = tables.audit_log.c
    with engine.connect() as connection:
        entry = audit.body_of(
            connection,
            connection.execute(
                select(log.seq).where(log.kind == "key_created", log.subject == made["key_id"])
            ).scalar_one(),
        )
        verified = audit.verify(connection)
    assert (entry["replaces"], entry["holder"]) == (first["key_id"], first["key_id"])
    assert verified.ok, verified.problems


def test_a_key_replaces_only_a_key_of_its_role_and_only_once(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    desk = create(client, admin, "desk", "Dumai desk").json()
    analyst = create(client, admin, "analyst", "BP2MI analyst").json()
    assert rotate(client, admin, desk["key_id"]).status_code == 201
    with engine.connect() as connection:
        before = len(connection.execute(select(tables.api_keys)).all())
    for key_id, role, status, field, said in [
        ("f" * 32, "desk", 404, "replaces", f"no key {'f' * 32} to replace"),
        (analyst["key_id"], "desk", 409, "role", "is an analyst key: the key replacing it"),
        (desk["key_id"], "analyst", 409, "role", "is a desk key: the key replacing it must"),
        (desk["key_id"], "desk", 409, "replaces", "was already replaced by key"),
        ("x\u0000y", "desk", 422, "replaces", "control character"),
    ]:
        refused = rotate(client, admin, key_id, role=role)
        assert (refused.status_code, refused.json()["field"]) == (status, field), refused.text
        assert said in refused.json()["detail"], refused.text
    no_name = client.post("/v1/keys", json={"role": "desk"}, headers=admin)
    assert (no_name.status_code, no_name.json()["field"]) == (422, "name"), no_name.text
    with engine.connect() as connection:
        assert len(connection.execute(select(tables.api_keys)).all()) == before


def test_a_name_a_live_key_of_another_desk_has_is_409_whatever_its_case_or_spacing(
    client: TestClient, admin: Headers, engine: Engine
) -> None:
    first = create(client, admin, "desk", "Batam Centre desk 1").json()
    with engine.connect() as connection:
        before = len(connection.execute(select(tables.api_keys)).all())
    for name in (
        "Batam Centre desk 1",
        "batam centre DESK 1",
        "Batam  Centre desk 1 ",
        "\uff22\uff41\uff54\uff41\uff4d Centre desk 1",  # full-width letters
    ):
        taken = create(client, admin, "desk", name)
        assert (taken.status_code, taken.json()["field"]) == (409, "name"), (name, taken.text)
        assert first["key_id"] in taken.json()["detail"], "names the key that has it"
    assert create(client, admin, "analyst", "BATAM CENTRE DESK 1").status_code == 409
    with engine.connect() as connection:
        assert len(connection.execute(select(tables.api_keys)).all()) == before

    spaced = create(client, admin, "desk", "  Tanjung   Pinang\u00a0desk ")
    assert spaced.status_code == 201, spaced.text
    assert spaced.json()["name"] == "Tanjung Pinang desk", "stored as it is compared"
    replacement = rotate(client, admin, first["key_id"], name="batam centre desk 1")
    assert replacement.status_code == 201, "a desk's own keys may share a name"
    assert client.delete(f"/v1/keys/{first['key_id']}", headers=admin).status_code == 200
    assert (
        client.delete(f"/v1/keys/{replacement.json()['key_id']}", headers=admin).status_code == 200
    )
    again = create(client, admin, "desk", "Batam Centre desk 1")
    assert again.status_code == 201, "a revoked key's name is free"
    listed = [key["name"] for key in client.get("/v1/keys", headers=admin).json()["keys"]]
    assert listed.count("Batam Centre desk 1") == 2  # one revoked, one live


def test_a_refusal_quotes_the_name_as_it_is(client: TestClient, admin: Headers) -> None:
    """A name is the admin's text, not a server path, whatever slashes it holds."""
    first = create(client, admin, "desk", "Batam /Tanjung Pinang desk").json()
    taken = create(client, admin, "desk", "batam /tanjung pinang desk")
    assert taken.status_code == 409, taken.text
    said = f"live key {first['key_id']} is already named 'Batam /Tanjung Pinang desk'"
    assert said in taken.json()["detail"]


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Batam\u200b desk 1", "U+200B ZERO WIDTH SPACE"),
        ("Batam desk\u200d 1", "U+200D ZERO WIDTH JOINER"),
        ("Batam\u00addesk 1", "U+00AD SOFT HYPHEN"),
        ("\ufeffBatam desk 1", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("Batam desk \u202e1", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("Batam desk\u2060 1", "U+2060 WORD JOINER"),
        ("Batam desk 1\u3164", "U+3164 HANGUL FILLER"),
        ("Batam desk 1\u2800", "U+2800 BRAILLE PATTERN BLANK"),
    ],
)
def test_a_name_with_an_invisible_character_is_422_naming_the_field_and_the_character(
    client: TestClient, admin: Headers, name: str, shown: str
) -> None:
    """Two keys that look the same in a list: one was `Batam desk 1` with a zero-width space."""
    assert create(client, admin, "desk", "Batam desk 1").status_code == 201
    refused = create(client, admin, "desk", name)
    assert (refused.status_code, refused.json()["field"]) == (422, "name"), refused.text
    assert f"must not hold invisible characters ({shown})" in refused.json()["detail"]
    names = [key["name"] for key in client.get("/v1/keys", headers=admin).json()["keys"]]
    assert names.count("Batam desk 1") == 1
