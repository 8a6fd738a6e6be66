"""The desk lane: a desk's screening (POST /v1/screenings) goes straight to its endpoint.

Every other request goes through FastAPI's stack: its middleware, its router (each route tried in
turn) and its solving of each route's dependencies. Those cost a desk's screening about 0.3 ms
of the 3 ms it takes at 200 requests/s, where the issue asks for a p99 under 10 ms
(bench/request_cost.py); the lane skips them and does the same work itself: the same checks in
the same order (the body's declared length, the key, the body read up to the limit), the same
endpoint function (`api.routes.screenings.screen`), the app's own exception handlers for its
errors, and the same latency metric. The route stays declared with FastAPI, which documents it
and serves it where the lane does not take it (an app mounted under a root path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import bearer, desk_only
from api.metrics import LATENCY
from api.problems import TooLarge
from api.routes import screenings

PATH = "/v1/screenings"


class DeskLane:
    """Takes desks' screenings to their endpoint; passes every other request to `stack`."""

    def __init__(self, app: FastAPI, stack: ASGIApp, limit: int) -> None:
        self.app, self.stack, self.limit = app, stack, limit
        self.handlers: dict[Any, Callable[..., Any]] = dict(app.exception_handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("root_path")
        ):
            await self.stack(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self._screen(scope, receive, send)
        finally:
            LATENCY.labels(PATH).observe(time.perf_counter() - started)

    async def _screen(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.app
        scope["endpoint"] = screenings.screen  # for the key's check of repeated parameters
        body = b""

        async def read() -> Message:  # the body, once the lane has read it
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request(scope, read, send)
        try:
            if declared_over(scope, self.limit):
                raise TooLarge(self.limit)
            caller = await desk_only(request, await bearer(request))
            body = await self._body(receive)
            response = await screenings.screen(request, self.app.state.service, caller)
        except Exception as error:
            handler = self._handler_for(error)
            if handler is None:
                raise
            response = await handler(request, error)
            await self._send(response, request, receive, send)
            if handler is self.handlers.get(Exception):
                raise  # as Starlette's outermost middleware does: the server logs it
            return
        await self._send(response, request, receive, send)

    async def _send(self, response: Any, request: Request, receive: Receive, send: Send) -> None:
        """Send the answer; a failure while sending it is logged and counted by the app's last
        resort, as Starlette's outermost middleware does, and raised for the server."""
        try:
            await response(request.scope, receive, send)
        except Exception as error:
            last_resort = self.handlers.get(Exception)
            if last_resort is not None:
                await last_resort(request, error)  # the answer has begun: nothing more is sent
            raise

    async def _body(self, receive: Receive) -> bytes:
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                raise TooLarge(self.limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _handler_for(self, error: BaseException) -> Callable[..., Any] | None:
        """The app's handler for `error`'s class or its nearest base, as Starlette finds it."""
        for kind in type(error).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None


def declared_over(scope: Scope, limit: int) -> bool:
    """Whether the request declares a body over `limit` bytes (its last Content-Length, in
    ASCII digits)."""
    declared = dict(scope["headers"]).get(b"content-length")
    return declared is not None and declared.isdigit() and int(declared) > limit
