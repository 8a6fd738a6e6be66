"""`lindung serve --workers N`: one queue of requests for every worker (a desk's connection is
not pinned to a worker), HTTP/1.1 kept whole across the handing over, a worker that dies
replaced, all stopped together."""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.api.servers import LINDUNG, Server, create_key, free_port, server_env
from tests.factories import tourist


@pytest.fixture
def env(model_dir: Path, tmp_path: Path) -> dict[str, str]:
    return server_env(f"sqlite:///{tmp_path / 'lindung.db'}", model_dir, tmp_path)


@pytest.fixture
def served(env: dict[str, str], tmp_path: Path) -> Iterator[Server]:
    server = Server(env, tmp_path / "server.log", "--workers", "2")
    try:
        server.wait_ready()
        wait_for(lambda: len(workers(server.process.pid)) == 2)
        yield server
    finally:
        server.stop()


def workers(pid: int) -> list[int]:
    """The processes `pid` started that serve (not multiprocessing's helpers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return sorted(found)


def wait_for(check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s")
        time.sleep(0.2)


def answer(connection: http.client.HTTPConnection, path: str = "/healthz") -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    return response.status


def holder(server: Server, desk: socket.socket) -> int:
    """The worker that was handed `desk`'s connection (the first to hold its descriptor)."""
    client_port = desk.getsockname()[1]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        table = (line.split() for line in Path("/proc/net/tcp").read_text().splitlines())
        ends = (f":{server.port:04X}", f":{client_port:04X}")
        inodes = {fields[9] for fields in table if (fields[1][-5:], fields[2][-5:]) == ends}
        for pid in workers(server.process.pid):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd)[len("socket:[") : -1] in inodes:
                        return pid
        time.sleep(0.05)
    raise AssertionError("no worker holds the connection")


@contextlib.contextmanager
def busy_worker(server: Server) -> Iterator[int]:
    """A worker busy with a desk's request: it answered early and waits for the request's body
    (so the supervisor counts it busy), and is frozen (SIGSTOP) so that it could not answer
    anything else. Its pid; when the block ends it wakes and the desk leaves."""
    desk = socket.create_connection(("127.0.0.1", server.port), timeout=20)
    try:
        desk.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        assert desk.recv(65536).startswith(b"HTTP/1.1 200 ")
        pid = holder(server, desk)
        os.kill(pid, signal.SIGSTOP)
        try:
            yield pid
        finally:
            os.kill(pid, signal.SIGCONT)
    finally:
        desk.close()


def test_a_desks_requests_go_to_whichever_worker_is_free(served: Server) -> None:
    # One worker is busy with a request (and frozen, so it could answer nothing else): every
    # desk's next requests, on the connections they already had, are answered by the other.
    # Were connections pinned to the worker that first took them (the kernel's spread), the
    # desks on the busy worker would wait until it was done.
    desks = [http.client.HTTPConnection("127.0.0.1", served.port, timeout=20) for _ in range(6)]
    try:
        for desk in desks:
            assert answer(desk) == 200
        for _ in range(2):  # the worker made busy need not be the same one each time
            with busy_worker(served):
                for _ in range(3):
                    for desk in desks:
                        assert answer(desk) == 200
    finally:
        for desk in desks:
            desk.close()


def test_pipelined_requests_are_answered_in_order(served: Server) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: a\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):  # the server ends the connection after the third
            received += chunk
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", received) == [b"200", b"404", b"200"]


def test_a_request_split_over_several_writes_is_read_whole(served: Server) -> None:
    body = b'{"not": "a case"}'
    head = (
        b"POST /v1/screenings HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        for part in (head[:10], head[10:], body[:5], body[5:]):
            sock.sendall(part)
            time.sleep(0.1)  # each part its own segment, maybe its own handing over
        first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 401 ")  # the whole request was read: no key


def test_an_oversized_body_is_refused_and_the_connection_still_serves(
    served: Server,
) -> None:
    desk = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
    try:
        desk.request("POST", "/v1/screenings", body=b"x" * 4_100_000)
        refused = desk.getresponse()
        refused.read()
        assert refused.status == 413
        if refused.getheader("connection") != "close":
            assert answer(desk) == 200
    finally:
        desk.close()


def test_a_desk_that_asks_to_close_sees_the_connection_end(served: Server) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := sock.recv(65536):  # ends (FIN) though other processes hold the socket
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")


def test_an_idle_connection_is_closed_after_the_keep_alive_time(served: Server) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        started = time.monotonic()
        assert sock.recv(65536) == b""  # uvicorn's keep-alive time is 5 s
        assert 4 < time.monotonic() - started < 8


def test_a_worker_that_dies_is_replaced(served: Server, env: dict[str, str]) -> None:
    first = workers(served.process.pid)
    assert len(first) == 2
    desk = http.client.HTTPConnection("127.0.0.1", served.port, timeout=20)
    try:
        assert answer(desk) == 200
        os.kill(first[0], signal.SIGKILL)
        wait_for(lambda: len(set(workers(served.process.pid)) - set(first)) == 1)
        [replacement] = set(workers(served.process.pid)) - set(first)
        assert answer(desk) == 200  # the desk's connection outlives the worker
        ready = f"worker {replacement} is ready in place of the one that ended"
        wait_for(lambda: ready in served.log.read_text())
        key = create_key(env, "desk", "D1")
        # One of the two is busy (it answered the helper's request) and the other screens: the
        # replacement did one or the other.
        with busy_worker(served) as busy:
            status, decision = served.post("/v1/screenings", tourist(), key)
            assert status == 201
            assert decision["tier"] in {"clear", "review", "high", "urgent"}
        assert busy in {first[1], replacement}
    finally:
        desk.close()


def test_a_worker_killed_mid_request_ends_only_that_connection(served: Server) -> None:
    pids = workers(served.process.pid)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # the request below waits in a worker's hands
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        time.sleep(0.5)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        assert sock.recv(65536) == b""  # ended, not left hanging
    wait_for(lambda: len(set(workers(served.process.pid)) - set(pids)) == 2)
    desk = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    try:
        assert answer(desk) == 200  # once a new worker is ready
    finally:
        desk.close()


def test_stopping_the_service_stops_every_worker(served: Server) -> None:
    started = workers(served.process.pid)
    assert len(started) == 2
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(timeout=60) == 0
    assert not [pid for pid in started if Path(f"/proc/{pid}").exists()]


def test_workers_leave_when_the_supervisor_is_killed(served: Server) -> None:
    started = workers(served.process.pid)
    assert len(started) == 2
    served.process.kill()
    served.process.wait(timeout=10)
    wait_for(lambda: not [pid for pid in started if Path(f"/proc/{pid}/cmdline").exists()])


@pytest.mark.parametrize("holder", ["plain", "shared"])
def test_a_port_in_use_is_refused_before_start_up(env: dict[str, str], holder: str) -> None:
    port = free_port()
    with socket.socket() as taken:
        if holder == "shared":  # as another `lindung serve --workers` holds it
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        refused = subprocess.run(
            [LINDUNG, "serve", "--port", str(port), "--workers", "2"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert refused.returncode != 0
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use" in refused.stderr
    assert time.monotonic() - started < 10  # before migrating and loading the model
