"""The app as a whole: what its start-up sets for the serving process, what it publishes."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from sqlalchemy import Connection, Engine, create_engine, func, select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.app import SWITCH_INTERVAL_S, create_app
from api.settings import Settings
from api.storage import database, keys, tables
from engine.case import CASE_FIELDS
from engine.case_input import parse_case
from engine.errors import CaseError
from tests.api.conftest import POSTGRES, key_headers
from tests.api.storage.test_write_lock import HEAD, held_in_another_transaction
from tests.api.test_group_commit import hold_lock
from tests.factories import cases, documented_worker, tourist
from tests.json_schema import problems


def test_serving_threads_take_turns_at_the_interpreter_lock_often(app: FastAPI) -> None:
    # A bulk upload computes in a worker thread beside the desks' event loop: at Python's
    # default 5 ms turns, a desk's screening waited up to 5 ms at each of its database calls.
    before = sys.getswitchinterval()
    assert before > SWITCH_INTERVAL_S
    with TestClient(app):
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
    assert sys.getswitchinterval() == before  # given back when the app stops


def test_an_unknown_path_or_method_is_answered_in_the_error_shape(
    client: TestClient, desk: dict[str, str]
) -> None:
    missing = client.get("/v1/nothing-here", headers=desk)
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "NotFound",
        "detail": "GET /v1/nothing-here: Not Found",
        "field": None,
    }
    wrong = client.delete("/v1/screenings", headers=desk)
    assert (wrong.status_code, wrong.json()["error"]) == (405, "MethodNotAllowed")
    assert wrong.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/keys", "GET, POST"),
        ("/v1/registry", "GET, PUT"),
        ("/v1/decisions/d-1/outcome", "GET, POST"),
        ("/v1/rescore-jobs", "GET, POST"),
    ],
)
def test_a_method_not_allowed_names_every_method_of_the_path(
    client: TestClient, admin: dict[str, str], path: str, allowed: str
) -> None:
    # Starlette's Allow named the methods of the first route of the path alone: "POST" for
    # /v1/keys, which a GET lists (found by schemathesis)
    answer = client.request("PATCH", path, headers=admin)
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed


EVERY_ENUMERATION_UNKNOWN = {
    "channel": "batch",
    **{path: "unknown" for path, spec in CASE_FIELDS.items() if spec.values and path != "channel"},
}
ACCEPTED = {
    "nested": {
        "channel": "port_desk",
        "travel": {"visa_type": "tourist", "transit_countries": ["SG"]},
        "person": {"age": 23},
        "placement": {"documents": {"bpjs": False}},
    },
    "flat, dotted keys": {
        "channel": "batch",
        "travel.visa_type": "tourist",
        "person.age": 23,
        "placement.documents.bpjs": False,
        "placement.documents": {"work_contract": True},
        "travel": {"mode": "sea"},
    },
    "unknown values": {
        "channel": "immigration_desk",
        "travel": {"visa_type": "unknown", "destination_country": "unknown"},
        "person.education": "unknown",
    },
    "every enumeration unknown": EVERY_ENUMERATION_UNKNOWN,
    "text with a tab and a line break": {
        "channel": "batch",
        "placement.agency_name": "PT Contoh\tKarya\nMandiri",
        "links.escort_ref": "+62 812\t3509",
    },
    "nulls": {
        "channel": "ltsa_counter",
        "case_id": None,
        "screened_at": None,
        "person": None,
        "travel.visa_type": None,
        "placement": {"documents": None, "occupation": None},
        "links.escort_ref": None,
    },
}
REFUSED = {
    "no channel": {"travel": {"visa_type": "tourist"}},
    "channel unknown": {"channel": "unknown"},
    "a misspelt value": {"channel": "batch", "travel.visa_type": "tourst"},
    "an unknown dotted key": {"channel": "batch", "travel.visa": "tourist"},
    "an unknown nested field": {"channel": "batch", "travel": {"visa": "tourist"}},
    "a dotted key inside a group": {"channel": "batch", "placement": {"documents.bpjs": True}},
    "a field under a value": {"channel": "batch", "case_id.x": "1"},
    "an age below 0": {"channel": "batch", "person.age": -1},
    "a group given as text": {"channel": "batch", "person": "F"},
    "a yes or no given as a number": {"channel": "batch", "interview.visible_injury": 2},
    "a screening time as a number": {"channel": "batch", "screened_at": 1765065600},
    "a birth date as a number": {"channel": "batch", "person": {"birth_date": 631152000}},
    "a control character in text": {"channel": "batch", "person.origin_province": "NTB\u0007"},
    "a control character in the case id": {"channel": "batch", "case_id": "T-\u0000"},
}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("record", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_the_published_case_record_allows_what_a_screening_accepts(
    app: FastAPI, record: dict[str, Any]
) -> None:
    # A client generating code from /openapi.json, or validating a case against it before
    # sending, must not refuse a case the service screens.
    published = TestClient(app).get("/openapi.json").json()
    parse_case(record)
    assert problems(record, published["components"]["schemas"]["CaseRecordV1"], published) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("record", REFUSED.values(), ids=REFUSED.keys())
def test_the_published_case_record_refuses_what_a_screening_refuses(
    app: FastAPI, record: dict[str, Any]
) -> None:
    published = TestClient(app).get("/openapi.json").json()
    with pytest.raises(CaseError):
        parse_case(record)
    assert problems(record, published["components"]["schemas"]["CaseRecordV1"], published) != []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_bulk_that_waited_too_long_for_another_processs_lock_gets_503_and_stores_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bulk waits for SQLite's write lock in a worker thread, up to the busy timeout (30 s,
    here 1 s); then it is told the database is busy, not that the server failed."""
    monkeypatch.setattr(database, "SQLITE_BUSY_SECONDS", 1)
    with TestClient(create_app(settings)) as client:  # nothing raised on to the server
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        with database.transaction(engine) as connection:
            _key, secret = keys.create(connection, "analyst", "busy", datetime.now(UTC))
        hold_lock(str(engine.url.database), lock_file=False, seconds=4)
        cases = {"cases": [tourist(case_id=f"T-{n}") for n in range(3)]}
        answer = client.post(
            "/v1/screenings/bulk", json=cases, headers={"Authorization": f"Bearer {secret}"}
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["field"] == "database"
        assert "nothing was stored" in answer.json()["detail"]
        with database.reading(engine) as connection:  # beside the lock, still held
            stored = connection.execute(select(func.count()).select_from(tables.decisions))
            assert stored.scalar_one() == 0
    assert "the database was busy on POST /v1/screenings/bulk" in caplog.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_answers_of_a_screening_and_a_bulk_are_the_published_decision_v1(
    client: TestClient, desk: dict[str, str], analyst: dict[str, str]
) -> None:
    """A client generating code from /openapi.json reads the answers it gets: an urgent one with
    a referral, clear ones, one with questions, a bulk and a retry answered from storage."""
    published = client.get("/openapi.json").json()
    schemas = published["components"]["schemas"]
    sent = [
        tourist(),
        documented_worker(case_id="W-1"),
        tourist(case_id="U-1", interview={"reports_coercion": True}, travel={"ticket": None}),
    ]
    answers = [client.post("/v1/screenings", json=one, headers=desk) for one in sent]
    answers.append(client.post("/v1/screenings", json=tourist(), headers=desk))  # a retry
    assert answers[-1].headers["Idempotent-Replayed"] == "true"
    assert [a.status_code for a in answers] == [201] * 4
    assert {"clear", "urgent"} <= {a.json()["tier"] for a in answers}
    assert answers[2].json()["questions"]
    for answer in answers:
        assert problems(answer.json(), schemas["DecisionV1"], published) == []
    bulk = client.post("/v1/screenings/bulk", json={"cases": sent}, headers=analyst)
    assert bulk.status_code == 201, bulk.text
    assert problems(bulk.json(), schemas["BulkDecisionsV1"], published) == []
    for path in ("/v1/screenings", "/v1/screenings/bulk"):
        assert (
            "Idempotent-Replayed" in published["paths"][path]["post"]["responses"]["201"]["headers"]
        )
    assert problems({**answers[0].json(), "tier": "red"}, schemas["DecisionV1"], published)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(record=cases())
def test_the_answer_to_any_case_is_the_published_decision_v1(
    client: TestClient, desk: dict[str, str], record: dict[str, Any]
) -> None:
    published = client.get("/openapi.json").json()
    sent = {**record, "case_id": uuid.uuid4().hex}  # each its own case, not a retry
    answer = client.post("/v1/screenings", json=sent, headers=desk)
    assert answer.status_code == 201, answer.text
    decision = published["components"]["schemas"]["DecisionV1"]
    assert problems(answer.json(), decision, published) == []


def published_problems(
    published: dict[str, Any], method: str, template: str, answer: Any
) -> list[str]:
    """How `answer` to `method template` breaks what /openapi.json says of it: a status it does
    not list, a media type it does not give, or a body not of that status's schema (the
    Problem, for an error)."""
    responses = published["paths"][template][method.lower()]["responses"]
    status = str(answer.status_code)
    if status not in responses:
        return [f"{method} {template}: {status} is not published ({sorted(responses)})"]
    content = responses[status].get("content", {})
    media = answer.headers.get("content-type", "").split(";")[0].strip()
    if content and media not in content:
        return [f"{method} {template}: {status} as {media} is published as {sorted(content)}"]
    schema = content.get("application/json", {}).get("schema")
    if answer.status_code < 400 or schema is None:
        return []
    return problems(answer.json(), schema, published)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_error_a_request_runs_into_is_published_for_it_with_its_body(
    client: TestClient, desk: dict[str, str], admin: dict[str, str], analyst: dict[str, str]
) -> None:
    """A client generated from /openapi.json knows each status it may get and reads its body:
    the published 422 was FastAPI's (`detail` a list, which the service never sends), and 401,
    403, 404, 409, 413 and 415 were not published at all (found by schemathesis)."""
    published = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in published["components"]["schemas"]
    first = client.post("/v1/screenings", json=tourist(), headers=desk)
    decision_id = first.json()["decision_id"]
    form = {"Content-Type": "multipart/form-data; boundary=x"}
    sent: list[tuple[str, str, str, dict[str, Any], int]] = [
        ("POST", "/v1/screenings", "/v1/screenings", {}, 401),
        ("POST", "/v1/screenings", "/v1/screenings", {"headers": admin}, 403),
        ("POST", "/v1/screenings", "/v1/screenings", {"headers": desk}, 422),
        (
            "POST",
            "/v1/screenings",
            "/v1/screenings",
            {"headers": desk, "json": tourist(person={"age": 35})},
            409,
        ),
        (
            "POST",
            "/v1/screenings",
            "/v1/screenings",
            {"headers": desk, "content": b"x" * 5_000_000},
            413,
        ),
        ("POST", "/v1/screenings/bulk", "/v1/screenings/bulk", {"headers": desk, "json": {}}, 422),
        ("GET", "/v1/decisions", "/v1/decisions?limit=0", {"headers": desk}, 422),
        ("GET", "/v1/decisions/{decision_id}", "/v1/decisions/nothing", {"headers": desk}, 404),
        (
            "POST",
            "/v1/decisions/{decision_id}/outcome",
            f"/v1/decisions/{decision_id}/outcome",
            {"headers": desk, "json": {"nothing": 1}},
            422,
        ),
        (
            "POST",
            "/v1/referrals/{decision_id}/acknowledge",
            f"/v1/referrals/{decision_id}/acknowledge",
            {"headers": desk},
            404,
        ),
        (
            "GET",
            "/v1/registry/licences/{license_no}",
            "/v1/registry/licences/KEP.0/2020",
            {"headers": desk},
            404,
        ),
        (
            "PUT",
            "/v1/registry",
            "/v1/registry",
            {"headers": {**admin, **form}, "content": b"--x\r\n"},
            415,
        ),
        ("POST", "/v1/keys", "/v1/keys", {"headers": admin, "json": {"role": "clerk"}}, 422),
        (
            "POST",
            "/v1/keys",
            "/v1/keys",
            {"headers": admin, "json": {"role": "desk", "replaces": "nothing"}},
            404,
        ),
        ("POST", "/v1/activation", "/v1/activation", {"headers": admin, "json": {}}, 422),
        ("GET", "/v1/rescore-jobs/{job_id}", "/v1/rescore-jobs/nothing", {"headers": analyst}, 404),
        ("POST", "/v1/rescore-jobs", "/v1/rescore-jobs", {"headers": analyst}, 415),
    ]
    for method, template, url, request, status in sent:
        answer = client.request(method, url, **request)
        assert answer.status_code == status, (method, url, answer.text)
        assert published_problems(published, method, template, answer) == [], answer.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_published_request_body_refuses_what_the_service_refuses_and_allows_what_it_takes(
    client: TestClient, desk: dict[str, str], admin: dict[str, str]
) -> None:
    """A client validating its request against /openapi.json before sending it is not refused
    after: a bulk of no case or with another member, an outcome of neither action nor
    confirmation or a correction without its note, and a new holder's key without a name
    were refused though the published schema allowed them (found by schemathesis)."""
    published = client.get("/openapi.json").json()
    decision_id = client.post("/v1/screenings", json=tourist(), headers=desk).json()["decision_id"]
    outcome = f"/v1/decisions/{decision_id}/outcome"
    sent: list[tuple[str, str, dict[str, str], dict[str, Any], int]] = [
        ("/v1/screenings/bulk", "/v1/screenings/bulk", desk, {"cases": []}, 422),
        ("/v1/screenings/bulk", "/v1/screenings/bulk", desk, {"cases": [{}], "more": 1}, 422),
        ("/v1/screenings/bulk", "/v1/screenings/bulk", desk, {"cases": [tourist()]}, 201),
        ("/v1/decisions/{decision_id}/outcome", outcome, desk, {}, 422),
        ("/v1/decisions/{decision_id}/outcome", outcome, desk, {"action": None, "note": "-"}, 422),
        (
            "/v1/decisions/{decision_id}/outcome",
            outcome,
            desk,
            {"confirmed": "procedural", "corrects": "trafficking"},
            422,
        ),
        ("/v1/decisions/{decision_id}/outcome", outcome, desk, {"corrects": "procedural"}, 422),
        (
            "/v1/decisions/{decision_id}/outcome",
            outcome,
            desk,
            {"confirmed": "procedural", "corrects": "trafficking", "note": " "},
            422,
        ),
        (
            "/v1/decisions/{decision_id}/outcome",
            outcome,
            desk,
            {"confirmed": "procedural", "corrects": "procedural", "note": "why"},
            422,
        ),
        ("/v1/decisions/{decision_id}/outcome", outcome, desk, {"action": "cleared"}, 201),
        ("/v1/decisions/{decision_id}/outcome", outcome, desk, {"confirmed": "procedural"}, 201),
        (
            "/v1/decisions/{decision_id}/outcome",
            outcome,
            desk,
            {"confirmed": "trafficking", "corrects": "procedural", "note": "the broker confessed"},
            201,
        ),
        (
            "/v1/decisions/{decision_id}/outcome",
            outcome,
            desk,
            {"action": "cleared", "note": "\u0007"},
            422,
        ),
        ("/v1/keys", "/v1/keys", admin, {"role": "desk"}, 422),
        ("/v1/keys", "/v1/keys", admin, {"role": "desk", "name": "Batam\ndesk 2"}, 422),
        ("/v1/keys", "/v1/keys", admin, {"role": "desk", "name": "Batam\u0085desk 2"}, 422),
        ("/v1/keys", "/v1/keys", admin, {"role": "desk", "name": None}, 422),
        ("/v1/keys", "/v1/keys", admin, {"role": "desk", "name": "Batam Centre desk 9"}, 201),
    ]
    for template, url, headers, body, status in sent:
        answer = client.post(url, json=body, headers=headers)
        assert answer.status_code == status, (url, body, answer.text)
        schema = published["paths"][template]["post"]["requestBody"]["content"]
        found = problems(body, schema["application/json"]["schema"], published)
        assert (found != []) == (status == 422), (url, body, found)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_bulk_whose_wait_for_a_lock_postgresql_gave_up_gets_503_and_stores_nothing(
    settings: Settings,
) -> None:
    """Where the PostgreSQL server gives up on lock waits (a lock_timeout its administrators
    set), a bulk's wait for the audit head another transaction holds ends as on SQLite: the
    database is busy, nothing was stored; the answer says so without SQLite's 30 s."""
    url = settings.database_url.replace("options=-c", "options=-clock_timeout%3D1000%20-c")
    settings = settings.model_copy(update={"database_url": url})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW lock_timeout").scalar() == "1s"
        with database.transaction(engine) as connection:
            _key, secret = keys.create(connection, "analyst", "busy", datetime.now(UTC))
        holding = held_in_another_transaction(engine, HEAD, seconds=4)
        cases = {"cases": [tourist(case_id=f"T-{n}") for n in range(3)]}
        answer = client.post(
            "/v1/screenings/bulk", json=cases, headers={"Authorization": f"Bearer {secret}"}
        )
        holding.join()
        assert answer.status_code == 503, answer.text
        assert answer.json()["field"] == "database"
        detail = answer.json()["detail"]
        assert "nothing was stored" in detail
        assert "30 s" not in detail
        assert "write lock" not in detail
        with database.reading(engine) as connection:
            stored = connection.execute(select(func.count()).select_from(tables.decisions))
            assert stored.scalar_one() == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_screening_while_the_database_cannot_be_reached_gets_503_and_stores_nothing(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's connections are cut and new ones refused (the database restarting, or
    its login taken away): a desk whose key the server knows is told the database cannot be
    reached and to send the case again, not that the server failed, and nothing is stored;
    once the login is back, the case sent again is screened and stored once."""
    role = f"lindung_{uuid.uuid4().hex[:8]}"
    schema = settings.database_url.rsplit("search_path%3D", 1)[1]
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN')
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'GRANT ALL ON SCHEMA "{schema}" TO "{role}"')
        app = create_app(settings.model_copy(update={"database_url": url_as(settings, role)}))
        with TestClient(app) as client:  # what the app raises on, the server logs as failed
            with database.transaction(app.state.service.engine) as connection:
                _key, secret = keys.create(connection, "desk", "Batam", datetime.now(UTC))
            desk = {"Authorization": f"Bearer {secret}"}
            first = client.post("/v1/screenings", json=tourist(case_id="T-1"), headers=desk)
            assert first.status_code == 201, first.text  # the key is now known to the server
            with admin.connect() as connection:
                connection.exec_driver_sql(f'ALTER ROLE "{role}" NOLOGIN')
                connection.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    f" WHERE usename = '{role}'"
                )
            case = tourist(case_id="T-unreachable")
            answer = client.post("/v1/screenings", json=case, headers=desk)
            assert answer.status_code == 503, answer.text
            assert answer.json()["field"] == "database"
            assert "could not be reached" in answer.json()["detail"]
            assert "send it again" in answer.json()["detail"]
            assert "trying once more" in caplog.text  # the connection lost, then one refused
            assert not [record for record in caplog.records if record.levelname == "ERROR"]
            assert stored_in(admin, schema) == 1
            with admin.connect() as connection:
                connection.exec_driver_sql(f'ALTER ROLE "{role}" LOGIN')
            again = client.post("/v1/screenings", json=case, headers=desk)
            assert again.status_code == 201, again.text
            assert "Idempotent-Replayed" not in again.headers  # screened now, not before
            assert stored_in(admin, schema) == 2
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP OWNED BY "{role}" CASCADE')
            connection.exec_driver_sql(f'DROP ROLE "{role}"')
        admin.dispose()


def test_a_request_that_waited_too_long_for_a_database_connection_gets_503(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every connection the server may open is in use (requests holding them while they wait
    for a lock, say): a desk's screening and an analyst's list wait for one up to
    POOL_WAIT_SECONDS (here 1 s), then are told the database is busy, not that the server
    failed, with nothing stored; once connections come free, the case sent again is stored."""
    monkeypatch.setattr(database, "POOL_WAIT_SECONDS", 1)
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        desk, analyst = key_headers(engine, "desk"), key_headers(engine, "analyst")
        first = client.post("/v1/screenings", json=tourist(case_id="T-1"), headers=desk)
        assert first.status_code == 201, first.text
        assert client.get("/v1/decisions", headers=analyst).status_code == 200  # keys known
        held = every_connection(engine)
        try:
            case = tourist(case_id="T-waited")
            for answer in (
                client.post("/v1/screenings", json=case, headers=desk),
                client.get("/v1/decisions", headers=analyst),
            ):
                assert answer.status_code == 503, answer.text
                assert answer.json()["field"] == "database"
                assert "every connection" in answer.json()["detail"]
                assert "for 1 s" in answer.json()["detail"]
                assert "nothing was stored" in answer.json()["detail"]
            stored = held[0].execute(select(func.count()).select_from(tables.decisions))
            assert stored.scalar_one() == 1
        finally:
            for connection in held:
                connection.close()
        again = client.post("/v1/screenings", json=case, headers=desk)
        assert again.status_code == 201, again.text
        assert "Idempotent-Replayed" not in again.headers
    assert "no database connection came free" in caplog.text
    assert not [record for record in caplog.records if record.levelname == "ERROR"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_error_nothing_explains_gets_500_and_its_traceback_logged_once(
    client: TestClient, engine: Engine, analyst: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A database error that is neither a lock wait nor an outage (here a table gone) is the
    server's failure: 500, and the server's log has what happened with its traceback, logged
    by the app and not raised on for the server to log again."""
    with database.transaction(engine) as connection:
        connection.exec_driver_sql("ALTER TABLE decisions RENAME TO decisions_gone")
    answer = client.get("/v1/decisions", headers=analyst)  # the client raises what is raised on
    assert answer.status_code == 500, answer.text
    assert answer.json()["error"] == "InternalError"
    [failed] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert "OperationalError on GET /v1/decisions" in failed.getMessage()
    assert failed.exc_info is not None
    assert "no such table: decisions" in str(failed.exc_info[1])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_requests_waiting_in_threads_leave_connections_for_the_desks_screenings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty-five bulks wait in worker threads for the audit head another process's
    transaction holds, each holding a connection: a desk's screening on the event loop still
    finds one (it waited for one there, POOL_WAIT_SECONDS, here 2 s, holding up the whole
    process, then got 503, as did the bulks left without one), and every request is stored
    once the other transaction ends."""
    monkeypatch.setattr(database, "POOL_WAIT_SECONDS", 2)
    with TestClient(create_app(settings)) as client:
        engine = client.app.state.service.engine  # type: ignore[attr-defined]
        desk, analyst = key_headers(engine, "desk"), key_headers(engine, "analyst")
        assert client.post("/v1/screenings", json=tourist(case_id="T-0"), headers=desk).is_success
        assert client.get("/v1/decisions", headers=analyst).is_success  # both keys known
        other_process = create_engine(settings.database_url)
        holding = held_in_another_transaction(other_process, HEAD, seconds=5)
        answers: dict[int, int] = {}

        def bulk(number: int) -> None:
            cases = {"cases": [tourist(case_id=f"B-{number}")]}
            answers[number] = client.post(
                "/v1/screenings/bulk", json=cases, headers=analyst
            ).status_code

        bulks = [threading.Thread(target=bulk, args=(number,)) for number in range(35)]
        for thread in bulks:
            thread.start()
        deadline = time.monotonic() + 4
        while engine.pool.checkedout() < 25 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.pool.checkedout() >= 25  # the bulks wait for the head, holding them
        screened = client.post("/v1/screenings", json=tourist(case_id="T-1"), headers=desk)
        for thread in bulks:
            thread.join()
        holding.join()
        other_process.dispose()
        assert screened.status_code == 201, screened.text
        assert answers == dict.fromkeys(range(35), 201)
        assert stored_decisions(engine) == 37


def stored_decisions(engine: Engine) -> int:
    with database.reading(engine) as connection:
        return connection.execute(select(func.count()).select_from(tables.decisions)).scalar_one()


def every_connection(engine: Engine) -> list[Connection]:
    """Every connection `engine`'s pool may open, taken (the next waited POOL_WAIT_SECONDS)."""
    held: list[Connection] = []
    while True:
        try:
            held.append(engine.connect())
        except PoolTimeout:
            return held


def url_as(settings: Settings, role: str) -> str:
    return settings.database_url.replace("://root@", f"://{role}@", 1)


def stored_in(admin: Engine, schema: str) -> int:
    with admin.connect() as connection:
        return int(
            connection.exec_driver_sql(f'SELECT count(*) FROM "{schema}".decisions').scalar()
        )
