"""Decision v1 (shared/case-v1.md) as a JSON schema, published in /openapi.json as the answer of
the screening endpoints: what a client may rely on, checked against real answers by the tests."""

from __future__ import annotations

from typing import Any

from engine.decision import TIERS
from engine.rule import SEVERITIES

REF = "#/components/schemas/{name}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any], *optional: str, description: str = "") -> dict[str, Any]:
    """An object of exactly these properties, all required but `optional`."""
    made: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }
    if description:
        made["description"] = description
    return made


_STRING = {"type": "string"}
_STRINGS = {"type": "array", "items": _STRING}
_TIME = {"type": "string", "format": "date-time"}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Words": _object(
        {"id": _STRING, "en": _STRING},
        description="One sentence in Bahasa Indonesia (id) and English (en)",
    ),
    "Flag": _object(
        {
            "rule_id": _STRING,
            "severity": {"type": "string", "enum": list(SEVERITIES)},
            "title": _ref("Words"),
            "reason": {**_ref("Words"), "description": "quotes the facts that fired the rule"},
            "basis": {"type": "string", "description": "the legal or operational source"},
            "action": _ref("Words"),
        }
    ),
    "Question": _object(
        {"field": _STRING, "id": _STRING, "en": _STRING, "rule_ids": _STRINGS},
        description="What to ask next: the unknown field a rule needed, in id and en",
    ),
    "Contribution": _object(
        {
            "feature": _STRING,
            "value": {"description": "the feature's value in the case (any JSON value)"},
            "contribution": {"type": "number", "description": "to the score's log-odds"},
            "label": _ref("Words"),
            "value_label": _ref("Words"),
        },
        "label",
        "value_label",
    ),
    "Explanation": _object(
        {
            "base": {"type": "number"},
            "contributions": {"type": "array", "items": _ref("Contribution")},
            "top_factors": _ref("Words"),
        },
        "top_factors",
        description="The model's additive explanation: base and contributions sum to the "
        "score's log-odds",
    ),
    "Referral": _object(
        {
            "agency": _STRING,
            "name": _ref("Words"),
            "deadline": _TIME,
            "rule_ids": _STRINGS,
            "also_notify": _STRINGS,
        }
    ),
    "DecisionV1": _object(
        {
            "decision_id": _STRING,
            "case_id": _STRING,
            "screened_at": {**_TIME, "description": "echoed, in the offset the case came with"},
            "tier": {"type": "string", "enum": list(TIERS)},
            "risk_score": _or_null(
                {
                    "type": "number",
                    "minimum": 0,
                    "maximum": 1,
                    "description": "calibrated probability that the departure is "
                    "non-procedural; null when no model is active",
                }
            ),
            "flags": {"type": "array", "items": _ref("Flag")},
            "explanation": _or_null(_ref("Explanation")),
            "questions": {"type": "array", "items": _ref("Question")},
            "referral": _or_null(_ref("Referral")),
            "versions": _object(
                {"rule_pack": _STRING, "model": _or_null(_STRING), "service": _STRING}
            ),
        },
        description="Decision v1 (shared/case-v1.md), stored in the audit trail",
    ),
    "BulkDecisionsV1": _object(
        {
            "decisions": {
                "type": "array",
                "items": _ref("DecisionV1"),
                "description": "one for each case, in the order sent",
            },
            "replayed": {
                "type": "array",
                "items": {"type": "integer"},
                "description": "the indexes of the cases sent before (same case_id and "
                "screened_at): answered with their stored decisions, nothing stored again",
            },
        }
    ),
}

REPLAYED = "Idempotent-Replayed"  # as Stripe's API names it
REPLAYED_HEADER = {
    REPLAYED: {
        "description": "true when the answer is a decision stored before: the same case "
        "(case_id and screened_at) sent again by the desk; nothing was stored again",
        "schema": {"type": "string", "enum": ["true"]},
    }
}
