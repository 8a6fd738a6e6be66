from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.app import create_app
from api.settings import Settings, bundled
from api.storage import tables
from tests.api.calls import Headers, screen
from tests.api.conftest import KeyMaker
from tests.factories import tourist

AGENCIES: dict[str, Any] = yaml.safe_load(
    (bundled("default") / "pack.yaml").read_text(encoding="utf-8")
)["referral_agencies"]

# Urgent cases and the agency each is referred to (rules/default/rules/*.yaml).
COERCED = {"interview": {"reports_coercion": True}}  # coercion_or_deception_reported: police_tppo
FORMER_VICTIM = {"person": {"prior_trafficking_victim": True}}  # prior_trafficking_victim: bp3mi
UNOFFICIAL_EXIT = {  # unofficial_exit_point: immigration
    "channel": "port_desk",
    "travel": {"exit_point": "DUM", "exit_point_type": "unofficial", "mode": "sea"},
}
# A child sent to work, her documents held by someone else: two urgent rules, referred to the
# police (the nearer deadline) with social services to be told too.
MINOR_SENT_TO_WORK = {
    "channel": "port_desk",
    "person": {"age": 15},
    "travel": {"documents_held_by_other": True, "declared_purpose": "work"},
}


def at(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def recently(minutes: int = 0) -> str:
    return at(datetime.now(UTC) - timedelta(minutes=minutes))


def referral(client: TestClient, headers: Headers, decision_id: str) -> dict[str, Any]:
    answer = client.get(f"/v1/referrals/{decision_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def queue(client: TestClient, headers: Headers, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/referrals", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_an_urgent_decision_opens_a_referral_with_the_agency_and_its_deadline(
    client: TestClient, desk: Headers
) -> None:
    screened_at = recently()
    decision = screen(client, desk, tourist(case_id="U-1", screened_at=screened_at, **COERCED))
    assert decision["tier"] == "urgent"
    assert decision["referral"]["agency"] == "police_tppo"
    expected = datetime.fromisoformat(screened_at) + timedelta(
        hours=AGENCIES["police_tppo"]["deadline_hours"]
    )
    opened = referral(client, desk, decision["decision_id"])
    assert opened["agency"] == "police_tppo"
    assert opened["also_notify"] == []
    assert opened["rule_ids"] == ["coercion_or_deception_reported"]
    assert opened["status"] == "open"
    assert opened["case_id"] == "U-1"
    assert datetime.fromisoformat(opened["deadline"]) == expected
    assert datetime.fromisoformat(decision["referral"]["deadline"]) == expected
    assert opened["overdue"] is False
    assert 0 < opened["minutes_left"] <= AGENCIES["police_tppo"]["deadline_hours"] * 60


def test_any_desk_working_a_referral_sees_whom_else_to_tell_and_why_it_was_referred(
    client: TestClient, desk: Headers, make_key: KeyMaker
) -> None:
    """Any desk works the queue, and cannot read another desk's decision: the referral itself
    must say which other agencies to tell (child protection, for a minor) and the flags that
    referred it, in both languages, without the traveller's or the escort's identifiers."""
    person = {"full_name": "Siti Aminah", "nik": "3171234567890123", "passport_no": "C7654321"}
    escort = "Pak Darto +62 812 3509 4989"
    case = tourist(case_id="U-M", screened_at=recently(), **MINOR_SENT_TO_WORK)
    case["person"].update(person)
    case["links"] = {"escort_ref": escort}
    decision = screen(client, desk, case)
    referred = decision["referral"]
    assert referred["agency"] == "police_tppo"
    assert referred["also_notify"] == ["social_services"]
    assert set(referred["rule_ids"]) == {
        "documents_held_by_third_party",
        "minor_departing_for_work",
    }
    flags = {flag["rule_id"]: flag for flag in decision["flags"]}
    reasons = [
        {"rule_id": rule_id, "title": flags[rule_id]["title"], "reason": flags[rule_id]["reason"]}
        for rule_id in referred["rule_ids"]
    ]
    assert all(reason["reason"]["id"] and reason["reason"]["en"] for reason in reasons)

    other_desk = make_key("desk")
    answer = client.get(f"/v1/decisions/{decision['decision_id']}", headers=other_desk)
    assert answer.status_code == 404, "a desk reads only its own decisions"
    [listed] = queue(client, other_desk)["referrals"]
    for item in (referral(client, other_desk, decision["decision_id"]), listed):
        assert item["agency"] == "police_tppo"
        assert item["also_notify"] == ["social_services"]
        assert item["rule_ids"] == referred["rule_ids"]
        assert item["reasons"] == reasons
        shown = json.dumps(item, ensure_ascii=False)
        for identifier in [*person.values(), escort, "Darto"]:
            assert identifier not in shown


def test_each_agency_gets_the_deadline_the_pack_gives_it(client: TestClient, desk: Headers) -> None:
    screened_at = "2026-11-23T09:00:00+00:00"
    for number, (case, agency) in enumerate(
        ((FORMER_VICTIM, "bp3mi"), (UNOFFICIAL_EXIT, "immigration"))
    ):
        sent = tourist(case_id=f"T-{number}", screened_at=screened_at, **case)
        decision = screen(client, desk, sent)
        opened = referral(client, desk, decision["decision_id"])
        assert opened["agency"] == agency
        hours = AGENCIES[agency]["deadline_hours"]
        assert datetime.fromisoformat(opened["deadline"]) == datetime.fromisoformat(
            screened_at
        ) + timedelta(hours=hours), agency


@pytest.fixture
def custom_hours_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"referral_hours": {"bp3mi": 6, "immigration": 3}}))
    with TestClient(app) as client:
        yield client


def test_referral_hours_in_the_settings_override_the_packs_deadlines(
    custom_hours_client: TestClient, make_key: KeyMaker
) -> None:
    desk = make_key("desk")
    screened_at = "2026-11-23T09:00:00+00:00"
    start = datetime.fromisoformat(screened_at)
    for number, (case, agency, hours) in enumerate(
        (
            (FORMER_VICTIM, "bp3mi", 6),
            (UNOFFICIAL_EXIT, "immigration", 3),
            (COERCED, "police_tppo", AGENCIES["police_tppo"]["deadline_hours"]),  # as it was
        )
    ):
        sent = tourist(case_id=f"T-{number}", screened_at=screened_at, **case)
        decision = screen(custom_hours_client, desk, sent)
        assert decision["referral"]["agency"] == agency
        opened = referral(custom_hours_client, desk, decision["decision_id"])
        assert datetime.fromisoformat(opened["deadline"]) == start + timedelta(hours=hours), agency


def test_a_decision_that_is_not_urgent_has_no_referral(client: TestClient, desk: Headers) -> None:
    decision = screen(client, desk, tourist())
    assert decision["tier"] != "urgent"
    assert decision["referral"] is None
    answer = client.get(f"/v1/referrals/{decision['decision_id']}", headers=desk)
    assert answer.status_code == 404
    assert answer.json()["field"] == "decision_id"
    assert queue(client, desk)["referrals"] == []


def test_a_long_queue_pages_on_and_counts_every_overdue_referral_not_just_the_page(
    client: TestClient, desk: Headers, analyst: Headers
) -> None:
    """Many old referrals must not hide a new urgent one beyond the first page, nor the
    count of overdue ones stop at the page's."""
    old = [
        tourist(case_id=f"old-{n}", screened_at=f"2026-01-05T09:{n:02d}:00+00:00", **COERCED)
        for n in range(7)
    ]
    assert client.post("/v1/screenings/bulk", json={"cases": old}, headers=desk).status_code == 201
    screen(client, desk, tourist(case_id="new", screened_at=recently(), **COERCED))
    first = queue(client, analyst, limit=3)
    assert (first["total"], first["overdue"]) == (8, 7)
    seen, page = [], first
    while True:
        seen += [item["case_id"] for item in page["referrals"]]
        if page["next"] is None:
            break
        page = queue(client, analyst, limit=3, after=page["next"])
    assert seen == [f"old-{n}" for n in range(7)] + ["new"]
    for cursor in ("nonsense", "0001-01-01T00:00:00+14:00|abc", "resolved-nonsense"):
        bad = client.get("/v1/referrals", params={"after": cursor}, headers=analyst)
        assert (bad.status_code, bad.json()["field"]) == (422, "after")


def test_the_queue_puts_the_nearest_deadline_first_and_flags_the_overdue(
    client: TestClient, desk: Headers, analyst: Headers
) -> None:
    # screened just now: bp3mi (24 h), police (2 h); screened long ago: police, overdue
    later = screen(client, desk, tourist(case_id="later", screened_at=recently(), **FORMER_VICTIM))
    soon = screen(client, desk, tourist(case_id="soon", screened_at=recently(), **COERCED))
    old = screen(
        client, desk, tourist(case_id="old", screened_at="2026-01-05T09:00:00+00:00", **COERCED)
    )
    seen = queue(client, analyst)
    assert [item["case_id"] for item in seen["referrals"]] == ["old", "soon", "later"]
    assert [item["overdue"] for item in seen["referrals"]] == [True, False, False]
    assert seen["overdue"] == 1
    assert seen["referrals"][0]["minutes_left"] < 0
    deadlines = [item["deadline"] for item in seen["referrals"]]
    assert deadlines == sorted(deadlines, key=datetime.fromisoformat)
    assert referral(client, desk, old["decision_id"])["overdue"] is True
    assert referral(client, desk, soon["decision_id"])["overdue"] is False
    assert referral(client, desk, later["decision_id"])["agency"] == "bp3mi"


def test_a_desk_acknowledges_then_resolves_a_referral_with_a_note(
    client: TestClient, desk: Headers, analyst: Headers, engine: Engine
) -> None:
    decision = screen(client, desk, tourist(screened_at=recently(), **COERCED))
    decision_id = decision["decision_id"]

    acknowledged = client.post(f"/v1/referrals/{decision_id}/acknowledge", headers=desk)
    assert acknowledged.status_code == 200
    assert acknowledged.json()["status"] == "acknowledged"
    assert acknowledged.json()["acknowledged_at"] is not None
    assert acknowledged.json()["acknowledged_by"]
    assert [i["status"] for i in queue(client, analyst)["referrals"]] == ["acknowledged"]

    note = "handed to the TPPO task force at Soekarno-Hatta; NIK 3171234567890123 noted"
    resolved = client.post(
        f"/v1/referrals/{decision_id}/resolve", json={"note": note}, headers=desk
    )
    assert resolved.status_code == 200
    body = resolved.json()
    assert body["status"] == "resolved"
    assert body["resolved_at"] is not None
    assert body["overdue"] is False
    assert "handed to the TPPO task force" in body["note"]
    assert "3171234567890123" not in body["note"]
    assert referral(client, desk, decision_id)["status"] == "resolved"
    assert queue(client, analyst)["referrals"] == [], "resolved referrals leave the queue"
    with engine.connect() as connection:
        stored = " ".join(connection.execute(select(tables.audit_log.c.body)).scalars())
        kept = connection.execute(select(tables.referrals.c.note)).scalar_one()
    assert "3171234567890123" not in stored
    assert "3171234567890123" not in kept


def test_a_referral_only_moves_forward(client: TestClient, desk: Headers) -> None:
    decision = screen(client, desk, tourist(**COERCED))
    url = f"/v1/referrals/{decision['decision_id']}"
    assert client.post(f"{url}/acknowledge", headers=desk).status_code == 200
    twice = client.post(f"{url}/acknowledge", headers=desk)
    assert twice.status_code == 409
    assert twice.json()["field"] == "status"

    for body in ({}, {"note": ""}, {"note": "   "}, {"note": "\u200b"}, {"note": " \ufeff\u2060 "}):
        no_note = client.post(f"{url}/resolve", json=body, headers=desk)
        assert no_note.status_code == 422, body
        assert no_note.json()["field"] == "note", body
    assert referral(client, desk, decision["decision_id"])["status"] == "acknowledged"

    assert client.post(f"{url}/resolve", json={"note": "first"}, headers=desk).status_code == 200
    again = client.post(f"{url}/resolve", json={"note": "second"}, headers=desk)
    assert again.status_code == 409
    assert again.json()["field"] == "status"
    assert client.post(f"{url}/acknowledge", headers=desk).status_code == 409
    assert referral(client, desk, decision["decision_id"])["note"] == "first"


def test_the_queue_filters_by_status(client: TestClient, desk: Headers, analyst: Headers) -> None:
    made = {
        name: screen(client, desk, tourist(case_id=name, screened_at=recently(i), **COERCED))
        for i, name in enumerate(("open", "acknowledged", "resolved"))
    }
    client.post(f"/v1/referrals/{made['acknowledged']['decision_id']}/acknowledge", headers=desk)
    straight = client.post(  # an open referral can be resolved without acknowledging it
        f"/v1/referrals/{made['resolved']['decision_id']}/resolve",
        json={"note": "counselled and sent home"},
        headers=desk,
    )
    assert straight.status_code == 200
    assert straight.json()["overdue"] is False
    for status in ("open", "acknowledged", "resolved"):
        items = queue(client, analyst, status=status)["referrals"]
        assert [item["case_id"] for item in items] == [status]
        assert items[0]["status"] == status
    default = queue(client, analyst)["referrals"]
    assert {item["case_id"] for item in default} == {"open", "acknowledged"}
    both = queue(client, analyst, status=["open", "resolved"])["referrals"]
    assert {item["case_id"] for item in both} == {"open", "resolved"}
    bad = client.get("/v1/referrals", params={"status": "closed"}, headers=analyst)
    assert bad.status_code == 422
    assert bad.json()["field"].startswith("status")


EVERY_STATUS = ["open", "acknowledged", "resolved"]


def paged(client: TestClient, headers: Headers, limit: int, **params: Any) -> list[str]:
    """The case ids of every page of the queue, in order, following `next`."""
    seen: list[str] = []
    page = queue(client, headers, limit=limit, **params)
    while True:
        seen += [item["case_id"] for item in page["referrals"]]
        if page["next"] is None:
            return seen
        page = queue(client, headers, limit=limit, after=page["next"], **params)


def resolve(client: TestClient, headers: Headers, decision: dict[str, Any]) -> None:
    url = f"/v1/referrals/{decision['decision_id']}/resolve"
    answer = client.post(url, json={"note": "handed to the police"}, headers=headers)
    assert answer.status_code == 200, answer.text


def test_resolved_referrals_come_after_those_still_to_work_on_every_page(
    client: TestClient, desk: Headers, analyst: Headers
) -> None:
    """Asked for every status, a desk sees what still needs action first, nearest deadline
    first with the overdue ones on top, and the resolved ones after, most recently resolved
    first: before, resolved referrals of early deadlines came first, above an overdue one
    nobody had taken yet. Paging by `next` gives each once, in that order, page size whatever."""
    made = {
        name: screen(client, desk, tourist(case_id=name, screened_at=screened_at, **case))
        for name, screened_at, case in (
            ("resolved first", "2026-01-05T09:00:00+00:00", COERCED),
            ("resolved last", "2026-01-05T08:00:00+00:00", COERCED),
            ("overdue", "2026-01-06T09:00:00+00:00", COERCED),
            ("overdue, acknowledged", "2026-01-06T10:00:00+00:00", COERCED),
            ("due soon", recently(), COERCED),  # police: 2 hours
            ("due later", recently(), FORMER_VICTIM),  # bp3mi: 24 hours
        )
    }
    resolve(client, desk, made["resolved first"])
    resolve(client, desk, made["resolved last"])
    acknowledge = f"/v1/referrals/{made['overdue, acknowledged']['decision_id']}/acknowledge"
    assert client.post(acknowledge, headers=desk).status_code == 200
    to_work = ["overdue", "overdue, acknowledged", "due soon", "due later"]
    expected = [*to_work, "resolved last", "resolved first"]

    everything = queue(client, analyst, status=EVERY_STATUS)
    items = everything["referrals"]
    assert [item["case_id"] for item in items] == expected
    assert [item["overdue"] for item in items] == [True, True, False, False, False, False]
    assert (everything["total"], everything["overdue"]) == (6, 2)
    for limit in range(1, len(expected) + 1):
        assert paged(client, desk, limit, status=EVERY_STATUS) == expected, limit
    assert paged(client, desk, 2, status=["open", "resolved"]) == [
        "overdue",
        "due soon",
        "due later",
        "resolved last",
        "resolved first",
    ]
    assert paged(client, desk, 1, status="resolved") == ["resolved last", "resolved first"]
    assert paged(client, desk, 1) == to_work, "the default queue is those still to work"


def test_referrals_of_one_deadline_or_resolved_at_one_instant_page_once_each(
    client: TestClient, desk: Headers, analyst: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ties on the deadline (a bulk of one escort's travellers screened together) and on the
    resolution time neither repeat nor skip a referral across pages."""
    together = recently()
    cases = [tourist(case_id=f"B-{n}", screened_at=together, **COERCED) for n in range(6)]
    answer = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert answer.status_code == 201, answer.text
    decisions = answer.json()["decisions"]
    resolved_at = datetime.now(UTC)
    with monkeypatch.context() as frozen:
        frozen.setattr("api.routes.referrals.now", lambda: resolved_at)
        for decision in decisions[:3]:
            resolve(client, desk, decision)
    by_id = sorted(decisions, key=lambda decision: decision["decision_id"])
    expected = [d["case_id"] for d in by_id if d not in decisions[:3]] + [
        d["case_id"] for d in by_id if d in decisions[:3]
    ]
    listed = queue(client, analyst, status=EVERY_STATUS)["referrals"]
    assert len({item["deadline"] for item in listed}) == 1
    assert len({item["resolved_at"] for item in listed if item["resolved_at"]}) == 1
    assert [item["case_id"] for item in listed] == expected
    for limit in (1, 2, 4):
        assert paged(client, analyst, limit, status=EVERY_STATUS) == expected, limit


def test_only_desks_move_referrals_and_unknown_ones_are_404(
    client: TestClient, desk: Headers, analyst: Headers, admin: Headers
) -> None:
    decision = screen(client, desk, tourist(**COERCED))
    url = f"/v1/referrals/{decision['decision_id']}"
    assert client.post(f"{url}/acknowledge", headers=analyst).status_code == 403
    assert client.post(f"{url}/acknowledge").status_code == 401
    assert client.get("/v1/referrals", headers=admin).status_code == 403
    assert referral(client, desk, decision["decision_id"])["status"] == "open"
    missing = "/v1/referrals/0123456789abcdef0123456789abcdef"
    assert client.post(f"{missing}/acknowledge", headers=desk).status_code == 404
    resolve = client.post(f"{missing}/resolve", json={"note": "x"}, headers=desk)
    assert resolve.status_code == 404


def test_a_note_with_a_control_character_is_422_and_the_referral_stays_open(
    client: TestClient, desk: Headers
) -> None:
    decision = screen(client, desk, tourist(case_id="U-N", screened_at=recently(), **COERCED))
    decision_id = decision["decision_id"]
    note = {"note": "handed over\u0000"}  # PostgreSQL cannot store a NUL: it was a 500
    answer = client.post(f"/v1/referrals/{decision_id}/resolve", json=note, headers=desk)
    assert (answer.status_code, answer.json()["field"]) == (422, "note"), answer.text
    assert referral(client, desk, decision_id)["status"] == "open"
