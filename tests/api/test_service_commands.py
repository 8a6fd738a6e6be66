"""`lindung serve` as a desk meets it: real server processes on one database, over HTTP."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from api.cli import main
from api.settings import bundled
from api.storage import database
from tests.api.calls import Headers, screen
from tests.api.servers import LINDUNG, Server, create_key, free_port, server_env
from tests.api.storage.test_audit_body import migrate
from tests.factories import documented_worker, tourist


@pytest.fixture
def env(database_url: str, model_dir: Path, tmp_path: Path) -> dict[str, str]:
    return server_env(database_url, model_dir, tmp_path)


@pytest.fixture
def desk_key(env: dict[str, str]) -> str:
    return create_key(env, "desk", "Batam Centre")


@pytest.fixture
def two_servers(env: dict[str, str], desk_key: str, tmp_path: Path) -> Iterator[list[Server]]:
    servers = [Server(env, tmp_path / f"server-{n}.log") for n in (1, 2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def traveller(number: int, hour: int) -> dict[str, Any]:
    return tourist(
        case_id=f"ESC-{number}",
        screened_at=f"2026-11-23T{hour:02d}:00:00+00:00",
        person={"passport_no": f"C{number:07d}"},
        travel={"destination_country": "MY", "exit_point": "BTM"},
        links={"escort_ref": "+62 812-0000-1111"},
    )


def test_an_escort_seen_by_two_server_processes_links_the_third_traveller(
    two_servers: list[Server], desk_key: str
) -> None:
    first, second = two_servers
    answers = [
        first.post("/v1/screenings", traveller(1, 8), desk_key),
        second.post("/v1/screenings", traveller(2, 9), desk_key),
        first.post("/v1/screenings", traveller(3, 10), desk_key),
    ]
    assert [status for status, _ in answers] == [201, 201, 201], answers
    fired = [{flag["rule_id"] for flag in body["flags"]} for _, body in answers]
    assert "escort_network" not in fired[0] | fired[1]
    third = answers[2][1]
    assert "escort_network" in fired[2]
    assert third["tier"] == "urgent"
    assert third["referral"] is not None
    # the escort's reference never comes back in clear
    assert "0000-1111" not in json.dumps([body for _, body in answers])


def test_a_key_name_off_one_line_is_refused_naming_the_option(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    runner = CliRunner()
    for name, said in [
        ("a\x01b", "contains a control character"),
        ("Batam\n1", "must be one line, without tabs, line breaks or control characters"),
        ("Batam\t1", "must be one line"),
        ("Batam\x851", "must be one line"),  # NEL, a line break in Unicode
        ("   ", "must be 1 to 200 characters, not blank"),
        ("x" * 201, "must be 1 to 200 characters"),
    ]:
        refused = runner.invoke(main, ["keys", "create", "--role", "desk", "--name", name])
        assert refused.exit_code == 2, refused.output
        assert "Invalid value for '--name': " + said in refused.output, name
    made = runner.invoke(main, ["keys", "create", "--role", "desk", "--name", " Batam 1 "])
    assert made.exit_code == 0, made.output
    [listed] = runner.invoke(main, ["keys", "list"]).output.splitlines()  # none of the refused
    assert listed.endswith("  desk     live       Batam 1")


def test_keys_create_refuses_a_live_keys_name_and_invisible_characters_naming_the_option(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "create", "--role", "desk", "--name", "Dumai desk 2"])
    assert made.exit_code == 0, made.output
    [key_id] = re.findall(r"desk key (\w+) for", made.output)
    for name, said in [
        ("dumai  DESK 2", f"live key {key_id} is already named 'Dumai desk 2'"),
        ("Dumai\u200b desk 2", "must not hold invisible characters (U+200B ZERO WIDTH SPACE)"),
        ("Dumai desk 2\u200c", "must not hold invisible characters (U+200C ZERO WIDTH NON-JOINER)"),
    ]:
        refused = runner.invoke(main, ["keys", "create", "--role", "admin", "--name", name])
        assert refused.exit_code == 2, refused.output
        assert "Invalid value for '--name': " + said in refused.output, refused.output
    assert runner.invoke(main, ["keys", "list"]).output.splitlines() == [
        f"{key_id}  desk     live       Dumai desk 2"
    ]


def test_keys_create_replaces_rotates_a_key_and_keys_list_shows_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "create", "--role", "desk", "--name", "Nunukan 1"])
    assert first.exit_code == 0, first.output
    [old_id] = re.findall(r"desk key (\w+) for", first.output)
    made = runner.invoke(main, ["keys", "create", "--role", "desk", "--replaces", old_id])
    assert made.exit_code == 0, made.output
    assert f"for 'Nunukan 1', replacing key {old_id} (shown once):" in made.output
    [new_id] = re.findall(r"desk key (\w+) for", made.output)
    listed = runner.invoke(main, ["keys", "list"]).output.splitlines()
    assert listed == [
        f"{old_id}  desk     live       Nunukan 1",
        f"{new_id}  desk     live       Nunukan 1  (replaces {old_id}, holder {old_id})",
    ]
    for options, said in [
        (["--role", "desk", "--replaces", old_id], f"'--replaces': key {old_id} was already"),
        (["--role", "admin", "--replaces", new_id], "'--role': key " + new_id + " is a desk key"),
        (["--role", "desk", "--replaces", "0" * 32], f"'--replaces': no key {'0' * 32} to"),
        (["--role", "desk"], "Missing option '--name' (or --replaces KEY_ID)"),
    ]:
        refused = runner.invoke(main, ["keys", "create", *options])
        assert refused.exit_code == 2, refused.output
        assert said in refused.output, refused.output
        assert "Traceback" not in refused.output
    assert len(runner.invoke(main, ["keys", "list"]).output.splitlines()) == 2
    # rotated again: the newest key names the desk's first key, which the desk's decisions go by
    third = runner.invoke(main, ["keys", "create", "--role", "desk", "--replaces", new_id])
    [third_id] = re.findall(r"desk key (\w+) for", third.output)
    assert runner.invoke(main, ["keys", "list"]).output.splitlines()[2] == (
        f"{third_id}  desk     live       Nunukan 1  (replaces {new_id}, holder {old_id})"
    )


def test_serve_refuses_a_rule_pack_changed_in_place_naming_it(
    client: TestClient, env: dict[str, str], tmp_path: Path
) -> None:
    """The database knows lindung-default@VERSION (pinned when `client`'s server started);
    a copy of it edited under the same version is refused before any worker starts."""
    copy = tmp_path / "edited"
    shutil.copytree(bundled("default"), copy)
    rule = copy / "rules" / "sea_route_to_neighbour.yaml"
    rule.write_text(rule.read_text(encoding="utf-8") + "\n# tuned\n", encoding="utf-8")
    refused = subprocess.run(
        [LINDUNG, "serve", "--port", str(free_port())],
        env={**env, "LINDUNG_RULE_PACK": str(copy)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith("Error: rule pack lindung-default@"), refused.stderr
    assert "needs a new version" in refused.stderr
    assert "Traceback" not in refused.stderr


READING_COMMANDS = [
    ["outcomes", "export", "--out", "labelled.csv"],
    ["keys", "list"],
    ["audit", "verify"],
]


def tables_in(url: str) -> list[str]:
    engine = database.connect(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.mark.parametrize("command", READING_COMMANDS, ids=lambda command: command[0])
def test_a_command_that_only_reads_makes_no_database(
    command: list[str], database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, each made the database with its tables and said all was well: 0 cases
    exported, no keys, an intact audit trail of 0 entries."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    refused = CliRunner().invoke(main, command)
    assert refused.exit_code == 1, refused.output
    file = database.sqlite_file(database_url)
    if file is not None:  # not made yet
        assert refused.stderr == f"Error: database: no database at {file}\n"
        assert not file.exists()
    else:  # an empty schema
        assert refused.stderr == (
            "Error: database: no Lindung tables in LINDUNG_DATABASE_URL's database\n"
        )
        assert tables_in(database_url) == []
    assert not (tmp_path / "labelled.csv").exists()


@pytest.mark.parametrize("command", READING_COMMANDS, ids=lambda command: command[0])
def test_a_command_that_only_reads_neither_fills_nor_migrates_a_database(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    nested = tmp_path / "not-made" / "lindung.db"
    monkeypatch.setenv("LINDUNG_DATABASE_URL", f"sqlite:///{nested}")
    refused = runner.invoke(main, command)
    assert refused.stderr == f"Error: database: no database at {nested}\n"
    assert not nested.parent.exists()

    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    monkeypatch.setenv("LINDUNG_DATABASE_URL", f"sqlite:///{empty}")
    refused = runner.invoke(main, command)
    assert refused.exit_code == 1, refused.output
    assert refused.stderr == (
        "Error: database: no Lindung tables in LINDUNG_DATABASE_URL's database\n"
    )
    assert tables_in(f"sqlite:///{empty}") == []

    older = tmp_path / "older.db"
    engine = database.connect(f"sqlite:///{older}")
    migrate(engine, "0004")
    engine.dispose()
    monkeypatch.setenv("LINDUNG_DATABASE_URL", f"sqlite:///{older}")
    refused = runner.invoke(main, command)
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.startswith("Error: database: its schema is at revision 0004, ")
    assert len(refused.stderr.splitlines()) == 1
    with closing(sqlite3.connect(older)) as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0004",)
        ]
    assert not (tmp_path / "labelled.csv").exists()


def test_outcomes_export_writes_to_standard_output_or_names_a_file_it_cannot_write(
    client: TestClient,
    desk: Headers,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decision = screen(client, desk, documented_worker(case_id="L-1"))
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    assert client.post(url, json={"confirmed": "procedural"}, headers=desk).status_code == 201
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    to_file = runner.invoke(main, ["outcomes", "export", "--out", "labelled.csv"])
    assert to_file.exit_code == 0, to_file.output
    assert to_file.stderr == "1 labelled cases written to labelled.csv\n"
    written = (tmp_path / "labelled.csv").read_text(encoding="utf-8")
    assert written.splitlines()[0].endswith(",non_procedural")
    assert "L-1" in written

    # before, a file named - was written
    to_stdout = runner.invoke(main, ["outcomes", "export", "--out", "-"])
    assert to_stdout.exit_code == 0, to_stdout.output
    assert to_stdout.stdout == written
    assert to_stdout.stderr == "1 labelled cases written to standard output\n"
    assert not (tmp_path / "-").exists()

    # before, a FileNotFoundError's traceback
    missing = tmp_path / "nowhere" / "labelled.csv"
    refused = runner.invoke(main, ["outcomes", "export", "--out", str(missing)])
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"Error: Could not open file '{missing}': No such file or directory\n"
    )
    folder = runner.invoke(main, ["outcomes", "export", "--out", str(tmp_path)])
    assert folder.exit_code == 1
    assert folder.stderr == f"Error: Could not open file '{tmp_path}': Is a directory\n"
