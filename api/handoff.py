"""A worker's side of the one queue of requests (api/serving.py): connections handed in by the
supervisor, answered here, and handed back once their answer has left.

Messages on the worker's channel (a Unix SOCK_SEQPACKET socket) are one letter and a
connection number:

- supervisor to worker: `T` take the connection (its file descriptor rides along the first time
  this worker is given it; the worker keeps it, reading paused, for the next time), `D` drop it
  (the connection is closed);
- worker to supervisor: `Y` ready (start-up done, no number), `R` released (answered; nothing
  of a next request read), `C` closed (the worker ended the connection, or the desk did).

A worker releases a connection only when no request of it is under way or half read and its
answer has left the process, so the next worker to take it starts at a request's first byte.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TAKE, DROP, READY, RELEASED, CLOSED = b"T", b"D", b"Y", b"R", b"C"
NUMBER = 8  # bytes of a connection number


def message(kind: bytes, number: int | None = None) -> bytes:
    return kind if number is None else kind + number.to_bytes(NUMBER, "big")


def parse(data: bytes) -> tuple[bytes, int | None]:
    kind, rest = data[:1], data[1:]
    return kind, int.from_bytes(rest, "big") if rest else None


class HandedConnection(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol on a connection that belongs to this worker only while it
    answers a request."""

    def __init__(self, *args: Any, number: int, worker: Worker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.number, self.worker = number, worker
        self.held = True  # given to this worker, not yet handed back
        self.dropping = False
        self.reading_request = False  # a request's bytes read, not all of it yet

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=0)  # resume_writing says the answer has left

    def take(self) -> None:
        self.held = True
        self.flow.resume_reading()

    def drop(self) -> None:
        self.dropping = True
        self.transport.close()

    def on_message_begin(self) -> None:
        self.reading_request = True
        super().on_message_begin()

    def on_message_complete(self) -> None:
        self.reading_request = False
        super().on_message_complete()
        self.release_if_done()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.release_if_done()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.release_if_done()

    def release_if_done(self) -> None:
        if (
            not self.held
            or self.reading_request
            or self.pipeline
            or (self.cycle is not None and not self.cycle.response_complete)
            or self.transport.is_closing()
            or self.transport.get_write_buffer_size()
        ):
            return
        self._unset_keepalive_if_required()  # the supervisor times idle connections out
        self.flow.pause_reading()
        self.held = False
        self.worker.send(message(RELEASED, self.number))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.worker.forget(self.number)
        if not self.dropping:
            self.worker.send(message(CLOSED, self.number))


class Worker:
    """Reads the supervisor's messages in the worker's event loop and keeps the connections
    this worker has been given."""

    def __init__(
        self, channel: socket.socket, make_protocol: Any, on_orphaned: Callable[[], None]
    ) -> None:
        self.channel, self.make_protocol, self.on_orphaned = channel, make_protocol, on_orphaned
        self.connections: dict[int, HandedConnection] = {}
        self.loop = asyncio.get_running_loop()

    def start(self) -> None:
        self.loop.add_reader(self.channel.fileno(), self._read)
        self.send(message(READY))

    def stop(self) -> None:
        self.loop.remove_reader(self.channel.fileno())

    def send(self, data: bytes) -> None:
        self.channel.send(data)

    def forget(self, number: int) -> None:
        self.connections.pop(number, None)

    def _read(self) -> None:
        while True:
            try:
                data, fds, _flags, _address = socket.recv_fds(
                    self.channel, 64, 1, socket.MSG_DONTWAIT
                )
            except BlockingIOError:
                return
            if not data:  # the supervisor is gone
                self.stop()
                self.on_orphaned()
                return
            kind, number = parse(data)
            assert number is not None
            if kind == TAKE:
                if fds:
                    self._adopt(number, socket.socket(fileno=fds[0]))
                else:
                    self.connections[number].take()
            elif kind == DROP:
                connection = self.connections.pop(number, None)
                if connection is not None:
                    connection.drop()

    def _adopt(self, number: int, sock: socket.socket) -> None:
        def protocol() -> HandedConnection:
            made: HandedConnection = self.make_protocol(number=number, worker=self)
            self.connections[number] = made
            return made

        self.loop.create_task(self.loop.connect_accepted_socket(protocol, sock))
