"""Screening: one case from a desk, or up to 1,000 from a desk syncing after an outage."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from api.decision_schema import REPLAYED
from api.deps import Desk, DeskOrAnalyst, ServiceDep, json_body
from api.metrics import SCREENINGS
from api.problem_schema import problems
from api.problems import Invalid
from api.responses import JSONResponse
from api.service import Service
from api.storage import decisions
from api.storage.keys import Caller
from engine.case import Case
from engine.case_input import MOST_PROBLEMS, parse_case
from engine.decision import Decision
from engine.errors import CaseError, FieldProblem

router = APIRouter(prefix="/v1/screenings", tags=["screenings"])
BULK_LIMIT = 1_000
ONE_CASE_BYTES = 64_000  # far more than any case's JSON (a full one is a few kB)

CASE_EXAMPLE = {
    "channel": "port_desk",
    "travel": {
        "exit_point": "BTM",
        "exit_point_type": "ferry_terminal",
        "destination_country": "MY",
        "declared_purpose": "tourism",
        "visa_type": "visa_free",
        "ticket": "one_way",
    },
    "person": {"age": 23, "origin_province": "NTB"},
    "interview": {"can_explain_trip": False},
}


def _count(decisions: list[Decision], cases: list[Case]) -> None:
    for case, decision in zip(cases, decisions, strict=True):
        if not decision.replayed:  # a case sent again was screened once
            SCREENINGS.labels(decision.tier, case.channel).inc()


@router.post(
    "",
    status_code=201,
    summary="Screen one case",
    responses=problems({409: "The case was sent before with other answers (`case_id`)"}),
    response_description="Decision v1 (shared/case-v1.md), stored in the audit trail",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"example": CASE_EXAMPLE}},
        }
    },
)
async def screen(request: Request, service: ServiceDep, caller: Desk) -> JSONResponse:
    """Screen one case record (nested JSON or flat dotted keys) and store the decision."""
    # The body is read here rather than declared: FastAPI's JSON reading and validation of a
    # free-form object cost more than the case's own validation, which names every field.
    record = await json_body(request)
    if len(await request.body()) <= ONE_CASE_BYTES:  # a tenth of a millisecond: on the loop
        case = parse_case(record)
    else:  # a body far larger than any case is read aside, not holding up the other desks
        case = await run_in_threadpool(parse_case, record)
    [decision] = await service.screen_together([case], caller)
    _count([decision], [case])
    # a retry (the case_id and screened_at this desk sent before) gets the decision it was
    # given, as first sent; the header says nothing new was stored
    replayed = {REPLAYED: "true"} if decision.replayed else None
    return JSONResponse(decision.as_dict(), status_code=201, headers=replayed)


@router.post(
    "/bulk",
    status_code=201,
    summary="Screen up to 1,000 cases",
    responses=problems({409: "A case was sent before with other answers (`cases.N.case_id`)"}),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"example": {"cases": [CASE_EXAMPLE]}}},
        }
    },
)
async def screen_bulk(request: Request, service: ServiceDep, caller: DeskOrAnalyst) -> JSONResponse:
    """Screen `cases` together: every case is stored, or (if any is invalid) none is, and the
    422 names each field at fault as `cases.N.field`, N the case's index (from 0)."""
    # Read here, as a single case is: after the key is checked, with the same messages.
    body = await json_body(request)
    records = body.get("cases") if isinstance(body, dict) else None
    if not isinstance(records, list) or set(body) != {"cases"}:
        raise Invalid('send {"cases": [case, ...]}', "cases")
    if not 1 <= len(records) <= BULK_LIMIT:
        raise Invalid(f"send 1 to {BULK_LIMIT:,} cases (got {len(records):,})", "cases")
    # Up to 1,000 cases and 25 MB of JSON: in a worker thread and a transaction of their own,
    # so that desks' screenings on the event loop go on meanwhile.
    return await run_in_threadpool(_screen_bulk, service, records, caller)


def _screen_bulk(service: Service, records: list[dict[str, Any]], caller: Caller) -> JSONResponse:
    cases = _parse_all(records)
    decisions = service.screen(cases, caller)
    _count(decisions, cases)
    replayed = [number for number, decision in enumerate(decisions) if decision.replayed]
    return JSONResponse(
        {"decisions": [d.as_dict() for d in decisions], "replayed": replayed},
        status_code=201,
        headers={REPLAYED: "true"} if len(replayed) == len(decisions) else None,
    )


def _within(field: str) -> str:
    return "" if field == "(case)" else f".{field}"  # "(case)": the record as a whole


def _parse_all(records: list[dict[str, Any]]) -> list[Case]:
    """Every record as a case, or one error naming the fields at fault (`cases.N.field`)."""
    cases: list[Case] = []
    problems: list[FieldProblem] = []
    for number, record in enumerate(records):
        try:  # the first MOST_PROBLEMS of the whole request named, as in one case
            cases.append(parse_case(record, max(0, MOST_PROBLEMS - len(problems))))
        except CaseError as error:
            problems += [
                FieldProblem(f"cases.{number}" + _within(p.field), p.problem)
                for p in error.problems
            ]
    if not problems:
        problems = _sent_twice(cases)
    if problems:
        raise CaseError(problems)
    return cases


def _sent_twice(cases: list[Case]) -> list[FieldProblem]:
    """A case_id with the same screened_at twice in one bulk: one case sent twice, or two
    cases one desk numbered alike; either way, which decision is whose could not be told."""
    first: dict[tuple[str, datetime], int] = {}
    problems = []
    for number, case in enumerate(cases):
        at = case.screened_at
        sent = (case.case_id, decisions.as_utc(at, "screened_at"))
        if sent in first:
            problems.append(
                FieldProblem(
                    f"cases.{number}.case_id",
                    f"case {case.case_id} screened at {at.isoformat()} is also case"
                    f" {first[sent]}: send each case once",
                )
            )
        first.setdefault(sent, number)
    if len(problems) > MOST_PROBLEMS:
        more = len(problems) - MOST_PROBLEMS
        problems[MOST_PROBLEMS:] = [FieldProblem("cases", f"{more:,} more problems, not listed")]
    return problems
