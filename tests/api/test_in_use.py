"""`lindung screen` and `lindung rescore` use what the service uses: after an admin uploads a
registry or activates a pack and model, the command line decides as HTTP does."""

from __future__ import annotations

import csv
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient

from api.settings import SAMPLE_REGISTRY, Settings, bundled
from api.storage import database
from models.artifact import MODEL_FILE, TrainedModel
from tests.api.calls import Headers, screen
from tests.api.routes.test_activation import activate, edit_in_place, library_model, library_pack
from tests.api.routes.test_registry import NEW_LICENCE, NEW_REGISTRY, upload
from tests.api.storage.test_audit_body import migrate
from tests.api.test_cli import decisions, run
from tests.conftest import DEFAULT_PACK
from tests.factories import documented_worker, tourist

REGISTRY = bundled(*SAMPLE_REGISTRY)


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "LINDUNG_DATABASE_URL": settings.database_url,
        "LINDUNG_PACK_LIBRARY": str(settings.pack_library),
        "LINDUNG_MODEL_LIBRARY": str(settings.model_library),
    }


def from_cli(settings: Settings, case: dict[str, Any], *options: str) -> dict[str, Any]:
    result = run("screen", *options, stdin=json.dumps(case), env=cli_env(settings))
    assert result.returncode == 0, result.stderr
    [decision] = decisions(result.stdout)
    return decision


def same(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """The same decision, made at two places (each has an id of its own)."""
    parts = ("tier", "risk_score", "flags", "questions", "explanation", "versions", "referral")
    return all(one[part] == other[part] for part in parts)


def test_after_a_registry_upload_the_cli_reads_the_uploaded_registry(
    client: TestClient, desk: Headers, admin: Headers, settings: Settings
) -> None:
    newly_licensed = documented_worker(
        case_id="W-new", placement={"agency_license_no": NEW_LICENCE}
    )
    before = from_cli(settings, newly_licensed)
    assert "unlicensed_agency" in {flag["rule_id"] for flag in before["flags"]}
    assert upload(client, admin, NEW_REGISTRY).status_code == 201

    over_http = screen(client, desk, newly_licensed)
    after = from_cli(settings, newly_licensed)
    assert "unlicensed_agency" not in {flag["rule_id"] for flag in after["flags"]}
    assert same(after, over_http)
    # --registry still chooses a file (here the settings' sample, which lacks the licence)
    chosen = from_cli(settings, newly_licensed, "--registry", str(settings.registry))
    assert "unlicensed_agency" in {flag["rule_id"] for flag in chosen["flags"]}


def test_after_an_activation_the_cli_screens_with_the_active_pack_and_model(
    client: TestClient,
    desk: Headers,
    admin: Headers,
    settings: Settings,
    trained: TrainedModel,
    model_dir: Path,
) -> None:
    default_label = screen(client, desk, tourist(case_id="before"))["versions"]["rule_pack"]
    _folder, next_pack = library_pack(settings, "next", "2026.12.1")
    other_model = f"{trained.version}-copy"  # not LINDUNG_MODEL_DIR's, though it scores alike
    library_model(settings, model_dir, other_model, (model_dir / MODEL_FILE).read_bytes())
    assert activate(client, admin, next_pack, other_model).status_code == 201

    case = tourist(case_id="after", travel={"destination_country": "KH"})
    over_http = screen(client, desk, case)
    assert (over_http["versions"]["rule_pack"], over_http["versions"]["model"]) == (
        next_pack,
        other_model,
    )
    in_use = from_cli(settings, case)
    assert same(in_use, over_http)
    chosen = from_cli(settings, case, "--rule-pack", str(settings.rule_pack))
    assert (chosen["versions"]["rule_pack"], chosen["versions"]["model"]) == (
        default_label,
        trained.version,
    )


def test_the_cli_neither_makes_nor_migrates_a_database(tmp_path: Path) -> None:
    case = json.dumps(tourist())
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    result = run("screen", stdin=case, env={"LINDUNG_DATABASE_URL": f"sqlite:///{empty}"})
    assert result.returncode == 0, result.stderr
    assert "No Lindung tables in LINDUNG_DATABASE_URL's database" in result.stderr
    with closing(sqlite3.connect(empty)) as connection:
        assert connection.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)

    older = f"sqlite:///{tmp_path / 'older.db'}"
    engine = database.connect(older)
    migrate(engine, "0004")
    refused = run("screen", stdin=case, env={"LINDUNG_DATABASE_URL": older})
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: database: its schema is at revision 0004, "), (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == ("0004",)
    engine.dispose()


def flat(record: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A case as one row of a rescore table (dotted columns)."""
    row: dict[str, str] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            row.update(flat(value, f"{prefix}{key}."))
        else:
            row[prefix + key] = str(value).lower() if isinstance(value, bool) else str(value)
    return row


def test_rescore_uses_the_uploaded_registry_and_the_activated_pack_by_default(
    client: TestClient,
    desk: Headers,
    admin: Headers,
    settings: Settings,
    trained: TrainedModel,
    tmp_path: Path,
) -> None:
    case = documented_worker(case_id="W-new", placement={"agency_license_no": NEW_LICENCE})
    table = tmp_path / "cases.csv"
    with table.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, list(flat(case)))
        writer.writeheader()
        writer.writerow(flat(case))
    assert upload(client, admin, NEW_REGISTRY).status_code == 201
    _folder, next_pack = library_pack(settings, "next", "2026.12.1")
    assert activate(client, admin, next_pack, trained.version).status_code == 201
    over_http = screen(client, desk, case)
    assert "unlicensed_agency" not in {flag["rule_id"] for flag in over_http["flags"]}

    def rescored(*options: str) -> dict[str, str]:
        out = tmp_path / "out.csv"
        result = run("rescore", str(table), "--out", str(out), *options, env=cli_env(settings))
        assert result.returncode == 0, result.stderr
        with out.open(encoding="utf-8") as stream:
            [row] = csv.DictReader(stream)
        return row

    in_use = rescored()
    assert in_use["tier"] == over_http["tier"]
    assert float(in_use["risk_score"]) == pytest.approx(over_http["risk_score"])
    assert "unlicensed_agency" not in in_use["flags"]
    assert "unlicensed_agency" in rescored("--registry", str(settings.registry))["flags"]


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", "connection"),
        ("not a url", "not a database URL"),
        ("mysql://root@127.0.0.1/test", "mysql is not a database this installation can use"),
        ("sqlite:///{text}", "file is not a database"),
    ],
)
def test_a_database_that_cannot_be_used_is_named_without_a_traceback(
    url: str, said: str, tmp_path: Path
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n" * 100, encoding="utf-8")
    env = {"LINDUNG_DATABASE_URL": url.format(text=text)}
    result = run("screen", stdin=json.dumps(tourist()), env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: database: "), result.stderr
    assert said in result.stderr
    assert len(result.stderr.splitlines()) == 1
    # with both files chosen, the database is not read at all
    chosen = ("--registry", str(REGISTRY), "--rule-pack", str(DEFAULT_PACK))
    result = run("screen", *chosen, stdin=json.dumps(tourist()), env=env)
    assert result.returncode == 0, result.stderr


def test_rescore_refuses_the_service_pack_changed_in_place_as_screen_does(
    client: TestClient, admin: Headers, settings: Settings, trained: TrainedModel, tmp_path: Path
) -> None:
    folder, label = library_pack(settings, "next", "2026.12.1")
    assert activate(client, admin, label, trained.version).status_code == 201
    edit_in_place(folder)  # the label is pinned to the files as activated
    table = tmp_path / "cases.csv"
    with table.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, list(flat(tourist())))
        writer.writeheader()
        writer.writerow(flat(tourist()))
    out = tmp_path / "out.csv"
    screened = run("screen", stdin=json.dumps(tourist()), env=cli_env(settings))
    rescored = run("rescore", str(table), "--out", str(out), env=cli_env(settings))
    assert (screened.returncode, rescored.returncode) == (1, 1)
    refusal = f"Error: rule pack: rule pack {label} in {folder} is not the {label} decisions "
    assert screened.stderr.startswith(refusal), screened.stderr
    assert rescored.stderr == screened.stderr
    assert "needs a new version" in rescored.stderr
    assert not out.exists()
    # a pack the analyst names is theirs to try: it is not the one the service decides with
    chosen = run(
        "rescore", str(table), "--out", str(out), "--rule-pack", str(folder), env=cli_env(settings)
    )
    assert chosen.returncode == 0, chosen.stderr
