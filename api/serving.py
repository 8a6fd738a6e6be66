"""Serving the HTTP API from several processes with one queue of requests for all of them.

When each worker accepts connections of its own, a desk's connection stays with the worker that
took it, and each worker is a queue of its own: a request waits behind another on its worker
while the other worker idles. At 200 screenings a second that queueing set p99 (3.5 times a
request's time; one queue for both would make it about 2.4 times).

So the supervisor accepts every connection and watches it while no worker has it. When a
request's first bytes arrive, it hands the connection to the worker with the fewest in hand,
and on a tie to the one that went idle last (its caches are the warmest). The connection's file
descriptor travels once to each worker (SCM_RIGHTS, api/handoff.py); after that, a message of
nine bytes hands it over. The worker reads the request and answers on the connection itself, so
no answer passes through the supervisor, and hands the connection back once its answer has
left. The supervisor closes connections idle for longer than uvicorn's keep-alive time. It
answers nothing until every worker has started, so that a burst at start-up is not all handed to
the first worker ready.

The supervisor also starts the workers, starts a new one in place of a worker that died (closing
the connections it was answering), and stops them all on SIGINT or SIGTERM. A worker that fails
to start (bad settings, no database) stops the service.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import select
import signal
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from api import handoff

log = logging.getLogger("lindung.serve")
STOP_SECONDS = 30  # for a worker to finish its requests once asked to stop
WATCHED = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT


def reserve(host: str, port: int) -> socket.socket:
    """The address, listening: OSError if anything else holds it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@dataclass
class Connection:
    number: int
    sock: socket.socket
    holder: Worker | None = None
    known_by: set[int] = field(default_factory=set)  # workers that have its descriptor
    idle_since: float = 0.0


@dataclass
class Worker:
    index: int
    process: BaseProcess
    channel: socket.socket
    replacing: bool = False  # started in place of a worker that ended
    ready: bool = False
    holding: int = 0
    idle_since: float = 0.0  # when it last handed a connection back
    handed_at: float = 0.0  # when it was last handed one

    @property
    def pid(self) -> int | None:
        return self.process.pid


class Supervisor:
    def __init__(self, config: uvicorn.Config, workers: int, listener: socket.socket) -> None:
        self.config, self.listener = config, listener
        self.keep_alive = float(config.timeout_keep_alive)
        self.poll = select.epoll()
        self.wake_read, self.wake_write = socket.socketpair()
        self.wake_write.setblocking(False)
        self.stopping = False
        self.started = False  # every worker has been ready once: until then, requests wait
        self.code = 0
        self.connections: dict[int, Connection] = {}
        self.by_fd: dict[int, Connection] = {}
        self.waiting: list[Connection] = []  # readable while no worker was ready
        self.numbers = iter(range(1, 2**63))
        self.workers: list[Worker] = []
        self.by_channel: dict[int, Worker] = {}
        self.count = workers

    def run(self) -> int:
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, self._stop_signal)
        signal.set_wakeup_fd(self.wake_write.fileno())
        self.poll.register(self.wake_read.fileno(), select.EPOLLIN)
        self.poll.register(self.listener.fileno(), select.EPOLLIN)
        last_check = time.monotonic()
        try:
            for index in range(self.count):
                self._start(index)
            while not self.stopping:
                # the workers' messages first: who is free is then known before handing
                events = sorted(
                    self.poll.poll(0.5), key=lambda event: event[0] not in self.by_channel
                )
                for fd, _events in events:
                    self._event(fd)
                now = time.monotonic()
                if now - last_check >= 0.5:
                    last_check = now
                    self._check_workers()
                    self._close_idle(now)
        finally:
            self._stop_all()
        return self.code

    def _stop_signal(self, _signal: int, _frame: Any) -> None:
        self.stopping = True

    def _event(self, fd: int) -> None:
        if fd == self.listener.fileno():
            self._accept()
        elif fd == self.wake_read.fileno():
            with contextlib.suppress(BlockingIOError):
                self.wake_read.recv(64, socket.MSG_DONTWAIT)
        elif fd in self.by_channel:
            self._hear(self.by_channel[fd])
        elif fd in self.by_fd:
            self._hand(self.by_fd[fd])

    def _accept(self) -> None:
        while True:
            try:
                sock, _address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of descriptors, say: the next poll tries again
                log.warning("accepting a connection failed: %s", error)
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = Connection(next(self.numbers), sock, idle_since=time.monotonic())
            self.connections[connection.number] = connection
            self.by_fd[sock.fileno()] = connection
            self.poll.register(sock.fileno(), WATCHED)

    def _hand(self, connection: Connection) -> None:
        """A request's first bytes (or the desk's goodbye) arrived on a connection no worker
        has: hand it to the worker with the fewest in hand."""
        worker = self._least_busy()
        if worker is not None and worker.holding:
            # A worker hands a connection back just after answering on it, and that desk (or
            # another) may ask again before the supervisor has read so: read first.
            for other in list(self.workers):
                if other.channel.fileno() in self.by_channel:
                    self._hear(other)
            worker = self._least_busy()
        if worker is None:
            self.waiting.append(connection)
            return
        data = handoff.message(handoff.TAKE, connection.number)
        try:
            if worker.index in connection.known_by:
                worker.channel.send(data)
            else:
                socket.send_fds(worker.channel, [data], [connection.sock.fileno()])
                connection.known_by.add(worker.index)
        except OSError:  # the worker died: its channel's end is read next and it is replaced
            self._rewatch(connection)
            return
        connection.holder = worker
        worker.holding += 1
        worker.handed_at = time.monotonic()

    def _least_busy(self) -> Worker | None:
        """The worker with the fewest connections in hand. Among idle ones, the one idle last
        (its caches are the warmest); among busy ones, the one handed a request last (one that
        has held a request for long is in a long one: a bulk upload, an export)."""
        ready = [worker for worker in self.workers if worker.ready] if self.started else []

        def key(worker: Worker) -> tuple[int, float]:
            return worker.holding, -(worker.handed_at if worker.holding else worker.idle_since)

        return min(ready, key=key, default=None)

    def _hear(self, worker: Worker) -> None:
        while True:
            try:
                data = worker.channel.recv(64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost(worker)
                return
            kind, number = handoff.parse(data)
            if kind == handoff.READY:
                self._ready(worker)
            elif number is not None:
                self._returned(worker, kind, number)

    def _ready(self, worker: Worker) -> None:
        worker.ready, worker.idle_since = True, time.monotonic()
        if worker.replacing:
            log.warning("worker %s is ready in place of the one that ended", worker.pid)
        self.started = self.started or all(other.ready for other in self.workers)
        waiting, self.waiting = self.waiting, []
        for connection in waiting:
            if connection.number in self.connections:
                self._hand(connection)

    def _returned(self, worker: Worker, kind: bytes, number: int) -> None:
        """A worker is done with a connection: answered (watch it for the next request) or
        closed (end it)."""
        connection = self.connections.get(number)
        if connection is None or connection.holder is not worker:
            return  # closed meanwhile, or a worker's copy closed as it stops
        worker.holding -= 1
        connection.holder = None
        if kind == handoff.RELEASED:
            worker.idle_since = connection.idle_since = time.monotonic()
            self._rewatch(connection)
        elif kind == handoff.CLOSED:
            self._close(connection)

    def _rewatch(self, connection: Connection) -> None:
        try:
            self.poll.modify(connection.sock.fileno(), WATCHED)
        except OSError:
            self._close(connection)

    def _close(self, connection: Connection) -> None:
        """End a connection: its FIN goes out now, whatever other workers still hold."""
        self.connections.pop(connection.number, None)
        self.by_fd.pop(connection.sock.fileno(), None)
        with contextlib.suppress(OSError):
            self.poll.unregister(connection.sock.fileno())
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)
        connection.sock.close()
        if connection.holder is not None:
            connection.holder.holding -= 1
            connection.holder = None
        for worker in self.workers:
            if worker.index in connection.known_by and worker.ready:
                with contextlib.suppress(OSError):
                    worker.channel.send(handoff.message(handoff.DROP, connection.number))

    def _close_idle(self, now: float) -> None:
        """Close connections that sent nothing for the keep-alive time (not those whose
        request waits for a worker to start)."""
        asking = {id(connection) for connection in self.waiting}
        for connection in list(self.connections.values()):
            idle = connection.holder is None and id(connection) not in asking
            if idle and now - connection.idle_since > self.keep_alive:
                self._close(connection)

    def _start(self, index: int, replacing: bool = False) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        process = multiprocessing.get_context("spawn").Process(
            target=_worker, args=(self.config, theirs), name="lindung-worker"
        )
        process.start()
        theirs.close()
        worker = Worker(index, process, ours, replacing)
        if index < len(self.workers):
            self.workers[index] = worker
        else:
            self.workers.append(worker)
        self.by_channel[ours.fileno()] = worker
        self.poll.register(ours.fileno(), select.EPOLLIN)

    def _lost(self, worker: Worker) -> None:
        """A worker's channel closed: it died. Its connections close; another takes its place
        (unless it never started, which stops the service)."""
        self.by_channel.pop(worker.channel.fileno(), None)
        with contextlib.suppress(OSError):
            self.poll.unregister(worker.channel.fileno())
        worker.channel.close()
        worker.ready = False
        for connection in list(self.connections.values()):
            connection.known_by.discard(worker.index)
            if connection.holder is worker:
                self._close(connection)
        worker.process.join(STOP_SECONDS)
        if self.stopping:
            return
        if worker.process.exitcode == STARTUP_FAILURE:
            log.error("a worker could not start; stopping the service")
            self.stopping, self.code = True, STARTUP_FAILURE
            return
        log.warning(
            "worker %s ended (exit %s); starting another",
            worker.process.pid,
            worker.process.exitcode,
        )
        self._start(worker.index, replacing=True)

    def _check_workers(self) -> None:
        for worker in list(self.workers):
            if not worker.process.is_alive() and worker.channel.fileno() in self.by_channel:
                self._lost(worker)

    def _stop_all(self) -> None:
        self.listener.close()
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()  # SIGTERM: uvicorn finishes the requests under way
        deadline = time.monotonic() + STOP_SECONDS
        for worker in self.workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        for connection in list(self.connections.values()):
            self._close(connection)


def serve_workers(config: uvicorn.Config, workers: int, listener: socket.socket) -> int:
    """Serve `config`'s app from `workers` processes on `listener`, until a signal stops
    them; the exit code."""
    return Supervisor(config, workers, listener).run()


class WorkerServer(uvicorn.Server):
    """uvicorn's server with no socket of its own: connections come from the supervisor."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self.channel = channel
        self.handoff: handoff.Worker | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])
        if self.should_exit:
            return
        config, state = self.config, self.server_state

        def make(**handed: Any) -> handoff.HandedConnection:
            return handoff.HandedConnection(
                config=config, server_state=state, app_state=self.lifespan.state, **handed
            )

        self.handoff = handoff.Worker(self.channel, make, on_orphaned=self._orphaned)
        self.handoff.start()

    def _orphaned(self) -> None:
        """The supervisor is gone (killed): nobody hands this worker anything any more."""
        self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.handoff is not None:
            self.handoff.stop()
        await super().shutdown(sockets=sockets)


def _worker(config: uvicorn.Config, channel: socket.socket) -> None:
    config.configure_logging()
    with contextlib.suppress(KeyboardInterrupt):  # a terminal's Ctrl-C reaches every worker
        WorkerServer(config, channel).run()
