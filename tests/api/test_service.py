from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from api.service import Service
from api.settings import Settings
from api.storage import database, keys
from engine.case_input import parse_case
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
