"""Which rule pack and model the service runs: listed for analysts, switched by admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api import library
from api.deps import Admin, AnalystOrAdmin, ServiceDep, body_as, body_schema
from api.problem_schema import problems
from api.responses import JSONResponse

router = APIRouter(prefix="/v1", tags=["activation"])


def _active(service: ServiceDep) -> dict[str, str]:
    parts = service.current()
    return {"rule_pack": parts.pack.label, "model": parts.model.version}


@router.get("/rule-packs", summary="Rule packs that can be activated")
def rule_packs(service: ServiceDep, caller: AnalystOrAdmin) -> JSONResponse:
    active = _active(service)["rule_pack"]
    listing = library.public(library.packs(service.settings), "label")
    return JSONResponse(
        {"active": active, "rule_packs": [p | {"active": p["label"] == active} for p in listing]}
    )


@router.get("/models", summary="Models that can be activated")
def models(service: ServiceDep, caller: AnalystOrAdmin) -> JSONResponse:
    active = _active(service)["model"]
    listing = library.public(library.models(service.settings), "version")
    return JSONResponse(
        {"active": active, "models": [m | {"active": m["version"] == active} for m in listing]}
    )


@router.get("/activation", summary="The active rule pack and model")
def get_activation(service: ServiceDep, caller: AnalystOrAdmin) -> JSONResponse:
    return JSONResponse(_active(service))


class ActivationIn(BaseModel):
    model_config = {"extra": "forbid"}

    rule_pack: str = Field(description="a label from GET /v1/rule-packs, e.g. default@2026.11.2")
    model: str = Field(description="a version from GET /v1/models; it must fit the pack's rules")


@router.post(
    "/activation",
    status_code=201,
    summary="Activate a rule pack and model, without a restart",
    responses=problems(
        {
            404: "No such rule pack or model in the library (`rule_pack`, `model`)",
            409: "The pack or the model does not load, they do not fit, or the pack was changed"
            " in place",
        }
    ),
    openapi_extra=body_schema(ActivationIn),
)
def activate(
    service: ServiceDep,
    caller: Admin,
    choice: Annotated[ActivationIn, Depends(body_as(ActivationIn))],
) -> JSONResponse:
    """Every server process screens with them from its next request; decisions made before keep
    the versions they were made with."""
    made = service.activate(choice.rule_pack, choice.model, caller)
    # as committed: read again afterwards, a failed read would say nothing was stored
    return JSONResponse({"rule_pack": made["rule_pack"], "model": made["model"]}, status_code=201)
