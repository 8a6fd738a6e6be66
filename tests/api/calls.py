"""What the HTTP tests do again and again: screen a case, count a table's rows."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

Headers = dict[str, str]


def screen(client: TestClient, headers: Headers, case: dict[str, Any]) -> dict[str, Any]:
    """The decision for `case`, which must be screened and stored (201)."""
    answer = client.post("/v1/screenings", json=case, headers=headers)
    assert answer.status_code == 201, answer.text
    decision: dict[str, Any] = answer.json()
    return decision


def rows(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())
