from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ProgrammingError

from api.storage import database
from tests.api.conftest import POSTGRES


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the machine's PostgreSQL, and a connection name to find ours by."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{POSTGRES}?application_name={schema}&options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def terminate_connections(name: str) -> int:
    """Ends every server connection named `name`, as a restart of the database would."""
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = :name"
            ),
            {"name": name},
        ).scalar_one()
    admin.dispose()
    return int(ended)


def test_work_on_a_lost_connection_runs_once_more_on_a_new_one(postgres_url: str) -> None:
    engine = database.connect(postgres_url, serving=True)  # no ping before each use
    database.upgrade(engine)
    name = postgres_url.split("application_name=")[1].split("&")[0]
    assert terminate_connections(name) >= 1  # the pooled connection is gone

    tries = []

    def work() -> int:
        tries.append(1)
        with database.transaction(engine) as connection:
            return int(connection.execute(text("SELECT count(*) FROM audit_head")).scalar_one())

    assert database.once_more_if_lost(work) == 1
    assert len(tries) == 2, "the first try met the lost connection"
    engine.dispose()


def test_other_errors_are_not_tried_again(postgres_url: str) -> None:
    engine = database.connect(postgres_url, serving=True)
    tries = []

    def work() -> None:
        tries.append(1)
        with database.transaction(engine) as connection:
            connection.execute(text("SELECT * FROM no_such_table"))

    with pytest.raises(ProgrammingError, match="no_such_table"):
        database.once_more_if_lost(work)
    assert len(tries) == 1
    engine.dispose()
