from __future__ import annotations

import asyncio
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api import service
from api.cli import screen_stream
from api.routes import screenings
from api.storage import database, keys, tables
from api.storage.case_history import DatabaseCaseHistory, PreviewHistory
from engine.case_input import parse_case
from models.artifact import TrainedModel
from tests.api.calls import rows, screen
from tests.api.routes.test_activation import next_pack  # noqa: F401
from tests.factories import tourist

STRANDED_ON_FERRY = {
    "channel": "port_desk",
    "screened_at": "2026-11-23T08:00:00+00:00",
    "person": {"age": 22, "passport_no": "C7654321", "full_name": "Siti Aminah"},
    "travel": {
        "exit_point": "BTM",
        "exit_point_type": "ferry_terminal",
        "destination_country": "MY",
        "declared_purpose": "tourism",
        "visa_type": "visa_free",
        "ticket": "one_way",
    },
    "interview": {"can_explain_trip": False},
}


def test_a_desk_screens_a_case_and_gets_the_decision_the_cli_gives(
    client: TestClient, desk: dict[str, str], app: Any
) -> None:
    answer = client.post("/v1/screenings", json=STRANDED_ON_FERRY, headers=desk)
    assert answer.status_code == 201
    decision = answer.json()
    out = io.StringIO()
    screen_stream(
        app.state.service.parts.screener,
        io.StringIO(json.dumps(STRANDED_ON_FERRY)),
        out,
        io.StringIO(),
    )
    offline = json.loads(out.getvalue())
    for key in ("tier", "risk_score", "flags", "questions", "explanation", "versions", "referral"):
        assert decision[key] == offline[key], key
    assert decision["tier"] in ("review", "high", "urgent")
    assert decision["flags"], "a tourist on a one-way ferry who cannot explain the trip is flagged"


def test_a_case_sent_without_a_time_is_screened_now_and_echoed_in_wib(
    client: TestClient, desk: dict[str, str]
) -> None:
    case = {key: value for key, value in STRANDED_ON_FERRY.items() if key != "screened_at"}
    answer = client.post("/v1/screenings", json=case, headers=desk)
    assert answer.status_code == 201, answer.text
    screened_at = datetime.fromisoformat(answer.json()["screened_at"])
    assert screened_at.utcoffset() == timedelta(hours=7)
    assert abs(screened_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_the_decision_is_stored_with_its_pseudonymised_input(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    decision = client.post("/v1/screenings", json=STRANDED_ON_FERRY, headers=desk).json()
    stored = client.get(f"/v1/decisions/{decision['decision_id']}", headers=desk).json()
    assert stored["tier"] == decision["tier"]
    assert stored["asked_by"]["role"] == "desk"
    with engine.connect() as connection:
        bodies = " ".join(connection.execute(select(tables.audit_log.c.body)).scalars())
    assert "C7654321" not in bodies
    assert "Siti" not in bodies
    assert "passport_no:" in bodies


def test_a_bad_case_gets_422_naming_the_field_as_the_cli_does(
    client: TestClient, desk: dict[str, str], engine: Engine, app: Any
) -> None:
    bad = tourist(travel={"visa_type": "golden"})
    answer = client.post("/v1/screenings", json=bad, headers=desk)
    assert answer.status_code == 422
    body = answer.json()
    assert body["field"] == "travel.visa_type"
    with_cli = io.StringIO()
    screener = app.state.service.parts.screener
    screen_stream(screener, io.StringIO(json.dumps(bad)), io.StringIO(), with_cli)
    assert body["detail"] in with_cli.getvalue()
    assert rows(engine, tables.decisions) == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"case_id": "T-\u0000"}, "case_id"),  # PostgreSQL cannot store a NUL: it was a 500
        ({"placement": {"agency_name": "PT " + "A" * 4_000}}, "placement.agency_name"),
        ({"travel": {"exit_point": "BTM\u0007"}}, "travel.exit_point"),
        ({"screened_at": "2062-11-23T08:40:00+07:00"}, "screened_at"),  # would bury its referral
    ],
)
def test_a_case_a_desk_could_not_have_typed_gets_422_alone_or_in_a_bulk_and_stores_nothing(
    client: TestClient, desk: dict[str, str], engine: Engine, change: dict[str, Any], field: str
) -> None:
    bad = tourist(**change)
    alone = client.post("/v1/screenings", json=bad, headers=desk)
    assert (alone.status_code, alone.json()["field"]) == (422, field), alone.text
    bulk = [tourist(case_id=f"T-{n}") for n in range(3)] + [bad]
    together = client.post("/v1/screenings/bulk", json={"cases": bulk}, headers=desk)
    assert (together.status_code, together.json()["field"]) == (422, f"cases.3.{field}")
    assert rows(engine, tables.decisions) == 0
    assert rows(engine, tables.audit_log) == 2  # the pack pinned at start, the desk's key


def test_bulk_stores_every_case_or_none(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    cases = [tourist(case_id=f"T-{i}") for i in range(5)]
    answer = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert answer.status_code == 201
    assert [d["case_id"] for d in answer.json()["decisions"]] == [f"T-{i}" for i in range(5)]
    assert rows(engine, tables.decisions) == 5

    cases[3]["person"]["age"] = "old"
    refused = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert refused.status_code == 422
    assert refused.json()["field"] == "cases.3.person.age"
    assert rows(engine, tables.decisions) == 5


ESCORT = "+62 812-0000-2222"


def escorted(number: int, hour: int, escort: str = ESCORT) -> dict[str, Any]:
    return tourist(
        case_id=f"ESC-{number}",
        screened_at=f"2026-11-23T{hour:02d}:00:00+00:00",
        person={"passport_no": f"C{number:07d}"},
        travel={"destination_country": "MY", "exit_point": "BTM"},
        links={"escort_ref": escort},
    )


def flagged(decision: dict[str, Any]) -> set[str]:
    return {flag["rule_id"] for flag in decision["flags"]}


def test_a_bulk_links_its_travellers_of_one_escort_in_order_of_screening_time(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    cases = [escorted(3, 10), escorted(1, 8), tourist(), escorted(2, 9), escorted(4, 8, "+62 1")]
    answer = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert answer.status_code == 201, answer.text
    decisions = answer.json()["decisions"]
    assert ["escort_network" in flagged(d) for d in decisions] == [True, False, False, False, False]
    assert decisions[0]["tier"] == "urgent"
    assert rows(engine, tables.escort_links) == 4
    later = client.post("/v1/screenings", json=escorted(5, 11), headers=desk).json()
    assert "escort_network" in flagged(later)  # the bulk's links were stored


@pytest.mark.parametrize("sent", ["alone", "in a bulk"])
def test_a_case_synced_late_is_the_escorts_third_among_those_linked_after_it(
    client: TestClient, desk: dict[str, str], sent: str
) -> None:
    """Travellers of one escort screened at 09:00 and 10:00; a desk back from an outage then
    sends its 08:00 traveller: a window holds the three, and the late case is urgent (it
    counted one traveller, and the escort passed unflagged)."""
    escort = f"+62 812-0000-44{len(sent)}"
    for number, hour in ((2, 9), (3, 10)):
        live = client.post("/v1/screenings", json=escorted(number, hour, escort), headers=desk)
        assert "escort_network" not in flagged(live.json())
    late = escorted(1, 8, escort)
    if sent == "alone":
        decision = client.post("/v1/screenings", json=late, headers=desk).json()
    else:
        answer = client.post("/v1/screenings/bulk", json={"cases": [late]}, headers=desk)
        [decision] = answer.json()["decisions"]
    assert "escort_network" in flagged(decision)
    assert decision["tier"] == "urgent"


def test_a_bulk_counts_a_traveller_another_desk_linked_while_it_screened(
    client: TestClient,
    desk: dict[str, str],
    engine: Engine,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk counts its escorts' travellers before taking the write lock; a traveller of one
    escort that another desk links in between is counted all the same."""
    token = app.state.service.pseudonymiser.token

    class AnotherDeskMeanwhile(PreviewHistory):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            with database.transaction(engine) as connection:
                DatabaseCaseHistory(connection).link(
                    token("escort_ref", ESCORT),
                    "passport_no:other",
                    datetime(2026, 11, 23, 7, tzinfo=UTC),
                    timedelta(days=30),
                )

    monkeypatch.setattr(service, "PreviewHistory", AnotherDeskMeanwhile)
    cases = [escorted(1, 8), escorted(2, 9), escorted(3, 9, "+62 1")]
    answer = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert answer.status_code == 201, answer.text
    decisions = answer.json()["decisions"]
    assert ["escort_network" in flagged(d) for d in decisions] == [False, True, False]
    assert rows(engine, tables.escort_links) == 4


def test_a_bulk_screens_its_escorts_again_when_an_admin_activates_a_pack_while_it_screened(
    client: TestClient,
    desk: dict[str, str],
    engine: Engine,
    app: FastAPI,
    next_pack: str,  # noqa: F811
    trained: TrainedModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk counts its escorts' travellers with the components it started with; an
    activation in between makes every decision of it, escorted or not, the new pack's, and the
    counts are made again with it."""
    with database.transaction(engine) as connection:
        admin, _secret = keys.create(connection, "admin", "LTSA admin", datetime.now(UTC))

    class ActivationMeanwhile(PreviewHistory):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            app.state.service.activate(next_pack, trained.version, admin)

    monkeypatch.setattr(service, "PreviewHistory", ActivationMeanwhile)
    cases = [escorted(1, 8), tourist(), escorted(2, 9), escorted(3, 10)]
    answer = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert answer.status_code == 201, answer.text
    decisions = answer.json()["decisions"]
    assert [d["versions"]["rule_pack"] for d in decisions] == [next_pack] * 4
    assert ["escort_network" in flagged(d) for d in decisions] == [False, False, False, True]
    assert rows(engine, tables.escort_links) == 3


def test_bulk_takes_at_most_1000_cases(client: TestClient, desk: dict[str, str]) -> None:
    answer = client.post("/v1/screenings/bulk", json={"cases": [tourist()] * 1001}, headers=desk)
    assert answer.status_code == 422
    assert answer.json()["field"] == "cases"


def test_an_oversized_body_gets_413(client: TestClient, desk: dict[str, str]) -> None:
    padding = "x" * 5_000_000
    answer = client.post(
        "/v1/screenings",
        json=tourist(case_id="T", placement={"agency_name": padding}),
        headers=desk,
    )
    assert answer.status_code == 413
    assert answer.json()["error"] == "TooLarge"


def test_a_body_that_is_not_json_or_not_an_object_gets_422_and_stores_nothing(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    headers = {**desk, "Content-Type": "application/json"}
    broken = client.post("/v1/screenings", content=b'{"channel": "port_desk",', headers=headers)
    assert broken.status_code == 422
    assert broken.json()["field"] == "body"
    assert "not valid JSON" in broken.json()["detail"]
    listed = client.post("/v1/screenings", json=[tourist()], headers=desk)
    assert listed.status_code == 422
    assert listed.json()["field"] == "(case)"
    assert rows(engine, tables.decisions) == 0


def test_a_bulk_checks_the_key_first_and_reads_its_body_as_a_single_case_is_read(
    client: TestClient, desk: dict[str, str], admin: dict[str, str], engine: Engine
) -> None:
    broken = b'{"cases": ['
    json_type = {"Content-Type": "application/json"}
    no_key = client.post("/v1/screenings/bulk", content=broken, headers=json_type)
    assert no_key.status_code == 401  # it was a 422 about the body, before the key
    wrong_role = client.post("/v1/screenings/bulk", content=broken, headers={**admin, **json_type})
    assert wrong_role.status_code == 403
    answer = client.post("/v1/screenings/bulk", content=broken, headers={**desk, **json_type})
    assert (answer.status_code, answer.json()["field"]) == (422, "body")
    assert "not valid JSON" in answer.json()["detail"]  # the field was a character offset
    for body, field in [
        ([tourist()], "cases"),
        ({"cases": "T-1"}, "cases"),
        ({"cases": [tourist(), [1, 2]]}, "cases.1"),
    ]:
        answer = client.post("/v1/screenings/bulk", json=body, headers=desk)
        assert (answer.status_code, answer.json()["field"]) == (422, field), answer.text
    assert rows(engine, tables.decisions) == 0


def test_a_group_sent_null_as_a_dotted_key_and_as_an_object_is_screened_alone_or_in_a_bulk(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    # found by schemathesis: a bulk with such a case was a 500
    both = {"placement.documents": None, "placement": {"documents": {"work_contract": False}}}
    alone = client.post("/v1/screenings", json=tourist(case_id="T-1", **both), headers=desk)
    assert alone.status_code == 201, alone.text
    bulk = {"cases": [tourist(case_id="T-2"), tourist(case_id="T-3", **both)]}
    together = client.post("/v1/screenings/bulk", json=bulk, headers=desk)
    assert together.status_code == 201, together.text
    assert rows(engine, tables.decisions) == 3


def test_a_field_in_the_wrong_group_is_named_with_the_one_meant(
    client: TestClient, desk: dict[str, str]
) -> None:
    # the same words as the command line's (tests/api/test_cli.py): one parser
    answer = client.post("/v1/screenings", json=dict(tourist(), travel={"age": 23}), headers=desk)
    assert answer.status_code == 422
    assert answer.json()["problems"] == [
        {"field": "travel.age", "problem": "unknown field, did you mean person.age?"}
    ]


def test_a_screening_time_sent_as_a_number_is_refused_as_the_cli_refuses_it(
    client: TestClient, desk: dict[str, str], engine: Engine, app: Any
) -> None:
    # 1765065600 would be read as seconds since 1970: 2025-12-07T00:00Z, judged on that day
    bad = tourist(screened_at=1765065600)
    answer = client.post("/v1/screenings", json=bad, headers=desk)
    assert answer.status_code == 422
    assert answer.json()["problems"] == [
        {
            "field": "screened_at",
            "problem": "expected an ISO 8601 date and time, like 2026-12-07T08:00:00+07:00, "
            "not a number",
        }
    ]
    with_cli = io.StringIO()
    screener = app.state.service.parts.screener
    screen_stream(screener, io.StringIO(json.dumps(bad)), io.StringIO(), with_cli)
    assert answer.json()["detail"] in with_cli.getvalue()
    assert rows(engine, tables.decisions) == 0


def misnamed(count: int, case_id: str) -> dict[str, Any]:
    return tourist(case_id=case_id, person={f"passport_number_{n}": "x" for n in range(count)})


def test_a_case_of_thousands_of_unknown_fields_is_refused_in_a_page_not_megabytes(
    client: TestClient, desk: dict[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each problem named with a hint cost a third of a millisecond and 80 bytes: 120,000 of
    them held a server process for 40 s and answered 21 MB."""
    read_in: list[str] = []
    parse = screenings.parse_case

    def watched(record: dict[str, Any], *args: Any) -> Any:
        read_in.append(threading.current_thread().name)
        return parse(record, *args)

    monkeypatch.setattr(screenings, "parse_case", watched)
    answer = client.post("/v1/screenings", json=misnamed(20_000, "T-many"), headers=desk)
    assert answer.status_code == 422
    problems = answer.json()["problems"]
    assert len(problems) == 51
    assert problems[-1] == {"field": "(case)", "problem": "19,950 more problems, not listed"}
    assert len(answer.content) < 20_000
    # a body far larger than a case is read beside the event loop, where other desks wait
    assert client.post("/v1/screenings", json=tourist(), headers=desk).status_code == 201
    [large, small] = read_in
    assert large != small
    assert rows(engine, tables.decisions) == 1


def test_a_bulk_names_its_first_fifty_problems_and_counts_those_of_each_case_after(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    cases = [misnamed(30, f"T-{n}") for n in range(3)]
    answer = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert answer.status_code == 422
    problems = answer.json()["problems"]
    assert [p["field"] for p in problems[:51]] == [
        *(f"cases.0.person.passport_number_{n}" for n in range(30)),
        *(f"cases.1.person.passport_number_{n}" for n in range(20)),
        "cases.1",
    ]
    assert problems[50:] == [
        {"field": "cases.1", "problem": "10 more problems, not listed"},
        {"field": "cases.2", "problem": "30 more problems, not listed"},
    ]
    assert rows(engine, tables.decisions) == 0


def unidentified(age: int, hour: int) -> dict[str, Any]:
    """A traveller known by nothing but the desk's case number 1: no passport, NIK or name."""
    return tourist(
        case_id="1",
        screened_at=f"2026-11-23T{hour:02d}:00:00+00:00",
        person={"age": age},
        links={"escort_ref": "0812-5555-2222"},
    )


def test_desks_case_1_are_different_travellers_of_an_escort(
    client: TestClient, make_key: Any
) -> None:
    """Three desks that each number their cases from 1 send a traveller known only by case 1,
    all with one escort: three people, and the third is urgent. Before, case 1 was one traveller
    whoever sent it, and escort_network never fired."""
    sent = [(make_key("desk"), age, hour) for age, hour in ((19, 8), (34, 9), (52, 10))]
    decisions = [
        client.post("/v1/screenings", json=unidentified(age, hour), headers=desk).json()
        for desk, age, hour in sent
    ]
    assert ["escort_network" in flagged(d) for d in decisions] == [False, False, True]
    assert decisions[2]["tier"] == "urgent"


def test_a_desk_screening_its_case_1_again_after_its_key_is_rotated_counts_it_once(
    client: TestClient, engine: Engine, make_key: Any
) -> None:
    """A desk's case 1, screened again with the key that replaced the desk's first, is the same
    traveller: with another desk's case 1, the escort has two, and escort_network does not fire
    (counted by key, the desk's case 1 would be two people and the escort's third urgent)."""
    at = datetime.now(UTC)
    with database.transaction(engine) as connection:
        first, secret = keys.create(connection, "desk", "Batam Centre desk", at)
        _second, rotated = keys.create(connection, "desk", None, at, replaces=first.key_id)
    sent = [
        ({"Authorization": f"Bearer {secret}"}, 8),
        (make_key("desk"), 9),
        ({"Authorization": f"Bearer {rotated}"}, 10),
        ({"Authorization": f"Bearer {secret}"}, 11),
    ]
    for headers, hour in sent:
        decision = client.post("/v1/screenings", json=unidentified(34, hour), headers=headers)
        assert decision.status_code == 201, decision.text
        assert "escort_network" not in flagged(decision.json())


COERCED = tourist(
    case_id="BTM-0412",
    person={"passport_no": "C0000412"},
    travel={"destination_country": "KH", "documents_held_by_other": True},
    interview={"reports_coercion": True, "wants_to_go_home": True},
)


def test_a_desk_sending_a_case_again_gets_its_decision_and_nothing_is_stored_twice(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    """A retry after a lost answer (the same case_id and screened_at): the decision first given,
    marked replayed; one decision, one audit entry, one referral for the agency to work."""
    first = client.post("/v1/screenings", json=COERCED, headers=desk)
    assert first.status_code == 201, first.text
    assert first.json()["tier"] == "urgent"
    assert "Idempotent-Replayed" not in first.headers
    entries = rows(engine, tables.audit_log)
    again = client.post("/v1/screenings", json=COERCED, headers=desk)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert (rows(engine, tables.decisions), rows(engine, tables.audit_log)) == (1, entries)
    assert rows(engine, tables.referrals) == 1
    in_wib = {**COERCED, "screened_at": "2026-11-23T16:00:00+07:00"}  # the same instant
    assert client.post("/v1/screenings", json=in_wib, headers=desk).json() == first.json()


def test_a_case_sent_again_with_other_answers_is_refused_naming_the_case_id(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    first = screen(client, desk, COERCED)
    changed = {**COERCED, "interview": {**COERCED["interview"], "visible_injury": True}}
    refused = client.post("/v1/screenings", json=changed, headers=desk)
    assert refused.status_code == 409, refused.text
    assert refused.json()["field"] == "case_id"
    assert first["decision_id"] in refused.json()["detail"]
    assert rows(engine, tables.decisions) == 1
    later = {**changed, "screened_at": "2026-11-23T09:20:00+00:00"}  # screened again
    assert screen(client, desk, later)["decision_id"] != first["decision_id"]
    assert rows(engine, tables.decisions) == 2


def test_another_desks_case_of_the_same_number_and_time_is_its_own(
    client: TestClient, desk: dict[str, str], make_key: Any, engine: Engine
) -> None:
    mine = screen(client, desk, tourist(case_id="1"))
    theirs = screen(client, make_key("desk"), tourist(case_id="1"))
    assert mine["decision_id"] != theirs["decision_id"]
    assert rows(engine, tables.decisions) == 2


def test_a_rotated_key_sending_its_desks_case_again_gets_the_decision_given(
    client: TestClient, engine: Engine
) -> None:
    at = datetime.now(UTC)
    with database.transaction(engine) as connection:
        first, secret = keys.create(connection, "desk", "Entikong desk", at)
        _second, rotated = keys.create(connection, "desk", None, at, replaces=first.key_id)
    made = screen(client, {"Authorization": f"Bearer {secret}"}, COERCED)
    again = screen(client, {"Authorization": f"Bearer {rotated}"}, COERCED)
    assert again["decision_id"] == made["decision_id"]


def test_a_bulk_sent_again_after_a_lost_answer_is_answered_from_storage(
    client: TestClient,
    desk: dict[str, str],
    engine: Engine,
    app: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A desk syncing after an outage sends its first three cases, loses the answer, and sends
    them again with two more: the three get their decisions, the two are screened (only they:
    the three are looked up before anything is screened)."""
    cases = [tourist(case_id=f"T-{i}") for i in range(5)]
    first = client.post("/v1/screenings/bulk", json={"cases": cases[:3]}, headers=desk)
    assert first.status_code == 201
    assert first.json()["replayed"] == []
    screener = app.state.service.parts.screener
    screened: list[str] = []
    screen_many = screener.screen_many

    def counted(sent: list[Any], *args: Any, **kwargs: Any) -> Any:
        screened.extend(case.case_id for case in sent)
        return screen_many(sent, *args, **kwargs)

    monkeypatch.setattr(screener, "screen_many", counted)
    again = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert screened == ["T-3", "T-4"]
    assert again.status_code == 201, again.text
    assert again.json()["replayed"] == [0, 1, 2]
    assert "Idempotent-Replayed" not in again.headers  # two cases are new
    ids = [d["decision_id"] for d in again.json()["decisions"]]
    assert ids[:3] == [d["decision_id"] for d in first.json()["decisions"]]
    assert [d["case_id"] for d in again.json()["decisions"]] == [f"T-{i}" for i in range(5)]
    assert rows(engine, tables.decisions) == 5
    whole = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert whole.headers["Idempotent-Replayed"] == "true"
    assert [d["decision_id"] for d in whole.json()["decisions"]] == ids


def test_a_bulk_holding_a_case_sent_before_with_other_answers_stores_nothing(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    screen(client, desk, tourist(case_id="T-1"))
    cases = [tourist(case_id="T-0"), tourist(case_id="T-1", person={"age": 35})]
    refused = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert refused.status_code == 409, refused.text
    assert refused.json()["field"] == "cases.1.case_id"
    assert rows(engine, tables.decisions) == 1


def test_a_bulk_holding_one_case_twice_is_refused_naming_the_second(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    cases = [tourist(case_id="T-1"), tourist(case_id="T-2"), tourist(case_id="T-1")]
    refused = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "cases.2.case_id"
    assert "case 0" in refused.json()["detail"]
    assert rows(engine, tables.decisions) == 0
    # the same case_id screened twice, at two times (a re-screening), is two cases
    cases[2]["screened_at"] = "2026-11-23T10:00:00+00:00"
    again = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert again.status_code == 201, again.text


def test_a_case_sent_twice_at_once_is_stored_once_and_both_get_its_decision(
    app: Any, client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """A double submit whose requests reach the loop together, among other desks': one group,
    stored once and whole (not split into a transaction a request), both answers carrying the
    one decision. Sent twice with other answers, the second alone is refused."""
    svc: service.Service = app.state.service
    desk_key = keys.Caller("k1", "Batam desk", "desk")
    others = [keys.Caller(f"k{n}", f"desk {n}", "desk") for n in range(2, 6)]
    case = parse_case(COERCED)

    async def together(*sent: tuple[Any, keys.Caller]) -> list[Any]:
        return await asyncio.gather(
            *(svc.screen_together([one], caller) for one, caller in sent),
            return_exceptions=True,
        )

    other_cases = [(parse_case(tourist(case_id="T-9")), caller) for caller in others]
    [[one], [two], *theirs] = asyncio.run(
        together((case, desk_key), (case, desk_key), *other_cases)
    )
    assert [len({d.decision_id for d in answer}) for answer in theirs] == [1] * len(others)
    assert one.decision_id == two.decision_id
    assert [one.replayed, two.replayed] == [False, True]
    assert rows(engine, tables.decisions) == 1 + len(others)
    assert rows(engine, tables.referrals) == 1
    assert "storing them one by one" not in caplog.text

    changed = parse_case({**COERCED, "case_id": "BTM-0413"})
    other = parse_case({**COERCED, "case_id": "BTM-0413", "person": {"age": 40}})
    first, refused = asyncio.run(together((changed, desk_key), (other, desk_key)))
    assert first[0].case_id == "BTM-0413"
    assert isinstance(refused, service.SentWithOtherAnswers)
    assert rows(engine, tables.decisions) == 2 + len(others)
