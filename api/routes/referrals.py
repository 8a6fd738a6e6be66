"""The urgent-referral queue: open referrals by deadline, acknowledged, then resolved."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import AfterValidator, BaseModel, Field

from api.deps import Desk, DeskOrAnalyst, ServiceDep, body_as, body_schema
from api.problem_schema import problems
from api.responses import JSONResponse
from api.service import now
from api.storage import database, referrals
from engine.case import Plain, plain_text

router = APIRouter(prefix="/v1/referrals", tags=["referrals"])
Status = Literal["open", "acknowledged", "resolved"]


@router.get("", summary="The referral queue, nearest deadline first")
def queue(
    service: ServiceDep,
    caller: DeskOrAnalyst,
    status: Annotated[list[Status] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[str | None, Query(description="the `next` of the page before")] = None,
) -> JSONResponse:
    """Referrals not yet resolved (or those in `status`): those to work first, nearest deadline
    first (overdue ones are marked and first), then resolved ones, most recently resolved first.
    `total` and `overdue` count the whole queue, not the page; `next` pages on."""
    statuses = tuple(status or ("open", "acknowledged"))
    at = now()
    with database.reading(service.engine) as connection:
        page = referrals.queue(connection, at, statuses, limit, after)
    return JSONResponse({**page, "as_of": at.isoformat()})


@router.get("/{decision_id}", summary="One referral")
def get_referral(decision_id: str, service: ServiceDep, caller: DeskOrAnalyst) -> JSONResponse:
    """The referral, with the other agencies to tell and the reasons it was referred."""
    with database.reading(service.engine) as connection:
        return JSONResponse(referrals.find(connection, decision_id, now()))


@router.post(
    "/{decision_id}/acknowledge",
    summary="Take a referral in hand",
    responses=problems({409: "The referral is not open (`status`)"}),
)
def acknowledge(decision_id: str, service: ServiceDep, caller: Desk) -> JSONResponse:
    """Mark an open referral as acknowledged (409 if it is not open)."""
    with database.transaction(service.engine) as connection:
        return JSONResponse(referrals.acknowledge(connection, decision_id, caller, now()))


class Resolution(BaseModel):
    model_config = {"extra": "forbid"}

    note: Annotated[str, AfterValidator(plain_text), Plain] = Field(
        min_length=1,
        max_length=2_000,
        description="what was done; never a name (ID and phone numbers are redacted)",
    )


@router.post(
    "/{decision_id}/resolve",
    summary="Close a referral with a note",
    responses=problems({409: "The referral is already resolved (`status`)"}),
    openapi_extra=body_schema(Resolution),
)
def resolve(
    decision_id: str,
    service: ServiceDep,
    caller: Desk,
    resolution: Annotated[Resolution, Depends(body_as(Resolution))],
) -> JSONResponse:
    """Resolve an open or acknowledged referral (409 if it is already resolved)."""
    with database.transaction(service.engine) as connection:
        return JSONResponse(
            referrals.resolve(connection, decision_id, resolution.note, caller, now())
        )
