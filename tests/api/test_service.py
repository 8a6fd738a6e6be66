from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection

from api import in_use
from api.routes import registry
from api.service import Service
from api.settings import Settings
from api.storage import database, keys
from engine.case_input import parse_case
from tests.api.routes.test_registry import NEW_REGISTRY as REGISTRY
from tests.api.storage.test_database import postgres_url, terminate_connections  # noqa: F401
from tests.factories import tourist


def test_a_bulk_with_escorts_is_stored_after_the_database_restarted(
    postgres_url: str,  # noqa: F811
    model_dir: Path,
    tmp_path: Path,
) -> None:
    """Its first statement, which counts the escorts' travellers, meets the lost connection."""
    settings = Settings(
        database_url=postgres_url,
        model_dir=model_dir,
        pack_library=tmp_path / "packs",
        model_library=tmp_path / "models",
        job_dir=tmp_path / "jobs",
    )
    service = Service(settings, database.connect(postgres_url, serving=True))
    service.start()
    try:
        with database.transaction(service.engine) as connection:
            caller, _secret = keys.create(connection, "desk", "Batam Centre", datetime.now(UTC))
        assert terminate_connections(postgres_url) >= 1
        case = parse_case(tourist(links={"escort_ref": "+62 812-0000-3333"}))
        [decision] = service.screen([case], caller)
        assert decision.case_id == case.case_id
    finally:
        service.stop()
        service.engine.dispose()


def test_an_upload_puts_its_registry_in_use_once_and_off_the_loop_with_a_desk_screening_meanwhile(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin's change (here a registry upload, in its worker thread) builds the components
    inside its transaction and puts them in use once committed. A desk's screening that waited
    for it meanwhile (on PostgreSQL for the audit head, reading what was committed before) does
    not build the old components again on the loop, nor the next one the new ones again; nor
    the new ones when the admin's thread is slow to run again once it has committed (under
    load: here it sleeps a second), since the desk's group waits for them meanwhile."""
    service: Service = app.state.service
    built: list[str] = []
    build = in_use.build

    def recorded(*args: Any, **kwargs: Any) -> in_use.InUse:
        made = build(*args, **kwargs)
        built.append(threading.current_thread().name)
        if threading.current_thread().name == "admin":
            time.sleep(1.5)  # the upload's transaction still open: the desk's group waits
        return made

    monkeypatch.setattr(in_use, "build", recorded)
    monkeypatch.setattr(database, "transaction", admins_slowed(after_commit=True))
    admin = keys.Caller("a" * 32, "admin", "admin")
    desk = keys.Caller("d" * 32, "desk", "desk")
    upload = threading.Thread(
        target=registry._upload, args=(service, REGISTRY.encode(), admin), name="admin"
    )
    upload.start()
    time.sleep(0.5)
    [during] = asyncio.run(service.screen_together([parse_case(tourist(case_id="T-1"))], desk))
    upload.join()
    [after] = asyncio.run(service.screen_together([parse_case(tourist(case_id="T-2"))], desk))
    assert built == ["admin"]
    assert service.registry_summary["source"] == "uploaded"
    assert during.case_id == "T-1"
    assert after.case_id == "T-2"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_group_that_read_another_processs_change_keeps_the_newer_one_an_upload_put_in_use(
    app: FastAPI, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another server process uploaded a registry. A desk's group that read that upload, and
    then waited while this process's admin committed a newer one, finds the newer in use: it
    builds nothing on the loop (it built the other process's again, putting it back in use over
    the newer, which the next group then built once more)."""
    service: Service = app.state.service
    other = Service(service.settings, database.connect(service.settings.database_url, serving=True))
    other.start()
    admin = keys.Caller("a" * 32, "admin", "admin")
    desk = keys.Caller("d" * 32, "desk", "desk")
    try:
        registry._upload(other, REGISTRY.encode(), admin)
        built: list[str] = []
        build = in_use.build

        def recorded(*args: Any, **kwargs: Any) -> in_use.InUse:
            built.append(threading.current_thread().name)
            return build(*args, **kwargs)

        monkeypatch.setattr(in_use, "build", recorded)
        monkeypatch.setattr(database, "transaction", admins_slowed(after_commit=False))
        upload = threading.Thread(
            target=registry._upload, args=(service, REGISTRY.encode(), admin), name="admin"
        )
        upload.start()
        time.sleep(0.5)
        escorted = parse_case(tourist(case_id="E-1", links={"escort_ref": "+62 812-0000-3333"}))
        asyncio.run(service.screen_together([escorted], desk))
        upload.join()
        asyncio.run(service.screen_together([parse_case(tourist(case_id="T-2"))], desk))
        assert built == ["admin"]
    finally:
        other.stop()


def admins_slowed(*, after_commit: bool) -> Callable[..., AbstractContextManager[Connection]]:
    """`database.transaction`, where the thread named admin sleeps a second just before or just
    after its transaction commits (its thread not run meanwhile, as under load)."""
    transaction = database.transaction

    @contextmanager
    def slowed(*args: Any, **kwargs: Any) -> Iterator[Connection]:
        admins = threading.current_thread().name == "admin"
        with transaction(*args, **kwargs) as connection:
            yield connection
            if admins and not after_commit:
                time.sleep(1)
        if admins and after_commit:
            time.sleep(1)

    return slowed
