"""Serving the HTTP API from several processes: each new connection goes to the worker holding
the fewest.

The supervisor listens on the address, accepts each desk's connection and hands it (its file
descriptor, over a Unix socket) to the ready worker that holds the fewest connections; the
worker serves it until it closes and then says so. A connection stays with one worker, so a
request costs no extra hop.

How connections were spread before, and why it mattered at 200 screenings a second:
- uvicorn's own workers share one listening socket, and the worker that wakes first accepts
  every connection waiting: 20 desk connections opened together went 18 to one worker and 2 to
  the other (p50 16 ms, where one request takes 4 ms);
- a socket of its own for each worker (SO_REUSEPORT) lets the kernel hash connections over
  them: 20 connections split anywhere from 54/46 to 80/20, and a worker's queue grows with its
  share (simulated p99: 9.0 ms at 50/50, 11.9 ms at 80/20).

The supervisor also starts the workers, starts a new one in place of a worker that died, and
stops them all on SIGINT or SIGTERM. A worker that fails to start (bad settings, no database)
stops the service; a worker whose supervisor is gone stops too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import selectors
import signal
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

log = logging.getLogger("lindung.serve")
STOP_SECONDS = 30  # for a worker to finish its requests once asked to stop
# worker to supervisor: ready, stopping (hand me nothing more), a connection closed;
# supervisor to worker: take this connection (its descriptor rides along)
READY, STOPPING, CLOSED, TAKE = b"Y", b"S", b"C", b"T"
GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF)  # a channel's end closed
ACCEPT_PAUSE = 0.1  # seconds without accepting after accept() fails (out of descriptors)
BACKLOG = 2048


def reserve(host: str, port: int) -> socket.socket:
    """A socket listening on (host, port): OSError if anything else holds the address (a server
    sharing it with SO_REUSEPORT included)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(eq=False)
class Worker:
    """A worker process, the supervisor's end of its channel, and the connections it holds."""

    process: BaseProcess
    channel: socket.socket
    ready: bool = False
    started: bool = False  # it was ready once
    connections: int = 0
    handed: int = 0  # connections ever handed: ties go to the one given fewer


def serve_workers(config: uvicorn.Config, workers: int, listener: socket.socket) -> int:
    """Serve `config`'s app from `workers` processes on the address `listener` listens on,
    until a signal stops them; the exit code."""
    return Supervisor(config, workers, listener).run()


class Supervisor:
    def __init__(self, config: uvicorn.Config, workers: int, listener: socket.socket) -> None:
        self.config, self.listener = config, listener
        self.stopping = threading.Event()
        # from before the first worker starts: a stop during start-up also ends in run()'s
        # clean-up, and returns to the caller (which removes the folder it made for metrics)
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, lambda _signal, _frame: self.stopping.set())
        self.selector = selectors.DefaultSelector()
        self.workers = [self._start() for _ in range(workers)]
        self.accepting = False
        self.paused_until = 0.0  # accept() failed: try again then
        self.code = 0

    def run(self) -> int:
        self.listener.setblocking(False)
        try:
            while not self.stopping.is_set():
                for key, _events in self.selector.select(timeout=ACCEPT_PAUSE):
                    if key.data is None:
                        self._accept()
                    else:
                        self._hear(key.data)
                if self.stopping.is_set():  # a Ctrl-C reaches the workers too: replace none
                    break
                self._replace_dead()
                if self.paused_until and time.monotonic() >= self.paused_until:
                    self.paused_until = 0.0
                    self._accept_if_ready()
        finally:
            self.listener.close()
            _stop([worker.process for worker in self.workers])
            for worker in self.workers:
                worker.channel.close()
            self.selector.close()
        return self.code

    def _start(self) -> Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = multiprocessing.get_context("spawn").Process(
            target=_worker, args=(self.config, theirs), name="lindung-worker"
        )
        process.start()
        theirs.close()
        ours.setblocking(False)
        worker = Worker(process, ours)
        self.selector.register(ours, selectors.EVENT_READ, worker)
        return worker

    def _accept(self) -> None:
        while self.accepting:  # every worker may die meanwhile
            try:
                connection, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of descriptors, say: the desk waits in the queue
                log.warning("could not accept a connection: %s", error)
                self.paused_until = time.monotonic() + ACCEPT_PAUSE
                self._accept_if_ready()
                return
            with connection:
                self._hand(connection)

    def _hand(self, connection: socket.socket) -> None:
        for worker in sorted(
            (worker for worker in self.workers if worker.ready),
            key=lambda worker: (worker.connections, worker.handed),
        ):
            try:
                socket.send_fds(worker.channel, [TAKE], [connection.fileno()])
            except OSError as error:
                if error.errno in GONE:  # it died meanwhile: _replace_dead starts another
                    self._lost(worker)
                # else its channel is full (its loop is held up): try the next one
                continue
            worker.connections += 1
            worker.handed += 1
            return
        log.warning("no worker could take a connection; closed it")

    def _hear(self, worker: Worker) -> None:
        while True:
            try:
                message = worker.channel.recv(16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message = b""
            if message == READY:
                worker.ready = worker.started = True
                self._accept_if_ready()
            elif message == STOPPING:
                worker.ready = False
                self._accept_if_ready()
            elif message == CLOSED:
                worker.connections = max(0, worker.connections - 1)
            else:  # the worker's end closed: it died
                self._lost(worker)
                return

    def _lost(self, worker: Worker) -> None:
        """`worker` died, or is dying: hand it nothing more."""
        worker.ready = False
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(worker.channel)
        self._accept_if_ready()

    def _accept_if_ready(self) -> None:
        """Accept connections only while some worker can take them: else they wait in the
        listening queue (start-up, every worker replaced, accept() failing)."""
        accept = not self.paused_until and any(worker.ready for worker in self.workers)
        if accept and not self.accepting:
            self.selector.register(self.listener, selectors.EVENT_READ, None)
        elif not accept and self.accepting:
            self.selector.unregister(self.listener)
        self.accepting = accept

    def _replace_dead(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.process.is_alive():
                continue
            self._lost(worker)
            worker.channel.close()
            if not worker.started or worker.process.exitcode == STARTUP_FAILURE:
                log.error("a worker could not start; stopping the service")
                self.code = STARTUP_FAILURE
                self.stopping.set()
                return
            log.warning(
                "worker %s ended (exit %s); starting another",
                worker.process.pid,
                worker.process.exitcode,
            )
            self.workers[index] = self._start()


def _stop(processes: list[BaseProcess]) -> None:
    for process in processes:
        if process.is_alive():
            process.terminate()  # SIGTERM: uvicorn finishes the requests under way
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


class HandedServer(uvicorn.Server):
    """uvicorn's server, serving the connections the supervisor hands over `channel` rather
    than a listening socket of its own."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # no listening socket
        loop = asyncio.get_running_loop()
        protocol_class = _reporting_close(self.config.http_protocol_class, self.channel)

        def protocol() -> asyncio.Protocol:
            return protocol_class(  # type: ignore[no-any-return]
                config=self.config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=loop,
            )

        connecting: set[asyncio.Task[Any]] = set()

        def take() -> None:
            try:
                message, fds, _flags, _address = socket.recv_fds(self.channel, 16, 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                message, fds = b"", []
            for fd in fds:
                handed = socket.socket(fileno=fd)
                task = loop.create_task(loop.connect_accepted_socket(protocol, handed))
                connecting.add(task)  # held until done: the loop keeps only a weak reference
                task.add_done_callback(connecting.discard)
            if not message:  # the supervisor is gone
                loop.remove_reader(self.channel.fileno())
                self.should_exit = True

        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), take)
        self.channel.send(READY)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone
            self.channel.send(STOPPING)
        asyncio.get_running_loop().remove_reader(self.channel.fileno())
        await super().shutdown(sockets)


def _reporting_close(protocol_class: type[Any], channel: socket.socket) -> type[Any]:
    """`protocol_class` (uvicorn's HTTP protocol), telling the supervisor when its connection
    closes."""

    class Reporting(protocol_class):  # type: ignore[misc]
        def connection_lost(self, exc: Exception | None) -> None:
            super().connection_lost(exc)
            with contextlib.suppress(OSError):  # the supervisor is gone, or stopping
                channel.send(CLOSED)

    return Reporting


def _worker(config: uvicorn.Config, channel: socket.socket) -> None:
    config.configure_logging()
    with contextlib.suppress(KeyboardInterrupt):  # a terminal's Ctrl-C reaches every worker
        HandedServer(config, channel).run()
