"""The HTTP API: `create_app(settings)` builds it; `lindung serve` runs it under uvicorn.

Errors are turned into responses here, in one place, each with a deliberate status and a body
`{"error": ..., "detail": ..., "field": ...}`.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import decision_schema, library, problem_schema
from api.deps import KeyCache
from api.desk_lane import DeskLane, declared_over
from api.metrics import ERRORS, LATENCY
from api.problems import Problem, TooLarge
from api.responses import JSONResponse
from api.routes import (
    activation,
    decisions,
    health,
    jobs,
    keys,
    referrals,
    registry,
    rules,
    screenings,
)
from api.service import Service
from api.settings import Settings
from api.storage import database, write_lock
from api.storage.database import connect
from engine.case_input import record_schema
from engine.errors import CaseError
from engine.screening import service_version

log = logging.getLogger("lindung.api")

# Bulk screenings (and the checks on a rescore job's upload) run in worker threads, beside the
# event loop's desks. A thread that gives up the interpreter lock (at every database call, every
# socket write) waits for it up to this long while another thread computes: at Python's default
# (5 ms) a desk's screening beside a 1,000-case bulk upload took up to half a second
# (bench/bulk_sync.py).
SWITCH_INTERVAL_S = 0.0005
# a process's connections that requests in worker threads never take: the event loop's, the
# checkpoints', a lock's turn, the jobs' keeper and a running job's
SPARE_CONNECTIONS = 5


def create_app(settings: Settings) -> FastAPI:
    service = Service(settings, connect(settings.database_url, serving=True))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            service.start()
        except BaseException:  # the pack refused, the database unreachable: nothing left open
            service.stop()
            sys.setswitchinterval(interval)
            raise
        most = database.connections_at_most(service.engine)
        if most is not None:
            # Requests in worker threads (each holding one connection at a time) are fewer than
            # the connections: those left are for what waits for one outside that limit, on the
            # event loop (the desks' screenings, the whole process waiting) or in threads of its
            # own (SQLite's checkpoints, a wait for another process's lock, a job)
            limiter = to_thread.current_default_thread_limiter()
            limiter.total_tokens = max(1, most - SPARE_CONNECTIONS)
        try:
            yield
        finally:
            service.stop()
            sys.setswitchinterval(interval)

    app = Lindung(
        max_request_bytes=settings.max_request_bytes,
        # our own Prometheus metrics; FastAPI's OpenTelemetry hooks would only add work
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
        default_response_class=JSONResponse,
        title="Lindung",
        version=service_version(),
        summary="Screening departures and placement files of Indonesian migrant workers",
        description=(
            "Decisions help an officer protect a person (counsel, refer, postpone, rescue); they "
            "are never a verdict of guilt. Send an API key as `Authorization: Bearer <key>`."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.keys = KeyCache()
    routers = (screenings, decisions, referrals, rules, registry, activation, keys, jobs, health)
    for module in routers:
        app.include_router(module.router)
    _handle_errors(app, settings)
    # a rescore job's file is streamed to disk, under its own limit (LINDUNG_MAX_UPLOAD_BYTES)
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes, exempt=("/v1/rescore-jobs",))
    app.add_middleware(RequestTimer)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


class Lindung(FastAPI):
    """FastAPI, with desks' screenings taking the desk lane past its stack (api/desk_lane.py)."""

    def __init__(self, *, max_request_bytes: int, **options: Any) -> None:
        super().__init__(**options)
        self.max_request_bytes = max_request_bytes

    def build_middleware_stack(self) -> ASGIApp:
        return DeskLane(self, super().build_middleware_stack(), self.max_request_bytes)


def app_from_env() -> FastAPI:
    """The app with settings from LINDUNG_* variables (for uvicorn's worker processes)."""
    return create_app(Settings())


def problem(status: int, error: str, detail: str, field: str | None, **extra: Any) -> JSONResponse:
    ERRORS.labels(str(status)).inc()
    return JSONResponse(
        {"error": error, "detail": detail, "field": field, **extra}, status_code=status
    )


_ERROR_NAMES = {404: "NotFound", 405: "MethodNotAllowed", 413: "TooLarge"}


def _handle_errors(app: FastAPI, settings: Settings) -> None:
    named_in = library.folders_named(settings)

    @app.exception_handler(CaseError)
    async def bad_case(request: Request, error: CaseError) -> JSONResponse:
        problems = [{"field": p.field, "problem": p.problem} for p in error.problems]
        return problem(422, "InvalidCase", str(error), error.field, problems=problems)

    @app.exception_handler(Problem)
    async def known(request: Request, error: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        detail = named_in(error.detail)  # the server's folders are not for its callers
        response = problem(error.status, type(error).__name__, detail, error.field)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            loc = item.get("loc", ())
            if loc[:1] == ("query",):  # a query parameter, whichever of its values is wrong
                loc = loc[1:2]
            where = [str(part) for part in loc if part != "body"]
            problems.append({"field": ".".join(where) or "body", "problem": item.get("msg", "")})
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        detail = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return problem(422, "InvalidRequest", detail, first["field"], problems=problems)

    @app.exception_handler(StarletteHTTPException)
    async def routing(request: Request, error: StarletteHTTPException) -> Response:
        """No such path (404), or not with this method (405): in the same shape as the rest."""
        if error.status_code < 400:
            return Response(status_code=error.status_code, headers=error.headers)
        response = problem(
            error.status_code,
            _ERROR_NAMES.get(error.status_code, "HTTPError"),
            f"{request.method} {request.url.path}: {error.detail}",
            None,
        )
        if error.headers:
            response.headers.update(error.headers)
        if error.status_code == 405:  # Starlette lists the methods of one route of the path
            response.headers["Allow"] = ", ".join(_methods(app, request.url.path))
        return response

    @app.exception_handler(ClientDisconnect)
    async def gone(request: Request, error: ClientDisconnect) -> Response:
        # The client left before sending its whole body: nothing was screened or stored, and
        # nobody is there to read an answer (499, as nginx logs it).
        return Response(status_code=499)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(sqlite3.Error)
    @app.exception_handler(PoolTimeout)
    async def database_trouble(request: Request, error: Exception) -> JSONResponse:
        # handled here, not only by the last resort, which the server then logs with its
        # traceback as a failure: in an outage, every request would log one
        return _database_problem(request, error) or _failed(request, error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # a database error raised outside the routes' handling (none is known) is answered alike
        return _database_problem(request, error) or _failed(request, error, logged=True)


def _database_problem(request: Request, error: Exception) -> JSONResponse | None:
    """The answer to a database that was busy or could not be reached, for a while: 503 with
    nothing stored, send it again; None for any other error."""
    if write_lock.busy(error):  # a request's wait in a thread (a bulk, an outcome) ran out
        log.warning("the database was busy on %s %s", request.method, request.url.path)
        held = (  # on PostgreSQL, where the server gives up on lock waits (lock_timeout)
            f"its write lock for longer than {database.SQLITE_BUSY_SECONDS} s"
            if isinstance(getattr(error, "orig", error), sqlite3.Error)
            else "a lock this request needs for longer than the server waits for one"
        )
        return problem(
            503,
            "Unavailable",
            f"the database is busy: another process held {held}; nothing was stored, send it again",
            "database",
        )
    if isinstance(error, PoolTimeout):  # requests hold every connection this server may open
        log.warning("no database connection came free on %s %s", request.method, request.url.path)
        return problem(
            503,
            "Unavailable",
            "the database is busy: every connection this server may open to it stayed in use "
            f"for {database.POOL_WAIT_SECONDS} s; nothing was stored, send it again",
            "database",
        )
    if database.unreachable(error):  # the server down or restarting: for a while
        log.warning(
            "the database could not be reached (%s) on %s %s",
            type(error).__name__,
            request.method,
            request.url.path,
        )
        return problem(
            503,
            "Unavailable",
            "the database could not be reached: nothing was stored, unless the connection "
            "was lost while committing; send it again once /readyz is ready (a screening "
            "sent again with its case_id and screened_at is answered from storage, never "
            "stored twice)",
            "database",
        )
    return None


def _failed(request: Request, error: Exception, *, logged: bool = False) -> JSONResponse:
    """500: the request failed, nothing was stored. Its traceback is logged here unless the
    server logs it (`logged`: the last resort's errors are raised on to the server)."""
    log.error(
        "unexpected %s on %s %s",
        type(error).__name__,
        request.method,
        request.url.path,
        exc_info=None if logged else error,
    )
    return problem(500, "InternalError", "the request failed; nothing was stored", None)


def _methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route takes at `path` (GET /v1/keys beside POST)."""
    found: set[str] = set()
    for context in iter_route_contexts(app.routes):
        regex = getattr(context, "path_regex", None)
        if regex is not None and regex.match(path):
            found |= context.methods or set()
    return sorted(found)


class RequestTimer:
    """Observes each request's time by route (plain ASGI: Starlette's `BaseHTTPMiddleware`
    costs more than a cached key check and a screening's parsing together)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            route = getattr(scope.get("route"), "path", "(unmatched)")
            LATENCY.labels(route).observe(time.perf_counter() - started)


class BodyLimit:
    """Refuses a body over `limit` bytes with 413, whether or not it declares its length."""

    def __init__(self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = ()) -> None:
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if declared_over(scope, self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        refused = TooLarge(self.limit)
        response = problem(refused.status, "TooLarge", refused.detail, refused.field)
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, with the case record v1 as the body of the screening endpoints,
    decision v1 as their answer, and the Problem as every error's body."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    case = record_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(case.pop("$defs", {}))
    components["CaseRecordV1"] = case
    one = {"$ref": "#/components/schemas/CaseRecordV1"}
    paths = schema["paths"]
    for path, body in (
        ("/v1/screenings", one),  # read by the handler itself: its schema is given here
        (
            "/v1/screenings/bulk",
            {
                "type": "object",
                "properties": {
                    "cases": {"type": "array", "items": one, "minItems": 1, "maxItems": 1000}
                },
                "required": ["cases"],
                "additionalProperties": False,
            },
        ),
    ):
        content = paths[path]["post"]["requestBody"]["content"]["application/json"]
        content["schema"] = body
    components.update(decision_schema.SCHEMAS)
    for path, answer in (
        ("/v1/screenings", "DecisionV1"),
        ("/v1/screenings/bulk", "BulkDecisionsV1"),
    ):
        created = paths[path]["post"]["responses"]["201"]
        created["content"]["application/json"]["schema"] = {
            "$ref": f"#/components/schemas/{answer}"
        }
        created["headers"] = decision_schema.REPLAYED_HEADER
    problem_schema.publish(schema)
    app.openapi_schema = schema
    return schema
