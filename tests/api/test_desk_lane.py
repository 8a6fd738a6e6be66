"""The desk lane answers a desk's screening as FastAPI's stack answers it, in every case.

One client, one app: a path under /stack is served with that root path, which the lane leaves
to the stack (an app mounted under a prefix), so each request can go either way.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRouter
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from api.app import create_app
from api.decision_schema import REPLAYED
from api.metrics import ERRORS
from api.settings import Settings
from api.storage import database, keys, tables
from tests.api.calls import rows
from tests.factories import tourist

LIMIT = 10_000  # the smallest the settings allow
WAYS = {"lane": "/v1/screenings", "stack": "/stack/v1/screenings"}


@pytest.fixture
def app(model_dir: Path, tmp_path: Path) -> FastAPI:
    return create_app(
        Settings(
            database_url=f"sqlite:///{tmp_path / 'lindung.db'}",
            model_dir=model_dir,
            pack_library=tmp_path / "packs",
            model_library=tmp_path / "models",
            job_dir=tmp_path / "jobs",
            max_request_bytes=LIMIT,
        )
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    async def either_way(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/stack/"):
            scope = {**scope, "root_path": "/stack"}
        await app(scope, receive, send)

    with TestClient(either_way, raise_server_exceptions=False) as client:
        yield client


def key(app: FastAPI, role: str) -> dict[str, str]:
    with database.transaction(app.state.service.engine) as connection:
        _caller, secret = keys.create(
            connection, role, f"{role} {uuid.uuid4().hex[:6]}", datetime.now(UTC)
        )
    return {"Authorization": f"Bearer {secret}"}


def answered(client: TestClient, way: str, **request: Any) -> dict[str, Any]:
    """What a client sees of the answer: status, body and the headers that tell something."""
    answer = client.post(WAYS[way], **request)
    body = answer.json() if answer.content else None
    if answer.status_code == 201:  # screened twice: a decision of its own each time
        body = {k: v for k, v in body.items() if k not in ("decision_id", "case_id")}
    shown = ("content-type", "www-authenticate", REPLAYED.lower())
    return {
        "status": answer.status_code,
        "body": body,
        "headers": {name: answer.headers.get(name) for name in shown},
    }


def both(client: TestClient, **request: Any) -> dict[str, Any]:
    """The answers the lane and the stack give, which must be the same. A part of the request
    given as a function is made anew for each way: a case of its own (sent twice, a case would
    be a retry), a body's chunks (an iterator is read once)."""
    lane, stack = (
        answered(client, way, **{k: v() if callable(v) else v for k, v in request.items()})
        for way in WAYS
    )
    assert lane == stack
    return lane


def one_case(**changes: Any) -> dict[str, Any]:
    return tourist(case_id=f"L-{uuid.uuid4().hex[:8]}", **changes)


def test_a_screening_is_answered_and_stored_alike(client: TestClient, app: FastAPI) -> None:
    desk = key(app, "desk")
    answer = both(client, json=one_case, headers=desk)
    assert answer["status"] == 201
    assert answer["body"]["tier"]
    assert answer["headers"]["content-type"] == "application/json"
    assert rows(app.state.service.engine, tables.decisions) == 2


def test_a_retry_and_a_case_sent_again_with_other_answers_are_answered_alike(
    client: TestClient, app: FastAPI
) -> None:
    desk = key(app, "desk")
    for way in WAYS:  # each way sends its own case twice
        case = one_case()
        first = client.post(WAYS[way], json=case, headers=desk)
        again = client.post(WAYS[way], json=case, headers=desk)
        assert again.status_code == 201, way
        assert again.headers[REPLAYED] == "true", way
        assert again.json() == first.json(), way
        other = {**case, "person": {**case["person"], "age": 19}}
        refused = client.post(WAYS[way], json=other, headers=desk)
        assert refused.status_code == 409, way
        assert refused.json()["field"] == "case_id", way
    assert rows(app.state.service.engine, tables.decisions) == 2


@pytest.mark.parametrize(
    ("role", "status"), [(None, 401), ("analyst", 403), ("admin", 403), ("desk", 422)]
)
def test_keys_are_checked_alike(
    client: TestClient, app: FastAPI, role: str | None, status: int
) -> None:
    headers = key(app, role) if role else {}
    answer = both(client, json={"channel": "port_desk", "person": {"age": "old"}}, headers=headers)
    assert answer["status"] == status  # a desk's key gets as far as the case
    if status == 401:
        assert answer["headers"]["www-authenticate"] == "Bearer"
    assert rows(app.state.service.engine, tables.decisions) == 0


def test_a_body_over_the_limit_is_refused_alike_declared_or_not(
    client: TestClient, app: FastAPI
) -> None:
    desk = key(app, "desk")
    declared = both(client, content=b" " * (LIMIT + 1), headers=desk)
    streamed = both(client, content=lambda: iter([b" " * LIMIT, b" "]), headers=desk)  # chunked
    for answer in (declared, streamed):
        assert answer["status"] == 413
        assert answer["body"]["field"] == "body"
        assert answer["body"]["detail"] == f"the request body is over {LIMIT:,} bytes"
    # a case just under the limit is read and screened
    padded = one_case(notes="")
    padded["case_id"] += " " * 0
    assert both(client, json=one_case, headers=desk)["status"] == 201


def test_an_unknown_key_is_refused_before_an_oversized_body_is_read(
    client: TestClient, app: FastAPI
) -> None:
    answer = both(
        client,
        content=lambda: iter([b" " * LIMIT, b" "]),
        headers={"Authorization": "Bearer not-a-key"},
    )
    assert answer["status"] == 401


@pytest.mark.parametrize(
    ("request_parts", "field"),
    [
        ({"content": b"{not json"}, "body"),
        ({"json": {"channel": "port_desk", "person": {"age": "old"}}}, "person.age"),
        ({"json": [1, 2]}, "(case)"),
        ({"json": one_case, "params": {"note": "a\x00b"}}, "note"),
        ({"json": one_case, "params": [("tier", "high"), ("tier", "urgent")]}, "tier"),
    ],
    ids=["not-json", "bad-case", "not-an-object", "nul-in-query", "repeated-parameter"],
)
def test_a_bad_request_is_refused_alike_naming_its_field(
    client: TestClient, app: FastAPI, request_parts: dict[str, Any], field: str
) -> None:
    answer = both(client, headers=key(app, "desk"), **request_parts)
    assert answer["status"] == 422
    assert answer["body"]["field"] == field
    assert rows(app.state.service.engine, tables.decisions) == 0


def test_an_unexpected_failure_is_a_500_alike_with_nothing_stored(
    client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.state.service, "screen_together", broken)
    answer = both(client, json=one_case, headers=key(app, "desk"))
    assert answer["status"] == 500
    assert answer["body"]["error"] == "InternalError"
    assert "a bug" not in str(answer["body"])
    assert rows(app.state.service.engine, tables.decisions) == 0


async def sent_raw(
    app: FastAPI,
    way: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes | None,
    failing: str = "",
) -> list[Message]:
    """What the app sends for a request made by hand: `body` None is a client gone before
    sending it; `failing`, a message type whose sending fails (a connection broken)."""
    sent: list[Message] = []
    given = False

    async def receive() -> Message:
        nonlocal given
        if body is None or given:
            return {"type": "http.disconnect"}
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == failing:
            raise OSError("broken pipe")
        sent.append(message)

    path = WAYS[way]
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "/stack" if way == "stack" else "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    return sent


def desk_header(app: FastAPI) -> tuple[bytes, bytes]:
    return (b"authorization", key(app, "desk")["Authorization"].encode())


def test_a_client_gone_before_its_body_arrived_is_logged_as_499_alike(
    client: TestClient, app: FastAPI
) -> None:
    assert client.portal is not None
    for way in WAYS:
        sent = client.portal.call(sent_raw, app, way, [desk_header(app)], None)
        assert sent[0]["status"] == 499, way
    assert rows(app.state.service.engine, tables.decisions) == 0


@pytest.mark.parametrize(
    ("lengths", "status"),
    [([b"\xb2"], 422), ([b"2", b"999999"], 413), ([b"999999", b"2"], 422)],
    ids=["not-ascii-digits", "twice-last-over", "twice-last-under"],
)
def test_an_odd_content_length_is_read_alike(
    client: TestClient, app: FastAPI, lengths: list[bytes], status: int
) -> None:
    headers = [desk_header(app)] + [(b"content-length", length) for length in lengths]
    assert client.portal is not None
    for way in WAYS:
        sent = client.portal.call(sent_raw, app, way, headers, b"{}")
        assert sent[0]["status"] == status, way


def test_an_answer_that_cannot_be_sent_is_logged_and_counted_alike(
    client: TestClient, app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    assert client.portal is not None
    for way in WAYS:
        errors = ERRORS.labels("500")._value.get()
        caplog.clear()
        with pytest.raises(OSError, match="broken pipe"):
            client.portal.call(
                sent_raw,
                app,
                way,
                [desk_header(app)],
                json.dumps(one_case()).encode(),
                "http.response.body",
            )
        assert ERRORS.labels("500")._value.get() == errors + 1, way
        assert any("unexpected OSError" in record.getMessage() for record in caplog.records)


def test_a_desk_screening_takes_the_lane_past_fastapis_router(
    client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed: list[str] = []
    route = APIRouter.__call__

    async def counted(router: APIRouter, scope: Scope, receive: Receive, send: Send) -> None:
        routed.append(scope["path"])
        await route(router, scope, receive, send)

    monkeypatch.setattr(APIRouter, "__call__", counted)
    desk = key(app, "desk")
    assert client.post(WAYS["lane"], json=one_case(), headers=desk).status_code == 201
    assert routed == []
    assert client.post(WAYS["stack"], json=one_case(), headers=desk).status_code == 201
    assert client.get("/v1/screenings", headers=desk).status_code == 405  # not the lane's
    assert routed == ["/stack/v1/screenings", "/v1/screenings"]
