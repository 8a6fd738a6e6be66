from __future__ import annotations

from fastapi.testclient import TestClient

from engine.rule_pack import RulePack
from models.artifact import TrainedModel
from models.features import features_for
from tests.factories import tourist

Headers = dict[str, str]


def test_every_rule_of_the_active_pack_is_listed_and_readable_on_its_own(
    client: TestClient, desk: Headers, pack: RulePack
) -> None:
    answer = client.get("/v1/rules", headers=desk)
    assert answer.status_code == 200
    body = answer.json()
    assert body["rule_pack"] == pack.label
    assert body["effective_date"] == pack.effective_date.isoformat()
    assert [rule["id"] for rule in body["rules"]] == [rule.id for rule in pack.rules]
    for rule in body["rules"]:
        assert rule["severity"] in ("info", "warning", "high", "urgent")
        assert rule["title"]["id"], rule["id"]
        assert rule["title"]["en"], rule["id"]
        assert "when" not in rule, "the list is a summary"
    for rule in pack.rules:
        one = client.get(f"/v1/rules/{rule.id}", headers=desk)
        assert one.status_code == 200, rule.id
        assert one.json()["reason"]["en"], rule.id


def test_one_rule_shows_its_condition_wording_and_questions(
    client: TestClient, analyst: Headers
) -> None:
    answer = client.get("/v1/rules/coercion_or_deception_reported", headers=analyst)
    assert answer.status_code == 200
    rule = answer.json()
    assert rule["id"] == "coercion_or_deception_reported"
    assert rule["severity"] == "urgent"
    assert rule["referral"] == "police_tppo"
    assert "interview.reports_coercion" in rule["when"]
    for part in ("title", "reason", "action"):
        assert set(rule[part]) == {"id", "en"}, part
        assert rule[part]["id"].strip(), part
        assert rule[part]["en"].strip(), part
        assert rule[part]["id"] != rule[part]["en"], part
    assert rule["title"]["en"].startswith("Coercion, deception")
    assert "Satgas TPPO" in rule["action"]["id"]
    assert rule["examples"] == 5
    for field, text in rule["questions"].items():
        assert "." in field
        assert text["id"], field
        assert text["en"], field


def test_the_model_shows_the_version_and_thresholds_it_screens_with(
    client: TestClient, desk: Headers, trained: TrainedModel, pack: RulePack
) -> None:
    answer = client.get("/v1/model", headers=desk)
    assert answer.status_code == 200
    model = answer.json()
    assert model["version"] == trained.version
    assert model["thresholds"] == {
        "review": trained.thresholds.review,
        "high": trained.thresholds.high,
    }
    assert 0 < model["thresholds"]["review"] <= model["thresholds"]["high"] < 1
    assert model["card"]["features"] == [feature.name for feature in features_for(pack)]
    assert "person.sex" in model["card"]["never_inputs"]
    assert "person.sex" not in model["card"]["features"]
    assert model["card"]["intended_use"]["en"]
    assert model["card"]["intended_use"]["id"]

    # with no flag, the thresholds decide the tier
    decision = client.post("/v1/screenings", json=tourist(), headers=desk).json()
    assert decision["flags"] == []
    score = decision["risk_score"]
    expected = (
        "high"
        if score >= trained.thresholds.high
        else "review"
        if score >= trained.thresholds.review
        else "clear"
    )
    assert decision["tier"] == expected
    assert decision["versions"]["model"] == trained.version


def test_an_unknown_rule_is_404_and_rules_need_a_key(client: TestClient, desk: Headers) -> None:
    answer = client.get("/v1/rules/no_such_rule", headers=desk)
    assert answer.status_code == 404
    assert answer.json()["field"] == "rule_id"
    assert "no_such_rule" in answer.json()["detail"]
    assert client.get("/v1/rules").status_code == 401
    assert client.get("/v1/model").status_code == 401
