"""Health for orchestrators (no key), and metrics for Prometheus (analyst or admin key)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError

from api.deps import AnalystOrAdmin, ServiceDep
from api.metrics import exposition
from api.responses import JSONResponse, not_json

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The database does not answer",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {"enum": ["unavailable"]},
                        "problem": {"type": "string"},
                    },
                    "required": ["status", "problem"],
                }
            }
        },
    }
}


@router.get(
    "/readyz",
    summary="The database answers and the components are loaded",
    responses=NOT_READY,
)
def readyz(service: ServiceDep) -> JSONResponse:
    try:
        parts = service.current()
    except SQLAlchemyError:
        return JSONResponse({"status": "unavailable", "problem": "database"}, status_code=503)
    return JSONResponse(
        {"status": "ready", "rule_pack": parts.pack.label, "model": parts.model.version}
    )


@router.get("/metrics", summary="Prometheus metrics", **not_json("text/plain"))
def metrics(service: ServiceDep, caller: AnalystOrAdmin) -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)
