from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from api.cli import main
from api.storage import audit, database, tables
from models.dataset import read_labelled
from tests.api.calls import Headers, rows, screen
from tests.api.conftest import KeyMaker
from tests.factories import documented_worker, tourist

COERCED = {"interview": {"reports_coercion": True}}  # urgent: reported coercion
NIK = "3171234567890123"


def listed(client: TestClient, headers: Headers, **params: Any) -> dict[str, Any]:
    answer = client.get("/v1/decisions", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    page: dict[str, Any] = answer.json()
    return page


def ids(page: dict[str, Any]) -> set[str]:
    return {item["decision_id"] for item in page["decisions"]}


# --- one decision ------------------------------------------------------------------------------


def test_a_desk_reads_back_its_decision_as_it_was_given(client: TestClient, desk: Headers) -> None:
    given = screen(client, desk, tourist(case_id="T-read", **COERCED))
    answer = client.get(f"/v1/decisions/{given['decision_id']}", headers=desk)
    assert answer.status_code == 200
    stored = answer.json()
    for key in ("decision_id", "case_id", "tier", "risk_score", "flags", "referral", "versions"):
        assert stored[key] == given[key], key
    assert stored["asked_by"]["role"] == "desk"
    assert "input" not in stored, "the pseudonymised input is for analysts' exports only"


def test_reads_go_on_while_a_write_holds_the_database(
    client: TestClient, desk: Headers, analyst: Headers, engine: Engine, app: FastAPI
) -> None:
    """As while a 1,000-case bulk is being stored: on SQLite its transaction holds the file's
    write lock, and a read that took it too would wait for the whole bulk."""
    given = screen(client, desk, tourist(case_id="T-meanwhile"))
    app.state.keys.forget()  # the keys are looked up again too
    with database.transaction(engine) as writing:
        writing.execute(tables.audit_head.update().values(seq=tables.audit_head.c.seq))
        answer = client.get(f"/v1/decisions/{given['decision_id']}", headers=desk)
        assert answer.status_code == 200, answer.text
        assert ids(listed(client, analyst)) == {given["decision_id"]}
        assert client.get("/v1/referrals", headers=desk).status_code == 200


def test_a_desk_sees_only_its_own_decisions_and_an_analyst_sees_all(
    client: TestClient, desk: Headers, make_key: KeyMaker, analyst: Headers, admin: Headers
) -> None:
    mine = screen(client, desk, tourist(case_id="mine"))
    other_desk = make_key("desk")
    theirs = screen(client, other_desk, tourist(case_id="theirs"))
    url = f"/v1/decisions/{mine['decision_id']}"

    hidden = client.get(url, headers=other_desk)
    assert hidden.status_code == 404
    assert hidden.json()["field"] == "decision_id"
    assert client.get(f"{url}/outcome", headers=other_desk).status_code == 404
    acted = client.post(f"{url}/outcome", json={"action": "cleared"}, headers=other_desk)
    assert acted.status_code == 404
    assert client.get(f"{url}/outcome", headers=desk).json()["actions"] == [], "nothing stored"
    assert ids(listed(client, desk)) == {mine["decision_id"]}
    assert ids(listed(client, other_desk)) == {theirs["decision_id"]}

    assert client.get(url, headers=analyst).json()["decision_id"] == mine["decision_id"]
    assert ids(listed(client, analyst)) == {mine["decision_id"], theirs["decision_id"]}
    missing = client.get("/v1/decisions/0123456789abcdef0123456789abcdef", headers=analyst)
    assert missing.status_code == 404
    assert client.get(url).status_code == 401
    assert client.get(url, headers=admin).status_code == 403


# --- the list ----------------------------------------------------------------------------------


def test_the_list_filters_by_tier_rule_channel_and_screening_time(
    client: TestClient, desk: Headers, analyst: Headers
) -> None:
    calm = screen(client, desk, tourist(case_id="calm", screened_at="2026-11-20T08:00:00+00:00"))
    coerced = screen(
        client,
        desk,
        tourist(case_id="coerced", screened_at="2026-11-21T08:00:00+00:00", **COERCED),
    )
    worker = screen(
        client,
        desk,
        documented_worker(
            case_id="worker",
            screened_at="2026-11-22T08:00:00+00:00",
            placement={"agency_license_no": "SIP3MI-9999-2022"},  # not in the registry
        ),
    )
    assert coerced["tier"] == "urgent"
    assert "unlicensed_agency" in {f["rule_id"] for f in worker["flags"]}
    everything = listed(client, analyst)
    assert ids(everything) == {calm["decision_id"], coerced["decision_id"], worker["decision_id"]}
    assert [d["case_id"] for d in everything["decisions"]] == ["worker", "coerced", "calm"]
    assert everything["next"] is None

    assert ids(listed(client, analyst, tier="urgent")) == {coerced["decision_id"]}
    assert ids(listed(client, analyst, rule_id="coercion_or_deception_reported")) == {
        coerced["decision_id"]
    }
    by_rule = listed(client, analyst, rule_id="unlicensed_agency")
    assert ids(by_rule) == {worker["decision_id"]}
    assert "unlicensed_agency" in by_rule["decisions"][0]["rule_ids"]
    assert ids(listed(client, analyst, channel="ltsa_counter")) == {worker["decision_id"]}
    assert ids(listed(client, analyst, channel="immigration_desk")) == {
        calm["decision_id"],
        coerced["decision_id"],
    }
    assert ids(listed(client, analyst, channel="port_desk")) == set()
    assert ids(listed(client, analyst, rule_id="minor_departing_for_work")) == set()  # none fired
    window = listed(
        client,
        analyst,
        screened_from="2026-11-21T08:00:00+00:00",  # inclusive
        screened_to="2026-11-22T08:00:00+00:00",  # exclusive
    )
    assert ids(window) == {coerced["decision_id"]}
    in_jakarta_time = listed(client, analyst, screened_from="2026-11-22T15:00:00+07:00")
    assert ids(in_jakarta_time) == {worker["decision_id"]}


def test_paging_with_next_gives_every_decision_exactly_once(
    client: TestClient, desk: Headers, analyst: Headers
) -> None:
    base = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    cases = [
        # pairs share a screening time, so the cursor must break ties
        tourist(case_id=f"P-{i}", screened_at=(base + timedelta(minutes=i // 2)).isoformat())
        for i in range(11)
    ]
    answer = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk)
    assert answer.status_code == 201
    made = [d["decision_id"] for d in answer.json()["decisions"]]

    seen: list[str] = []
    times: list[str] = []
    url = "/v1/decisions?limit=3"
    pages = 0
    while True:
        answer = client.get(url, headers=analyst)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages += 1
        assert len(page["decisions"]) <= 3
        seen += [d["decision_id"] for d in page["decisions"]]
        times += [d["screened_at"] for d in page["decisions"]]
        if page["next"] is None:
            break
        # pasted into the URL as it is, as a client or an analyst with curl does
        assert re.fullmatch(r"[0-9A-Za-z._-]+", page["next"]), page["next"]
        url = f"/v1/decisions?limit=3&after={page['next']}"
        assert pages < 10, "the cursor does not move on"
    assert pages == 4
    assert len(seen) == len(set(seen)) == 11, "no duplicates"
    assert set(seen) == set(made), "nothing skipped"
    assert times == sorted(times, reverse=True), "newest first"


def test_paging_keeps_the_filters(client: TestClient, desk: Headers, analyst: Headers) -> None:
    base = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    cases = [
        tourist(case_id=f"F-{i}", screened_at=(base + timedelta(minutes=i)).isoformat())
        | ({"interview": {"reports_coercion": True}} if i % 2 else {})
        for i in range(8)
    ]
    decisions = client.post("/v1/screenings/bulk", json={"cases": cases}, headers=desk).json()
    urgent = {d["decision_id"] for d in decisions["decisions"] if d["tier"] == "urgent"}
    assert len(urgent) == 4
    first = listed(client, analyst, tier="urgent", limit=3)
    second = listed(client, analyst, tier="urgent", limit=3, after=first["next"])
    assert second["next"] is None
    assert ids(first) | ids(second) == urgent
    assert not ids(first) & ids(second)


def test_a_filter_given_twice_lists_either_and_a_single_valued_one_given_twice_is_422(
    client: TestClient, desk: Headers, analyst: Headers
) -> None:
    clear = screen(client, desk, documented_worker(case_id="W"))
    urgent = screen(client, desk, tourist(case_id="T", **COERCED))
    assert (clear["tier"], urgent["tier"]) == ("clear", "urgent")
    both = client.get("/v1/decisions?tier=urgent&tier=clear", headers=analyst)
    assert ids(both.json()) == {clear["decision_id"], urgent["decision_id"]}
    channels = f"channel=ltsa_counter&channel={tourist()['channel']}"  # W's, T's
    assert len(client.get(f"/v1/decisions?{channels}", headers=analyst).json()["decisions"]) == 2
    for query, field in (
        ("limit=1&limit=500", "limit"),
        ("rule_id=coercion_reported&rule_id=unlicensed_agency", "rule_id"),
        ("screened_from=2026-01-01&screened_from=2026-02-01", "screened_from"),
    ):
        answer = client.get(f"/v1/decisions?{query}", headers=analyst)
        assert answer.status_code == 422, query
        assert answer.json()["field"] == field
        assert "given 2 times; it takes one" in answer.json()["detail"]


def test_bad_list_parameters_and_forged_cursors_are_422_naming_them(
    client: TestClient, analyst: Headers
) -> None:
    for params, field in (
        ({"tier": "severe"}, "tier"),
        ({"channel": "email"}, "channel"),
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"screened_from": "yesterday"}, "screened_from"),
        ({"after": "page-two"}, "after"),
        ({"rule_id": "unlicenced_agency"}, "rule_id"),  # a typo: no pack or decision has it
        ({"screened_from": "0001-01-01T00:00:00+14:00"}, "screened_from"),  # before year 1 UTC
        ({"screened_to": "9999-12-31T23:59:59-14:00"}, "screened_to"),  # after year 9999
        ({"after": "0001-01-01T00:00:00+14:00|abc"}, "after"),
        ({"after": "2026-13-01T00:00:00+00:00|abc"}, "after"),
        ({"screened_from": "2026-12-07", "screened_to": "2026-12-06"}, "screened_to"),
        (
            {"screened_from": "2026-12-07T00:00", "screened_to": "2026-12-07T07:00+07:00"},
            "screened_to",
        ),
    ):
        answer = client.get("/v1/decisions", params=params, headers=analyst)
        assert answer.status_code == 422, params
        assert answer.json()["field"] == field, params


@pytest.mark.parametrize("field", ["screened_from", "screened_to"])
@pytest.mark.parametrize("number", ["0", "1765065600", "20261207"])
def test_a_time_given_as_a_number_is_422_naming_it(
    client: TestClient, analyst: Headers, field: str, number: str
) -> None:
    """Pydantic reads a number as Unix time: screened_from=0 was 1970-01-01T00:00Z, and
    screened_to=20261207 (a date without dashes) 1970-08-23, an empty page."""
    answer = client.get("/v1/decisions", params={field: number}, headers=analyst)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["detail"] == (
        f"{field}: expected a date like 2026-12-07 or a time like 2026-12-07T08:00:00+07:00, "
        f"got {number}"
    )


def test_times_without_a_zone_in_filters_or_cursors_are_not_a_server_error(
    client: TestClient, desk: Headers, analyst: Headers
) -> None:
    """Cases take a time without a zone as UTC; the filters should too (or refuse it as 422)."""
    screen(client, desk, tourist(screened_at="2026-11-21T08:00:00+00:00"))
    for params in (
        {"screened_from": "2026-11-21T00:00:00"},
        {"screened_to": "2026-11-22T00:00:00"},
    ):
        answer = client.get("/v1/decisions", params=params, headers=analyst)
        assert answer.status_code in (200, 422), (params, answer.text)
        if answer.status_code == 200:
            assert len(answer.json()["decisions"]) == 1, params
        else:
            assert answer.json()["field"] == next(iter(params)), params


# --- outcomes ----------------------------------------------------------------------------------


def test_an_officer_records_an_action_then_later_the_confirmed_outcome(
    client: TestClient, desk: Headers
) -> None:
    decision = screen(client, desk, tourist(**COERCED))
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    empty = client.get(url, headers=desk).json()
    assert empty == {
        "decision_id": decision["decision_id"],
        "actions": [],
        "confirmed": None,
        "confirmations": [],
        "notes": [],
    }

    acted = client.post(url, json={"action": "postponed"}, headers=desk)
    assert acted.status_code == 201
    assert [a["action"] for a in acted.json()["actions"]] == ["postponed"]
    assert acted.json()["confirmed"] is None

    note = "escort left; family called on 0812-3456-7890"
    client.post(url, json={"action": "referred", "note": note}, headers=desk)
    confirmed = client.post(
        url, json={"confirmed": "trafficking", "note": "confirmed by TPPO"}, headers=desk
    )
    assert confirmed.status_code == 201
    outcome = client.get(url, headers=desk).json()
    assert [a["action"] for a in outcome["actions"]] == ["postponed", "referred"]
    assert outcome["confirmed"] == "trafficking"
    # the officers' notes read back, as stored (a phone redacted)
    assert [n["note"] for n in outcome["notes"]] == [
        "escort left; family called on [redacted]",
        "confirmed by TPPO",
    ]


def test_a_confirmed_outcome_is_set_once(client: TestClient, desk: Headers, engine: Engine) -> None:
    decision = screen(client, desk, tourist())
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    assert client.post(url, json={"confirmed": "procedural"}, headers=desk).status_code == 201
    same = client.post(url, json={"confirmed": "procedural", "action": "cleared"}, headers=desk)
    assert same.status_code == 201, "the same confirmed outcome again is fine"
    outcomes_before, log_before = rows(engine, tables.outcomes), rows(engine, tables.audit_log)

    refused = client.post(
        url, json={"action": "referred", "confirmed": "trafficking"}, headers=desk
    )
    assert refused.status_code == 409
    assert refused.json()["field"] == "confirmed"
    assert rows(engine, tables.outcomes) == outcomes_before
    assert rows(engine, tables.audit_log) == log_before
    outcome = client.get(url, headers=desk).json()
    assert outcome["confirmed"] == "procedural"
    assert [a["action"] for a in outcome["actions"]] == ["cleared"]


def labels(client: TestClient, analyst: Headers) -> dict[str, str]:
    """Case id -> label, as the labelled export gives them."""
    answer = client.get("/v1/outcomes/labelled", headers=analyst)
    assert answer.status_code == 200, answer.text
    return labelled_csv(answer.text)


def labelled_csv(text: str) -> dict[str, str]:
    return {row["case_id"]: row["non_procedural"] for row in csv.DictReader(io.StringIO(text))}


def test_a_wrong_confirmed_outcome_is_corrected_and_the_history_keeps_both(
    client: TestClient,
    desk: Headers,
    analyst: Headers,
    engine: Engine,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The officer pressed trafficking for a procedural departure: a correction naming the
    wrong outcome, with the reason, supersedes it in the outcome and in the training data;
    the first confirmation stays in the history and in the trail."""
    decision = screen(client, desk, documented_worker(case_id="C-1"))
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    assert client.post(url, json={"confirmed": "trafficking"}, headers=desk).status_code == 201
    assert labels(client, analyst) == {"C-1": "True"}

    plain = client.post(url, json={"confirmed": "procedural"}, headers=desk)
    assert (plain.status_code, plain.json()["field"]) == (409, "confirmed"), plain.text
    assert '"corrects": "trafficking"' in plain.json()["detail"], "it says how to correct it"

    reason = "wrong button: the placement file checked out with BP2MI, NIK 3171234567890123"
    correction = {"confirmed": "procedural", "corrects": "trafficking", "note": reason}
    corrected = client.post(url, json=correction, headers=desk)
    assert corrected.status_code == 201, corrected.text
    outcome = client.get(url, headers=desk).json()
    assert outcome == corrected.json()
    assert outcome["confirmed"] == "procedural"
    first, second = outcome["confirmations"]
    assert (first["confirmed"], first["corrects"], first["note"]) == ("trafficking", None, None)
    assert (second["confirmed"], second["corrects"]) == ("procedural", "trafficking")
    assert (
        second["note"] == "wrong button: the placement file checked out with BP2MI, NIK [redacted]"
    )
    stored = client.get(f"/v1/decisions/{decision['decision_id']}", headers=desk).json()
    assert first["key_id"] == second["key_id"] == stored["asked_by"]["key_id"]
    assert datetime.fromisoformat(first["at"]) <= datetime.fromisoformat(second["at"])
    assert [n["note"] for n in outcome["notes"]] == [second["note"]]
    assert labels(client, analyst) == {"C-1": "False"}, "the export gives the corrected label"
    monkeypatch.setenv("LINDUNG_DATABASE_URL", database_url)
    exported = CliRunner().invoke(main, ["outcomes", "export", "--out", "-"])
    assert exported.exit_code == 0, exported.output
    assert labelled_csv(exported.stdout) == {"C-1": "False"}, "lindung outcomes export too"

    # a double submit of the correction, or of the first confirmation, changes nothing
    log_before = rows(engine, tables.audit_log)
    again = client.post(url, json=correction, headers=desk)
    assert (again.status_code, again.json()["field"]) == (409, "corrects"), again.text
    assert "confirmed as procedural, not trafficking" in again.json()["detail"]
    stale = client.post(url, json={"confirmed": "trafficking"}, headers=desk)
    assert (stale.status_code, stale.json()["field"]) == (409, "confirmed"), stale.text
    assert rows(engine, tables.audit_log) == log_before
    assert client.get(url, headers=desk).json() == outcome

    with engine.connect() as connection:
        o = tables.audit_log.c
        bodies = connection.execute(
            select(o.body).where(o.kind == "outcome").order_by(o.seq)
        ).scalars()
        assert [json.loads(body).get("corrects") for body in bodies] == [None, "trafficking"]
        assert audit.verify(connection).ok


def test_a_correction_names_the_outcome_in_force_gives_another_and_says_why(
    client: TestClient, desk: Headers, engine: Engine
) -> None:
    decision = screen(client, desk, tourist())
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    early = client.post(
        url, json={"confirmed": "procedural", "corrects": "trafficking", "note": "x"}, headers=desk
    )
    assert (early.status_code, early.json()["field"]) == (409, "corrects"), early.text
    assert "not confirmed yet" in early.json()["detail"]
    assert client.post(url, json={"confirmed": "non_procedural"}, headers=desk).status_code == 201
    before = rows(engine, tables.outcomes), rows(engine, tables.audit_log)
    for body, status, field in (
        ({"confirmed": "procedural", "corrects": "non_procedural"}, 422, "note"),
        ({"confirmed": "procedural", "corrects": "non_procedural", "note": " \u200b"}, 422, "note"),
        ({"action": "cleared", "corrects": "non_procedural", "note": "no"}, 422, "confirmed"),
        (
            {"confirmed": "non_procedural", "corrects": "non_procedural", "note": "x"},
            422,
            "confirmed",
        ),
        ({"confirmed": "procedural", "corrects": "guilty", "note": "x"}, 422, "corrects"),
        ({"confirmed": "procedural", "corrects": "trafficking", "note": "x"}, 409, "corrects"),
    ):
        answer = client.post(url, json=body, headers=desk)
        assert (answer.status_code, answer.json()["field"]) == (status, field), (body, answer.text)
    assert (rows(engine, tables.outcomes), rows(engine, tables.audit_log)) == before
    assert client.get(url, headers=desk).json()["confirmed"] == "non_procedural"


def test_an_empty_or_unknown_outcome_is_422_naming_the_field(
    client: TestClient, desk: Headers, engine: Engine
) -> None:
    decision = screen(client, desk, tourist())
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    empty = client.post(url, json={}, headers=desk)
    assert empty.status_code == 422
    assert empty.json()["field"] == "action"
    note_only = client.post(url, json={"note": "spoke to her"}, headers=desk)
    assert note_only.status_code == 422
    assert note_only.json()["field"] == "action"
    unknown = client.post(url, json={"action": "arrested"}, headers=desk)
    assert unknown.status_code == 422
    assert unknown.json()["field"] == "action"
    assert client.post(url, json={"confirmed": "guilty"}, headers=desk).json()["field"] == (
        "confirmed"
    )
    assert rows(engine, tables.outcomes) == 0


def test_an_id_number_in_a_note_is_stored_redacted(
    client: TestClient, desk: Headers, engine: Engine
) -> None:
    decision = screen(client, desk, tourist())
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    note = f"checked NIK {NIK} against the KTP; sister called on +6281234567890"
    answer = client.post(url, json={"action": "counselled", "note": note}, headers=desk)
    assert answer.status_code == 201
    with engine.connect() as connection:
        bodies = list(
            connection.execute(
                select(tables.audit_log.c.body).where(tables.audit_log.c.kind == "outcome")
            ).scalars()
        )
    assert len(bodies) == 1
    assert NIK not in bodies[0]
    assert "6281234567890" not in bodies[0]
    assert "[redacted]" in bodies[0]
    assert "checked NIK" in bodies[0], "the rest of the note is kept"


@pytest.mark.parametrize(
    ("note", "stored"),
    [
        (
            "call 0812-3456-7890, NIK 3201 9999 8888 7777, +62 812 3456 7890",
            "call [redacted], NIK [redacted], [redacted]",
        ),
        ("passport A 1234 567, ref 3201.9999.8888.7777", "passport A [redacted], ref [redacted]"),
        ("tel (0778) 123456", "tel [redacted]"),
        # in groups of three, as an amount is written: a phone's leading 0 tells them apart
        ("pendamping hp 081.234.567.890", "pendamping hp [redacted]"),
        ("pendamping hp 081,234,567,890", "pendamping hp [redacted]"),
        ("hp 62.812.350.949 or 62,812,350,949", "hp [redacted] or [redacted]"),
        ("paid Rp 62.800.000 and 628.000", "paid Rp 62.800.000 and 628.000"),
        ("rooms 101, 102, 103 and 104,105", "rooms 101, 102, 103 and 104,105"),
        # what is kept: dates, times and amounts, and short numbers
        (
            "paid Rp 15.000.000 on 2026-12-01 10:30, bus 12, 3 people",
            "paid Rp 15.000.000 on 2026-12-01 10:30, bus 12, 3 people",
        ),
    ],
)
def test_a_number_written_in_groups_is_redacted_and_dates_and_amounts_are_kept(
    client: TestClient, desk: Headers, engine: Engine, note: str, stored: str
) -> None:
    decision = screen(client, desk, tourist())
    url = f"/v1/decisions/{decision['decision_id']}/outcome"
    answer = client.post(url, json={"action": "counselled", "note": note}, headers=desk)
    assert answer.status_code == 201, answer.text
    with engine.connect() as connection:
        [body] = connection.execute(
            select(tables.audit_log.c.body).where(tables.audit_log.c.kind == "outcome")
        ).scalars()
    assert json.loads(body)["note"] == stored


# --- labelled export ---------------------------------------------------------------------------


def test_confirmed_cases_export_as_labelled_data_training_can_read(
    client: TestClient, desk: Headers, analyst: Headers, tmp_path: Path
) -> None:
    trafficked = screen(
        client,
        desk,
        tourist(
            case_id="L-1",
            person={"passport_no": "C7654321", "full_name": "Siti Aminah", "nik": NIK},
            travel={"transit_countries": ["SG", "TH"]},
            links={"escort_ref": "+62 812 0000 0001"},
            **COERCED,
        ),
    )
    procedural = screen(
        client,
        desk,
        documented_worker(
            case_id="L-2", person={"passport_no": "B1234567", "full_name": "Dewi Lestari"}
        ),
    )
    unconfirmed = screen(client, desk, tourist(case_id="L-3", person={"passport_no": "A7777777"}))
    for decision, confirmed in ((trafficked, "trafficking"), (procedural, "procedural")):
        url = f"/v1/decisions/{decision['decision_id']}/outcome"
        assert client.post(url, json={"confirmed": confirmed}, headers=desk).status_code == 201
    client.post(
        f"/v1/decisions/{unconfirmed['decision_id']}/outcome",
        json={"action": "cleared"},
        headers=desk,
    )

    answer = client.get("/v1/outcomes/labelled", headers=analyst)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    text = answer.text
    for identifier in (
        "C7654321",
        "Siti",
        "Aminah",
        NIK,
        "B1234567",
        "Dewi",
        "Lestari",
        "812 0000",
        "A7777777",
    ):
        assert identifier not in text, identifier

    exported = tmp_path / "labelled.csv"
    exported.write_text(text, encoding="utf-8")
    frame, labels = read_labelled(exported, "non_procedural")
    assert list(labels) == [True, False]
    header = text.splitlines()[0].split(",")
    assert "non_procedural" in header
    assert "travel.transit_countries" in header
    assert list(frame["case_id"]) == ["L-1", "L-2"]
    assert list(frame["travel.transit_countries"][0]) == ["SG", "TH"]
    assert frame["interview.reports_coercion"][0] in (True, "true")
    assert client.get("/v1/outcomes/labelled", headers=desk).status_code == 403
    assert client.get("/v1/outcomes/labelled").status_code == 401
