"""Health for orchestrators (no key), and metrics for Prometheus (analyst or admin key)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from api.deps import AnalystOrAdmin, ServiceDep
from api.metrics import exposition
from api.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", summary="The database answers and the components are loaded")
def readyz(service: ServiceDep) -> JSONResponse:
    try:
        parts = service.current()
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "problem": "database"}, status_code=503)
    return JSONResponse(
        {"status": "ready", "rule_pack": parts.pack.label, "model": parts.model.version}
    )


@router.get("/metrics", summary="Prometheus metrics")
def metrics(service: ServiceDep, caller: AnalystOrAdmin) -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)
