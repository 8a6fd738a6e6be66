"""`lindung serve` as a desk meets it: real server processes on one database, over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.cli import main
from api.settings import bundled
from tests.api.servers import LINDUNG, Server, create_key, free_port, server_env
from tests.factories import tourist


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
    assert runner.invoke(main, ["keys", "list"]).output == ""
    made = runner.invoke(main, ["keys", "create", "--role", "desk", "--name", " Batam 1 "])
    assert made.exit_code == 0, made.output
    assert "desk     live       Batam 1\n" in runner.invoke(main, ["keys", "list"]).output


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
