"""What the service screens with: the active rule pack's rules and the active model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import AnyKey, ServiceDep
from api.problems import NotFound
from api.responses import JSONResponse
from engine.rule import Rule

router = APIRouter(prefix="/v1", tags=["rules and model"])

INTENDED_USE = {
    "en": "Ranks departures and placement files for review by protection officers; a high score "
    "means 'ask more and protect', never a finding of guilt. Attributions show association, "
    "not cause.",
    "id": "Mengurutkan keberangkatan dan berkas penempatan untuk ditinjau petugas pelindungan; "
    "skor tinggi berarti 'tanyakan lebih lanjut dan lindungi', bukan putusan bersalah. "
    "Atribusi menunjukkan keterkaitan, bukan sebab.",
}


def _rule(rule: Rule, detail: bool) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "id": rule.id,
        "severity": rule.severity,
        "title": rule.title.as_dict(),
        "basis": rule.basis,
    }
    if detail:
        summary |= {
            "when": rule.when,
            "reason": rule.reason.as_dict(),
            "action": rule.action.as_dict(),
            "referral": rule.referral,
            "questions": {field: text.as_dict() for field, text in rule.questions.items()},
            "examples": len(rule.examples),
        }
    return summary


@router.get("/rules", summary="The active rule pack's rules")
def list_rules(service: ServiceDep, caller: AnyKey) -> JSONResponse:
    pack = service.current().pack
    return JSONResponse(
        {
            "rule_pack": pack.label,
            "effective_date": pack.effective_date.isoformat(),
            "rules": [_rule(rule, detail=False) for rule in pack.rules],
        }
    )


@router.get("/rules/{rule_id}", summary="One rule: its condition, wording and questions")
def get_rule(rule_id: str, service: ServiceDep, caller: AnyKey) -> JSONResponse:
    pack = service.current().pack
    try:
        rule = pack.rule(rule_id)
    except KeyError:
        raise NotFound(f"rule pack {pack.label} has no rule {rule_id}", "rule_id") from None
    return JSONResponse({"rule_pack": pack.label, **_rule(rule, detail=True)})


@router.get("/model", summary="The active model: version, thresholds, card summary")
def get_model(service: ServiceDep, caller: AnyKey) -> JSONResponse:
    model = service.current().model
    manifest = model.manifest
    training = manifest.get("training", {})
    return JSONResponse(
        {
            "version": model.version,
            "thresholds": {"review": model.thresholds.review, "high": model.thresholds.high},
            "capacity": manifest.get("capacity"),
            "created_at": manifest.get("created_at"),
            "card": {
                "family": manifest.get("family"),
                "intended_use": INTENDED_USE,
                "training_data": {
                    key: training.get(key) for key in ("data", "rows", "positives", "rule_pack")
                },
                "features": list(model.features),
                "never_inputs": ["person.sex", "person.origin_province", "identifiers"],
                "full_card": "lindung model card --out FOLDER",
            },
        }
    )
