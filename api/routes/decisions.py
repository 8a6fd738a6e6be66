"""Stored decisions: one by id, a filtered list, and the outcomes officers record."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, Field
from sqlalchemy import Connection

from api.deps import Analyst, DeskOrAnalyst, ServiceDep, body_as, body_schema
from api.problem_schema import problems
from api.problems import Invalid
from api.query import Moment
from api.responses import JSONResponse, not_json
from api.service import Service, now
from api.storage import database, decisions, outcomes
from engine.case import Plain, plain_text
from engine.decision import TIERS

router = APIRouter(prefix="/v1", tags=["decisions"])
Tier = Literal["clear", "review", "high", "urgent"]
Channel = Literal["immigration_desk", "port_desk", "ltsa_counter", "batch"]
assert set(TIERS) == set(Tier.__args__)  # type: ignore[attr-defined]


@router.get("/decisions/{decision_id}", summary="One stored decision")
def get_decision(decision_id: str, service: ServiceDep, caller: DeskOrAnalyst) -> JSONResponse:
    """A decision as it was given, with who asked; a desk key reads only its own decisions."""
    with database.reading(service.engine) as connection:
        return JSONResponse(decisions.find(connection, decision_id, caller))


@router.get("/decisions", summary="Decisions, newest first, filtered")
def list_decisions(
    service: ServiceDep,
    caller: DeskOrAnalyst,
    tier: Annotated[list[Tier] | None, Query(description="any of these (repeat it)")] = None,
    rule_id: Annotated[str | None, Query(max_length=100)] = None,
    channel: Annotated[list[Channel] | None, Query(description="any of these (repeat it)")] = None,
    screened_from: Moment | None = None,
    screened_to: Moment | None = None,
    limit: Annotated[int, Query(ge=1, le=decisions.MAX_PAGE)] = 100,
    after: Annotated[str | None, Query(description="the `next` cursor of the last page")] = None,
) -> JSONResponse:
    """Decision summaries by tier, fired rule, channel and screening time (from inclusive, to
    exclusive); a desk key lists its own decisions."""
    filters = decisions.Filters(
        tuple(tier or ()), rule_id, tuple(channel or ()), screened_from, screened_to, limit, after
    )
    with database.reading(service.engine) as connection:
        if rule_id and not _known_rule(service, connection, rule_id):
            raise Invalid(
                f"no rule {rule_id!r} in the active pack or in any stored decision"
                " (GET /v1/rules lists the rules)",
                "rule_id",
            )
        return JSONResponse(decisions.listing(connection, filters, caller))


def _known_rule(service: Service, connection: Connection, rule_id: str) -> bool:
    """A rule of the active pack, or of an older pack that some stored decision carries: a
    filter naming neither is a typo, not an empty page."""
    active = {rule.id for rule in service.current().pack.rules}
    return rule_id in active or decisions.ever_fired(connection, rule_id)


Confirmed = Literal["procedural", "non_procedural", "trafficking"]
CONFIRMED: tuple[str, ...] = get_args(Confirmed)


def _given(*names: str) -> dict[str, Any]:
    """JSON schema: each of `names` is given, and not null (nor blank: a blank note is none)."""
    return {
        "properties": {name: {"type": "string", "pattern": r"\S"} for name in names},
        "required": list(names),
    }


def _same(one: str, other: str, value: str) -> dict[str, Any]:
    """JSON schema: `one` and `other` are both `value` (a correction confirming what it
    corrects)."""
    return {
        "properties": {one: {"enum": [value]}, other: {"enum": [value]}},
        "required": [one, other],
    }


class OutcomeIn(BaseModel):
    model_config = {
        "extra": "forbid",
        "json_schema_extra": {  # what `outcomes.record` checks, for a client to check first
            "allOf": [
                {"anyOf": [_given("action"), _given("confirmed")]},
                {
                    "anyOf": [
                        {"properties": {"corrects": {"type": "null"}}},
                        _given("confirmed", "note"),
                    ]
                },
                {"not": {"anyOf": [_same("confirmed", "corrects", value) for value in CONFIRMED]}},
            ]
        },
    }

    action: Literal["cleared", "postponed", "referred", "counselled"] | None = Field(
        None, description="what the officer did"
    )
    confirmed: Confirmed | None = Field(
        None, description="what the case turned out to be, once known"
    )
    corrects: Confirmed | None = Field(
        None,
        description="to correct a wrong confirmed outcome: the one in force, which `confirmed`"
        " replaces (a note saying why is required)",
    )
    note: Annotated[str | None, AfterValidator(plain_text), Plain] = Field(
        None,
        max_length=2_000,
        description="never a name (ID and phone numbers are redacted)",
    )


@router.post(
    "/decisions/{decision_id}/outcome",
    status_code=201,
    summary="Record what was done, or what it was",
    responses=problems(
        {409: "Another confirmation is in force (`confirmed`), or not the one named (`corrects`)"}
    ),
    openapi_extra=body_schema(OutcomeIn),
)
def record_outcome(
    decision_id: str,
    service: ServiceDep,
    caller: DeskOrAnalyst,
    outcome: Annotated[OutcomeIn, Depends(body_as(OutcomeIn))],
) -> JSONResponse:
    """Append the officer's action and/or the confirmed outcome (set once; a wrong one is
    corrected by naming it in `corrects`, with a note)."""
    with database.transaction(service.engine) as connection:
        summary = outcomes.record(
            connection,
            decision_id,
            action=outcome.action,
            confirmed=outcome.confirmed,
            note=outcome.note,
            caller=caller,
            at=now(),
            corrects=outcome.corrects,
        )
    return JSONResponse(summary, status_code=201)


@router.get("/decisions/{decision_id}/outcome", summary="A decision's outcome so far")
def get_outcome(decision_id: str, service: ServiceDep, caller: DeskOrAnalyst) -> JSONResponse:
    """The actions, the confirmed outcome in force, every confirmation (and what it corrected)
    and the notes, oldest first."""
    with database.reading(service.engine) as connection:
        decisions.find(connection, decision_id, caller)
        return JSONResponse(outcomes.summary(connection, decision_id))


@router.get(
    "/outcomes/labelled",
    summary="Confirmed cases, as labelled data for retraining",
    **not_json("text/csv"),
)
def labelled(service: ServiceDep, caller: Analyst) -> Response:
    """Every decision with a confirmed outcome: its pseudonymised input and the label, as CSV."""
    with database.reading(service.engine) as connection:
        rows = list(outcomes.labelled(connection))
    return Response(outcomes.labelled_csv(rows), media_type="text/csv")
