"""`lindung serve` started as a real process, for the tests that talk to it over HTTP."""

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
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

LINDUNG = str(Path(sys.executable).parent / "lindung")
START_SECONDS = 120


def alive(pid: int) -> bool:
    """Whether the process `pid` runs (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_for(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_schema(server_url: str, prefix: str = "t") -> Iterator[str]:
    """A new, empty schema on the PostgreSQL server of `server_url`: the URL that works in it
    (its connections named after the schema), dropped with all it holds at the end."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        separator = "&" if "?" in server_url else "?"
        yield f"{server_url}{separator}application_name={schema}&options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def server_env(database_url: str, model_dir: Path, tmp_path: Path) -> dict[str, str]:
    """This process's environment without its LINDUNG_ settings, on the given database."""
    values = {k: v for k, v in os.environ.items() if not k.startswith("LINDUNG_")}
    values.pop("PROMETHEUS_MULTIPROC_DIR", None)
    values |= {"LINDUNG_DATABASE_URL": database_url, "LINDUNG_MODEL_DIR": str(model_dir)}
    values["LINDUNG_PACK_LIBRARY"] = str(tmp_path / "packs")
    return values


def create_key(env: dict[str, str], role: str, name: str) -> str:
    made = subprocess.run(
        [LINDUNG, "keys", "create", "--role", role, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip().splitlines()[-1]


class Server:
    def __init__(self, env: dict[str, str], log: Path, *options: str) -> None:
        self.port = free_port()
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [LINDUNG, "serve", "--host", "127.0.0.1", "--port", str(self.port), *options],
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
