"""API keys, for admins: create (the secret is shown once; or a replacement, to rotate a
key), list, revoke."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import AfterValidator, BaseModel, Field

from api.deps import Admin, ServiceDep, body_as, body_schema
from api.problem_schema import problems
from api.problems import NotFound
from api.responses import JSONResponse
from api.service import now
from api.storage import database, keys
from engine.case import OneLine, Plain, plain_text

router = APIRouter(prefix="/v1/keys", tags=["keys"])


def _key_name(name: str | None) -> str | None:
    return None if name is None else keys.key_name(name)


class KeyIn(BaseModel):
    model_config = {
        "extra": "forbid",
        # a new holder's key needs a name; a replacement takes the replaced key's
        "json_schema_extra": {
            "anyOf": [
                {"properties": {"name": {"type": "string"}}, "required": ["name"]},
                {"properties": {"replaces": {"type": "string"}}, "required": ["replaces"]},
            ]
        },
    }

    role: Literal["desk", "analyst", "admin"]
    name: Annotated[str | None, AfterValidator(_key_name), OneLine] = Field(
        None,
        min_length=1,
        max_length=200,
        description="who or what holds the key: one line, nothing invisible, unlike any other"
        " holder's live key's name in case or spacing (with `replaces`: the replaced key's name"
        " if not given)",
    )
    replaces: Annotated[str | None, AfterValidator(plain_text), Plain] = Field(
        None,
        min_length=1,
        max_length=32,
        description="rotation: the id of a key of the same role, live or revoked, that this key"
        " replaces; the new key is the same holder's (a desk keeps its decisions). The replaced"
        " key works until it is revoked",
    )


@router.post(
    "",
    status_code=201,
    summary="Create a key (its secret is shown only in this answer)",
    responses=problems(
        {
            404: "No key to replace (`replaces`)",
            409: "A live key has this name (`name`), the key to replace is of another role"
            " (`role`) or was replaced already (`replaces`)",
        }
    ),
    openapi_extra=body_schema(KeyIn),
)
def create(
    service: ServiceDep, caller: Admin, choice: Annotated[KeyIn, Depends(body_as(KeyIn))]
) -> JSONResponse:
    with database.transaction(service.engine) as connection:
        made, secret = keys.create(
            connection, choice.role, choice.name, now(), by=caller, replaces=choice.replaces
        )
    answer = {**made.as_dict(), "holder": made.holder, "replaces": choice.replaces}
    return JSONResponse({**answer, "key": secret}, status_code=201)


@router.get("", summary="Keys, without their secrets")
def listing(service: ServiceDep, caller: Admin) -> JSONResponse:
    with database.reading(service.engine) as connection:
        return JSONResponse({"keys": keys.listing(connection)})


@router.delete("/{key_id}", summary="Revoke a key")
def revoke(key_id: str, request: Request, service: ServiceDep, caller: Admin) -> JSONResponse:
    with database.transaction(service.engine) as connection:
        if not keys.revoke(connection, key_id, now(), by=caller):
            raise NotFound(f"no live key {key_id}", "key_id")
    request.app.state.keys.forget()
    return JSONResponse({"key_id": key_id, "revoked": True})
