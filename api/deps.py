"""What handlers depend on, declared once: the service, the caller and their role."""

from __future__ import annotations

import functools
import threading
import time
import types
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from api.problems import Invalid, NotFound, Problem
from api.service import Service
from api.storage import database, keys
from api.storage.keys import Caller


class Unauthorised(Problem):
    status = 401


class Forbidden(Problem):
    status = 403


async def get_service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]

bearer = HTTPBearer(auto_error=False, description="An API key from `lindung keys create`")
KEY_CACHE_SECONDS = 2.0  # a revoked key stops working in other processes within this time


class KeyCache:
    """Recently seen keys, so a busy desk does not cost a database read per request."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, Caller | None]] = {}
        self._lock = threading.Lock()

    async def caller(self, service: Service, secret: str) -> Caller | None:
        digest = keys.digest(secret)
        with self._lock:
            hit = self._seen.get(digest)
        if hit and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
            return hit[1]
        return await run_in_threadpool(self._look_up, service, secret, digest)

    def _look_up(self, service: Service, secret: str, digest: str) -> Caller | None:
        now = time.monotonic()

        def find() -> Caller | None:
            with database.reading(service.engine) as connection:
                return keys.find(connection, secret)

        found = database.once_more_if_lost(find)  # the first look after a database restart
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            self._seen[digest] = (now, found)
        return found

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()


async def get_caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The caller whose key the request's bearer credentials carry (401 otherwise)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorised("send an API key: Authorization: Bearer <key>", "Authorization")
    cache: KeyCache = request.app.state.keys
    caller = await cache.caller(request.app.state.service, credentials.credentials)
    if caller is None:
        raise Unauthorised("the API key is not valid or was revoked", "Authorization")
    return caller


def allow(*roles: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting only callers with one of `roles` (async, as the key is usually
    in the cache: no trip to a worker thread for it). It asks for the key itself rather than
    through a `get_caller` dependency: each level of dependencies FastAPI solves costs about
    20 microseconds a request."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Caller:
        caller = await get_caller(request, credentials)
        if caller.role not in roles:
            article = "an" if caller.role[0] in "aeiou" else "a"
            raise Forbidden(
                f"{article} {caller.role} key cannot do this; it needs: {', '.join(roles)}"
            )
        refuse_nul(request)
        refuse_repeats(request)
        return caller

    return check


def refuse_nul(request: Request) -> None:
    """A NUL character in a path or query parameter, refused before it reaches a query
    (PostgreSQL cannot hold one; no id has one). Every route that takes one takes a key, so it
    is checked with the key, once the caller may know the answer."""
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            raise NotFound(f"no {name.replace('_', ' ')} holds a NUL character", name)
    for name, value in request.query_params.multi_items():
        if "\x00" in value:
            raise Invalid(f"{name}: a NUL character is not allowed", name)


def refuse_repeats(request: Request) -> None:
    """A query parameter given twice that takes one value is refused: read as its last value,
    `?tier=urgent&tier=high` listed high decisions only, and an analyst's figures were wrong."""
    query = request.query_params
    if len(query) == len(query.multi_items()):
        return
    many = _many_valued(request.scope.get("endpoint"))
    for name in query:
        if name not in many and len(query.getlist(name)) > 1:
            raise Invalid(f"{name}: given {len(query.getlist(name))} times; it takes one", name)


@functools.cache
def _many_valued(endpoint: Callable[..., Any] | None) -> frozenset[str]:
    """The parameters of a route's function that take a list."""
    if endpoint is None:
        return frozenset()
    hints = typing.get_type_hints(endpoint, include_extras=True)
    return frozenset(name for name, hint in hints.items() if _is_list(hint))


def _is_list(hint: Any) -> bool:
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_is_list(arg) for arg in typing.get_args(hint))
    return typing.get_origin(hint) is list


AnyKey = Annotated[Caller, Depends(allow("desk", "analyst", "admin"))]
desk_only = allow("desk")  # called by the desk lane (api/desk_lane.py) as by FastAPI
Desk = Annotated[Caller, Depends(desk_only)]
DeskOrAnalyst = Annotated[Caller, Depends(allow("desk", "analyst"))]
Analyst = Annotated[Caller, Depends(allow("analyst"))]
AnalystOrAdmin = Annotated[Caller, Depends(allow("analyst", "admin"))]
Admin = Annotated[Caller, Depends(allow("admin"))]


async def json_body(request: Request) -> Any:
    """The request's JSON body, or 422 on field `body`."""
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise Invalid(f"the body is not valid JSON ({error})", "body") from None


Model = TypeVar("Model", bound=BaseModel)


def body_as(model: type[Model]) -> Callable[[Request], Awaitable[Model]]:
    """A dependency giving the body as `model`. Declared after the caller's key, it is read
    only once the key is checked: a request with no key or the wrong role gets 401/403
    whatever its body, and a bad body the same messages as a declared one."""

    async def read(request: Request) -> Model:
        found = await json_body(request)
        try:
            return model.model_validate(found)
        except ValidationError as error:
            raise RequestValidationError(
                [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
            ) from None

    return read


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that reads `model` with `body_as`."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
