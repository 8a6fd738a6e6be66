"""Serving the HTTP API from several processes, each listening on a socket of its own.

uvicorn's own workers share one listening socket, and the worker that wakes first accepts every
connection waiting: 20 desk connections opened together went 18 to one worker and 2 to the
other, and the first worker queued its desks while the second idled (p50 16 ms at 200 screenings
a second, where one request takes 4 ms). Here each worker binds the address with SO_REUSEPORT
and the kernel spreads new connections over the workers.

The supervisor keeps the address bound (never listening, so the kernel hands it no connection),
starts the workers, starts a new one in place of a worker that died, and stops them all on
SIGINT or SIGTERM. A worker that fails to start (bad settings, no database) stops the service.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import socket
import threading
from multiprocessing.process import BaseProcess

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("lindung.serve")
STOP_SECONDS = 30  # for a worker to finish its requests once asked to stop


def reserve(host: str, port: int) -> socket.socket:
    """The address, bound for the workers to share: OSError if anything else holds it (another
    server sharing it with SO_REUSEPORT included)."""
    with _socket(host, share=False) as probe:
        probe.bind((host, port))
        port = probe.getsockname()[1]  # port 0: the free port the kernel chose
    return shared_socket(host, port)


def shared_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) that other sockets of this user may bind too."""
    sock = _socket(host, share=True)
    sock.bind((host, port))
    return sock


def _socket(host: str, *, share: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if share:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


def serve_workers(config: uvicorn.Config, workers: int, reserved: socket.socket) -> int:
    """Serve `config`'s app from `workers` processes on the address `reserved` holds, until a
    signal stops them; the exit code."""
    address = reserved.getsockname()[:2]
    stopping = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda _signal, _frame: stopping.set())
    processes = [_start(config, address) for _ in range(workers)]
    code = 0
    try:
        while not stopping.wait(0.5):
            for index, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("a worker could not start; stopping the service")
                    stopping.set()
                    code = STARTUP_FAILURE
                    break
                log.warning(
                    "worker %s ended (exit %s); starting another", process.pid, process.exitcode
                )
                processes[index] = _start(config, address)
    finally:
        _stop(processes)
        reserved.close()
    return code


def _start(config: uvicorn.Config, address: tuple[str, int]) -> BaseProcess:
    process = multiprocessing.get_context("spawn").Process(
        target=_worker, args=(config, address), name="lindung-worker"
    )
    process.start()
    return process


def _stop(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes the requests under way
    for process in processes:
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()


def _worker(config: uvicorn.Config, address: tuple[str, int]) -> None:
    config.configure_logging()
    sock = shared_socket(*address)
    with contextlib.suppress(KeyboardInterrupt):  # a terminal's Ctrl-C reaches every worker
        uvicorn.Server(config).run(sockets=[sock])
