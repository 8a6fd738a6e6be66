"""Batch rescoring over HTTP, for analysts: upload a case file, poll the job, download the
decisions, the rejects and the what-changed report."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import AfterValidator
from starlette.concurrency import run_in_threadpool

from api import in_use, library
from api.batch_files import BatchFileError, column_names
from api.deps import Analyst, ServiceDep
from api.jobs import REGISTRY_FILE, now
from api.problem_schema import problems
from api.problems import Conflict, Invalid, NotFound, Problem, UnsupportedMedia
from api.responses import JSONResponse, not_json
from api.runners import runner
from api.service import Service
from api.storage import database, jobs
from engine.case import OneLine, one_line
from engine.table_input import check_columns

router = APIRouter(prefix="/v1/rescore-jobs", tags=["rescore jobs"])

FORMATS = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
}
MEDIA = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


class TooLarge(Problem):
    status = 413


@router.post(
    "",
    status_code=202,
    summary="Start a rescore job on an uploaded case file",
    responses=problems(
        {
            404: "No such rule pack or model in the library, or no job `compare_to`",
            409: "The pack or the model does not load or fit, or the job `compare_to` is not done",
            415: "Not a CSV or Parquet file (`Content-Type`)",
        }
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": {"type": "string", "minLength": 1}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary", "minLength": 1}
                },
            },
        }
    },
)
async def create(
    request: Request,
    service: ServiceDep,
    caller: Analyst,
    on_error: Annotated[
        Literal["stop", "skip"],
        Query(description="a bad row stops the job, or is skipped into the rejects file"),
    ] = "stop",
    output: Annotated[
        Literal["parquet", "csv"], Query(description="format of the decisions file")
    ] = "parquet",
    rule_pack: Annotated[
        str | None,
        Query(description="a pack label from GET /v1/rule-packs (default: the active one)"),
    ] = None,
    model: Annotated[
        str | None,
        Query(description="a model version from GET /v1/models (default: the active one)"),
    ] = None,
    baseline: Annotated[
        bool, Query(description="compare with the active pack and model on the same cases")
    ] = False,
    compare_to: Annotated[
        str | None, Query(description="compare with the decisions of an earlier job (its id)")
    ] = None,
    name: Annotated[
        str,
        Query(max_length=200, description="what the file is (for the job list), on one line"),
        AfterValidator(one_line),
        OneLine,
    ] = "upload",
) -> JSONResponse:
    """The body is the file itself (CSV or Parquet, flat dotted columns as in case v1). Its
    columns are checked at once (422 names any that is not a case field), and so are the pack
    and model it runs with (409, as for an activation); the rows are checked as the job runs.
    Poll `GET /v1/rescore-jobs/{job_id}`."""
    kind = FORMATS.get(request.headers.get("content-type", "").split(";")[0].strip().lower())
    if kind is None:
        raise UnsupportedMedia(
            f"send the file as {' or '.join(FORMATS)} (Content-Type)", "Content-Type"
        )
    settings = service.settings
    # 404 at once for a pack or model activation could not use (a broken pack included)
    if rule_pack is not None:
        library.pack_folder(settings, rule_pack)
    if model is not None:
        library.model_folder(settings, model)
    if baseline and compare_to:
        raise Invalid("compare with the active pack and model, or with a job, not both", "baseline")
    uses, registry = await run_in_threadpool(_resolve, service, rule_pack, model, baseline)
    earlier = None
    if compare_to is not None:
        earlier = await run_in_threadpool(_job, service, compare_to, "compare_to")
        if earlier["status"] != "done":
            raise Conflict(f"job {compare_to} is {earlier['status']}, not done", "compare_to")
    job_id = uuid.uuid4().hex
    folder = service.jobs.folder(job_id)
    folder.mkdir(parents=True)
    source = folder / f"in.{kind}"
    try:
        if registry is not None:  # as uploaded now: a later upload is for later jobs
            (folder / REGISTRY_FILE).write_text(registry, encoding="utf-8")
        await _receive(request, source, settings.max_upload_bytes)
        await run_in_threadpool(_check_columns, source)
        options: dict[str, Any] = {
            "on_error": on_error,
            "output": output,
            "rule_pack": rule_pack,
            "model": model,
            "baseline": baseline,
            "compare_to": compare_to,
            "compare_to_file": str(service.jobs.file(earlier, "result")) if earlier else None,
            "uses": uses,
        }
        stored = await run_in_threadpool(_store, service, job_id, caller.key_id, name, options)
    except BaseException:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        raise
    service.jobs.start(job_id, source, options)
    # as committed: read again afterwards, a failed read would say nothing was stored
    return JSONResponse(_view(service, stored), status_code=202)


async def _receive(request: Request, path: Any, limit: int) -> None:
    seen = 0
    with path.open("wb") as stream:
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > limit:
                raise TooLarge(f"the file is over {limit:,} bytes", "body")
            stream.write(chunk)
    if not seen:
        raise Invalid("the body is empty: send the case file", "body")


def _check_columns(source: Any) -> None:
    try:
        check_columns(column_names(source))
    except BatchFileError as error:
        raise Invalid(str(error).replace(source.name, "the file"), "body") from None


def _resolve(
    service: Service, rule_pack: str | None, model: str | None, baseline: bool
) -> tuple[dict[str, Any], str | None]:
    """What the job runs with, resolved now: the pack and model asked for, else the service's
    (and the service's as the baseline), and the registry uploaded, else the settings' (with
    the uploaded CSV). A pack or model the job could not run, or a pack it would run with other
    rules than its label's, is 409, as an activation checks them, before anything is stored."""
    settings = service.settings
    with database.reading(service.engine) as connection:
        chosen = in_use.choice(connection)
    try:
        pack = in_use.rescoring_pack(settings, chosen, rule_pack)
        uses: dict[str, Any] = {
            "rule_pack": pack.label,
            "model": in_use.rescoring_model(settings, chosen, pack, model).version,
            "registry": (
                chosen.uploaded_registry[1]["sha256"] if chosen.uploaded_registry else "settings"
            ),
        }
        if baseline:
            live = pack if rule_pack is None else in_use.rescoring_pack(settings, chosen, None)
            live_model = in_use.rescoring_model(settings, chosen, live, None)
            uses["baseline"] = {"rule_pack": live.label, "model": live_model.version}
    except Problem as problem:  # an analyst reads it: no server path, named by a setting or not
        raise type(problem)(library.public_text(settings, problem.detail), problem.field) from None
    return uses, chosen.uploaded_registry[0] if chosen.uploaded_registry else None


def _store(
    service: Service, job_id: str, key_id: str, name: str, options: dict[str, Any]
) -> dict[str, Any]:
    """The job as stored."""
    with database.transaction(service.engine) as connection:
        jobs.create(connection, job_id, key_id, name, options, now(), runner())
        stored = jobs.get(connection, job_id)
    assert stored is not None
    return stored


@router.get("", summary="Rescore jobs, newest first")
def listing(
    service: ServiceDep,
    caller: Analyst,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    with database.reading(service.engine) as connection:
        found = jobs.listing(connection, limit)
    return JSONResponse({"jobs": [_view(service, _settled(service, job)) for job in found]})


@router.get("/{job_id}", summary="A rescore job: status, progress, summary")
def get(job_id: str, service: ServiceDep, caller: Analyst) -> JSONResponse:
    return JSONResponse(_view(service, _job(service, job_id)))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a queued or running job",
    responses=problems({409: "The job has ended (`job_id`)"}),
)
def cancel(job_id: str, service: ServiceDep, caller: Analyst) -> JSONResponse:
    """Stop the job and delete its files; a job that has ended is 409."""
    _job(service, job_id)  # 404 for no such job; one whose server has gone is failed by now
    with database.transaction(service.engine) as connection:
        cancelled = jobs.cancel(connection, job_id, caller.key_id, now())
        job = jobs.get(connection, job_id)
    assert job is not None
    if not cancelled:
        said = f"the job is {job['status']}: only a queued or running job can be cancelled"
        raise Conflict(said, "job_id")
    service.jobs.cancel(job_id)
    return JSONResponse(_view(service, job))


NOT_DONE = problems({409: "The job is not done (`job_id`)"})


def files(*media: str) -> dict[str, Any]:
    """A download's route options: its media types, and 409 for a job not done."""
    options = not_json(*media)
    return {**options, "responses": {**options["responses"], **NOT_DONE}}


def _download(job_id: str, service: Service, name: str) -> FileResponse:
    job = _job(service, job_id)
    if job["status"] != "done":
        raise Conflict(f"the job is {job['status']}; its files come when it is done", "job_id")
    path = service.jobs.file(job, name)
    if not path.exists():
        why = {
            "rejects": "the job stops at a bad row (on_error=stop): it has no rejects file",
        }.get(name, "the job compared nothing (baseline or compare_to): it has no report")
        raise NotFound(why, "job_id")
    media = {
        "result": MEDIA[job["options"]["output"]],
        "rejects": "text/csv",
        "moved-cases": "text/csv",
        "report": "text/html; charset=utf-8",
        "report.json": "application/json",
    }[name]
    filename = f"rescore-{job_id}-{path.name}"
    return FileResponse(path, media_type=media, filename=filename)


@router.get("/{job_id}/result", summary="The decisions of a finished job", **files(*MEDIA.values()))
def result(job_id: str, service: ServiceDep, caller: Analyst) -> FileResponse:
    return _download(job_id, service, "result")


@router.get(
    "/{job_id}/rejects",
    summary="The rows a job skipped, with the problem of each",
    **files("text/csv"),
)
def rejects(job_id: str, service: ServiceDep, caller: Analyst) -> FileResponse:
    return _download(job_id, service, "rejects")


@router.get("/{job_id}/report", summary="What changed: the HTML report", **files("text/html"))
def report(job_id: str, service: ServiceDep, caller: Analyst) -> FileResponse:
    return _download(job_id, service, "report")


@router.get("/{job_id}/report.json", summary="What changed: the JSON summary", responses=NOT_DONE)
def report_json(job_id: str, service: ServiceDep, caller: Analyst) -> FileResponse:
    return _download(job_id, service, "report.json")


@router.get(
    "/{job_id}/moved-cases",
    summary="What changed: every case that moved tier (CSV)",
    **files("text/csv"),
)
def moved_cases(job_id: str, service: ServiceDep, caller: Analyst) -> FileResponse:
    return _download(job_id, service, "moved-cases")


def _job(service: Service, job_id: str, field: str = "job_id") -> dict[str, Any]:
    with database.reading(service.engine) as connection:
        job = jobs.get(connection, job_id)
    if job is None:
        raise NotFound("no rescore job with this id", field)
    return _settled(service, job)


def _settled(service: Service, job: dict[str, Any]) -> dict[str, Any]:
    """The job, marked failed (its upload deleted) if the server process running it has gone."""
    return service.jobs.settled(job)


def _view(service: Service, job: dict[str, Any]) -> dict[str, Any]:
    base = f"/v1/rescore-jobs/{job['job_id']}"
    options = {k: v for k, v in job["options"].items() if k not in ("compare_to_file", "uses")}
    links = {"self": base}
    if job["status"] == "done":
        links["result"] = f"{base}/result"
        if options["on_error"] == "skip":
            links["rejects"] = f"{base}/rejects"
        if options["baseline"] or options["compare_to"]:
            links |= {
                "report": f"{base}/report",
                "report.json": f"{base}/report.json",
                "moved-cases": f"{base}/moved-cases",
            }
    return {
        "job_id": job["job_id"],
        "name": job["source_name"],
        "status": job["status"],
        "created_at": job["created_at"],
        "started_at": job["started_at"],
        "finished_at": job["finished_at"],
        "options": options,
        "uses": job["options"].get("uses"),  # none for a job older than this record
        "progress": job["progress"],
        "summary": job["summary"],
        "error": job["error"],
        "links": links,
    }
