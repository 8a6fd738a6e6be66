from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.settings import Settings
from api.storage import database, keys
from tests.api.servers import postgres_schema

# The PostgreSQL server of the machine (CI starts it); each test gets a schema of its own.
POSTGRES = os.environ.get("LINDUNG_TEST_POSTGRES", "postgresql+psycopg://root@127.0.0.1:5432/test")


@pytest.fixture(autouse=True)
def model_env(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands use the session's reference model instead of training one on first use."""
    monkeypatch.setenv("LINDUNG_MODEL_DIR", str(model_dir))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lindung.db'}"
        return
    with postgres_schema(POSTGRES) as url:
        yield url


@pytest.fixture
def settings(database_url: str, model_dir: Path, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        model_dir=model_dir,
        pack_library=tmp_path / "packs",
        model_library=tmp_path / "models",
        job_dir=tmp_path / "jobs",
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as client:
        yield client


@pytest.fixture
def engine(app: FastAPI, client: TestClient) -> Engine:
    """The app's database engine (schema migrated by the app's start-up)."""
    engine: Engine = app.state.service.engine
    return engine


KeyMaker = Callable[..., dict[str, str]]


def key_headers(engine: Engine, role: str, name: str | None = None) -> dict[str, str]:
    """Headers carrying a new key of `role`, stored through `engine`."""
    with database.transaction(engine) as connection:
        _caller, secret = keys.create(
            connection, role, name or f"{role} {uuid.uuid4().hex[:6]}", datetime.now(UTC)
        )
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def make_key(engine: Engine) -> KeyMaker:
    """Headers carrying a new key of `role`."""
    return partial(key_headers, engine)


@pytest.fixture
def desk(make_key: KeyMaker) -> dict[str, str]:
    return make_key("desk")


@pytest.fixture
def analyst(make_key: KeyMaker) -> dict[str, str]:
    return make_key("analyst")


@pytest.fixture
def admin(make_key: KeyMaker) -> dict[str, str]:
    return make_key("admin")
