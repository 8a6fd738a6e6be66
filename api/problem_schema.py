"""The body of every error answer (`{"error", "detail", "field"}`, and `problems` for a request
that does not validate) as a JSON schema, and the error statuses each operation publishes in
/openapi.json: a client generated from it knows what it may get, and in what shape.

Statuses every operation of a kind may answer are added here: with a key, 401 and 403, 422 (a
parameter given twice, or holding a NUL) and 503 (the database busy for a write, or not
reachable; a pack changed in place or the registry file gone for any request that reads the
components); with a path
parameter, 404; with a body, 413. Those of one route (409, 415, another 404) are declared with
it (`responses=problems({409: ...})`), saying when.
"""

from __future__ import annotations

from typing import Any

from api.decision_schema import REF

PROBLEM = "Problem"
SCHEMAS: dict[str, dict[str, Any]] = {
    PROBLEM: {
        "type": "object",
        "description": "What went wrong, and the field at fault where there is one",
        "properties": {
            "error": {"type": "string", "description": "its kind: Invalid, NotFound, ..."},
            "detail": {"type": "string"},
            "field": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "dotted, `cases.N.field` for a bulk's case N (from 0)",
            },
            "problems": {
                "type": "array",
                "items": {"$ref": REF.format(name="FieldProblem")},
                "description": "a request that does not validate: each problem (the first 50)",
            },
        },
        "required": ["error", "detail", "field"],
    },
    "FieldProblem": {
        "type": "object",
        "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
        "required": ["field", "problem"],
    },
}

_WHEN = {
    "401": "No API key, or one not valid or revoked (`WWW-Authenticate: Bearer`)",
    "403": "The key's role may not do this",
    "404": "Nothing of this id that this key may read (`field` names the parameter)",
    "413": "The request body is over LINDUNG_MAX_REQUEST_BYTES",
    "422": "The request does not validate: `field` names the first problem",
    "503": (
        "The database is busy (nothing was stored; send it again) or cannot be reached "
        "(`detail` says what may have been stored), or the rule pack or the registry in use "
        "cannot be read: `field` names which"
    ),
}


def problems(when: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A route's own error statuses, each saying when, as FastAPI's `responses`: their body is
    the Problem."""
    return {status: {"description": text} for status, text in when.items()}


def publish(schema: dict[str, Any]) -> None:
    """Give every operation of `schema` its error statuses, each answered with a Problem, in
    place of FastAPI's validation error (a `detail` list the service never sends)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    components.update(SCHEMAS)
    problem = {"application/json": {"schema": {"$ref": REF.format(name=PROBLEM)}}}
    for operations in schema["paths"].values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status in _statuses(operation):
                responses.setdefault(status, {})
            for status, response in responses.items():
                if status[0] not in "45" or ("content" in response and status != "422"):
                    continue  # an answer, or an error with a body of its own (/readyz's)
                if status == "422" or not response.get("description"):
                    response["description"] = _WHEN[status]
                response["content"] = problem
            operation["responses"] = dict(sorted(responses.items()))


def _statuses(operation: dict[str, Any]) -> list[str]:
    found = []
    if operation.get("security"):
        found += ["401", "403", "422", "503"]
    if any(parameter["in"] == "path" for parameter in operation.get("parameters", [])):
        found.append("404")
    if "requestBody" in operation:
        found += ["413", "422"]
    return found
