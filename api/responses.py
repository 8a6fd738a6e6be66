"""JSON responses encoded with orjson: a decision is about 25 kB, and the standard library's
encoder would spend more time on it than screening does."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse as _StandardJSONResponse
from fastapi.responses import Response


class JSONResponse(_StandardJSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def not_json(*media: str) -> dict[str, Any]:
    """The answer of a route that sends a file or text rather than JSON (a CSV, a report,
    Prometheus' text), as FastAPI's route options: /openapi.json names its media types."""
    content = {
        kind: {"schema": {"type": "string", **({} if kind.startswith("text/") else BINARY)}}
        for kind in media
    }
    return {"response_class": Response, "responses": {200: {"content": content}}}


BINARY = {"format": "binary"}
