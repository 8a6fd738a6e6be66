"""The app as a whole: what its start-up sets for the serving process."""

from __future__ import annotations

import sys

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import SWITCH_INTERVAL_S


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
