"""The agency registry: admins upload the ministry's CSV; any key looks a licence up."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from api.deps import Admin, AnyKey, ServiceDep
from api.problem_schema import problems
from api.problems import Invalid, NotFound, UnsupportedMedia
from api.query import Day
from api.responses import JSONResponse
from api.service import Service, now
from api.storage import activation
from api.storage.keys import Caller
from engine.case import screening_day
from engine.errors import RegistryError
from engine.registry import AgencyRegistry, registry_text

router = APIRouter(prefix="/v1/registry", tags=["registry"])


@router.get("", summary="Which registry is in use")
def summary(service: ServiceDep, caller: AnyKey) -> JSONResponse:
    service.current()
    return JSONResponse(service.registry_summary)


@router.put(
    "",
    status_code=201,
    summary="Upload a new agency registry (CSV)",
    responses=problems({415: "A form upload: send the CSV as the body (`Content-Type`)"}),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string", "minLength": 1}}},
        }
    },
)
async def upload(request: Request, service: ServiceDep, caller: Admin) -> JSONResponse:
    """Replace the registry for every server process: the file is used whole or refused whole,
    with the line and column at fault."""
    raw = await request.body()
    _refuse_a_form(request.headers.get("content-type", ""), raw)
    # in a worker thread: the write may wait for another process's lock (up to 30 s), and the
    # components are rebuilt on the new registry, neither of which the desks' loop can afford
    stored = await run_in_threadpool(_upload, service, raw, caller)
    return JSONResponse(stored, status_code=201)


def _upload(service: Service, raw: bytes, caller: Caller) -> dict[str, Any]:
    try:
        content = registry_text(raw, source="upload")
        registry = AgencyRegistry.from_text(content, source="upload")
    except RegistryError as error:
        raise Invalid(str(error), error.field or "body") from None
    if not len(registry):
        raise Invalid("the registry has no licences", "body")
    with service.changing() as connection:
        stored = activation.upload_registry(connection, content, registry, caller, now())
    return stored


# A form's first part names itself: Content-Disposition: form-data; name="file"; filename="..."
_FORM_PART = re.compile(
    rb'content-disposition:[ \t]*form-data;[ \t]*name="([^"\r\n]{0,100})"'
    rb'(?:;[ \t]*filename="([^"\r\n]{0,200})")?',
    re.IGNORECASE,
)


def _refuse_a_form(content_type: str, raw: bytes) -> None:
    """A browser form's or `curl -F` upload wraps the file in a part: read as the CSV, its
    boundary line would be taken for the header."""
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        return
    part = _FORM_PART.search(raw[:4096])
    inside = ""
    if part:
        name, filename = (group.decode(errors="replace") for group in part.groups(b""))
        inside = f", the file in its part {name!r}" + (f" ({filename!r})" if filename else "")
    raise UnsupportedMedia(
        f"received a form upload (multipart/form-data{inside}): send the CSV as the request "
        "body (Content-Type text/csv), not as a form upload, e.g. curl --data-binary "
        "@registry.csv -H 'Content-Type: text/csv'",
        "Content-Type",
    )


# `path`: a licence number may hold a slash (B.123/SIP3MI/2020), sent as it is or as %2F
@router.get("/licences/{license_no:path}", summary="Look up an agency licence")
def lookup(
    license_no: str,
    service: ServiceDep,
    caller: AnyKey,
    on: Annotated[
        Day | None,
        Query(description="the day to judge it on (default: today in WIB, Jakarta's time)"),
    ] = None,
) -> JSONResponse:
    """The licence as registered, and its status on `on` (active, expired, suspended...). A
    screening judges it on the case's own date; today here is Jakarta's, not UTC's, which is
    still yesterday there from 17:00 UTC."""
    licence = service.current().registry.lookup(license_no)
    if licence is None:
        raise NotFound("no licence with this number in the registry", "license_no")
    day = on or screening_day(now())  # a screening's rule: the time is UTC's, the day WIB's
    return JSONResponse(
        {
            "license_no": licence.license_no,
            "agency_name": licence.agency_name,
            "status": licence.status,
            "valid_from": licence.valid_from.isoformat() if licence.valid_from else None,
            "valid_until": licence.valid_until.isoformat() if licence.valid_until else None,
            "on": day.isoformat(),
            "status_on": licence.status_on(day),
        }
    )
