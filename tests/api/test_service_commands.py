"""`lindung serve` as a desk meets it: real server processes on one database, over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.factories import tourist

LINDUNG = str(Path(sys.executable).parent / "lindung")
START_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [LINDUNG, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=5):
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise AssertionError(f"not ready in {START_SECONDS} s:\n{self.log.read_text()[-3000:]}")

    def post(self, path: str, body: Any, key: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def env(database_url: str, model_dir: Path, tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("LINDUNG_")}
    values.pop("PROMETHEUS_MULTIPROC_DIR", None)
    values |= {"LINDUNG_DATABASE_URL": database_url, "LINDUNG_MODEL_DIR": str(model_dir)}
    values["LINDUNG_PACK_LIBRARY"] = str(tmp_path / "packs")
    return values


@pytest.fixture
def desk_key(env: dict[str, str]) -> str:
    made = subprocess.run(
        [LINDUNG, "keys", "create", "--role", "desk", "--name", "Batam Centre"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip().splitlines()[-1]


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
