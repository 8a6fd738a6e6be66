from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backends.columnar import ColumnarBackend
from engine.backends.reference import ReferenceBackend
from engine.case import Case
from engine.case_input import parse_case
from engine.decision import Decision
from engine.frame import FEW_ROWS, Frame, frame_from_cases, row_values
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from engine.screening import Screener
from tests.factories import cases, documented_worker, merge, tourist

CONTRACT_KEYS = {
    "decision_id",
    "case_id",
    "screened_at",
    "tier",
    "risk_score",
    "flags",
    "explanation",
    "questions",
    "referral",
    "versions",
}


def screen(screener: Screener, record: dict[str, Any]) -> Decision:
    return screener.screen(parse_case(record))


def flag_ids(decision: Decision) -> list[str]:
    return [flag.rule_id for flag in decision.flags]


# --- the people the issue names: who must NOT be flagged -----------------------------------------


def test_tourist_with_a_return_ticket_is_clear(screener: Screener) -> None:
    decision = screen(screener, tourist())
    assert (decision.tier, flag_ids(decision)) == ("clear", [])
    assert decision.referral is None


def test_family_visit_by_ferry_is_clear(screener: Screener) -> None:
    visit = tourist(
        travel={
            "exit_point": "BTM",
            "exit_point_type": "ferry_terminal",
            "mode": "sea",
            "destination_country": "MY",
            "declared_purpose": "family_visit",
        }
    )
    assert flag_ids(screen(screener, visit)) == []


def test_documented_worker_on_the_nunukan_tawau_ferry_is_not_flagged(screener: Screener) -> None:
    worker = documented_worker(
        travel={
            "exit_point": "NNX",
            "exit_point_type": "ferry_terminal",
            "mode": "sea",
            "destination_country": "MY",
        },
        placement={"occupation": "plantation_worker", "agency_license_no": "SIP3MI-0003-2021"},
    )
    decision = screen(screener, worker)
    assert (decision.tier, flag_ids(decision)) == ("clear", [])


def test_spsk_placement_in_saudi_arabia_is_not_a_moratorium_breach(screener: Screener) -> None:
    spsk = documented_worker(
        travel={"destination_country": "SA"},
        placement={
            "scheme": "spsk",
            "employer_type": "legal_entity",
            "occupation": "domestic_worker",
        },
    )
    decision = screen(screener, spsk)
    assert "moratorium_individual_employer" not in flag_ids(decision)
    assert decision.tier == "clear"


def test_documented_worker_is_clear_and_has_nothing_left_to_ask(screener: Screener) -> None:
    decision = screen(screener, documented_worker())
    assert (decision.tier, flag_ids(decision)) == ("clear", [])
    assert decision.questions == ()


# --- who must be flagged -------------------------------------------------------------------------


def test_batam_ferry_with_a_broker_and_a_child_is_urgent(screener: Screener) -> None:
    child = tourist(
        person={"age": 16},
        travel={
            "exit_point": "BTM",
            "exit_point_type": "ferry_terminal",
            "mode": "sea",
            "destination_country": "MY",
            "ticket": "one_way",
            "ticket_paid_by": "sponsor",
            "documents_held_by_other": True,
            "escort_present": True,
        },
        placement={"occupation": "plantation_worker"},
        recruitment={
            "channel": "individual_broker",
            "fee_paid_idr": 15_000_000,
            "fee_payee": "individual",
        },
    )
    decision = screen(screener, child)
    assert decision.tier == "urgent"
    assert {
        "minor_departing_for_work",
        "documents_held_by_third_party",
        "individual_recruiter",
        "placement_fee_charged",
        "work_intent_without_work_visa",
        "sea_route_to_neighbour",
    } <= set(flag_ids(decision))
    assert decision.referral is not None
    assert {decision.referral.agency, *decision.referral.also_notify} == {
        "police_tppo",
        "social_services",
    }
    assert decision.referral.deadline == decision.screened_at + timedelta(hours=2)
    minor = next(f for f in decision.flags if f.rule_id == "minor_departing_for_work")
    assert "16" in minor.reason.id
    assert "16" in minor.reason.en


def test_flags_come_most_severe_first_and_quote_the_facts(screener: Screener) -> None:
    scam = tourist(
        travel={"destination_country": "KH", "visa_type": "visa_on_arrival", "ticket": "one_way"},
        placement={"occupation": "it_customer_service"},
    )
    decision = screen(screener, scam)
    ranks = [("info", "warning", "high", "urgent").index(f.severity) for f in decision.flags]
    assert ranks == sorted(ranks, reverse=True)
    assert flag_ids(decision)[0] == "scam_compound_pattern"
    assert "Kamboja" in decision.flags[0].reason.id
    assert "Cambodia" in decision.flags[0].reason.en


def test_unlicensed_agency_is_judged_on_the_screening_date(screener: Screener) -> None:
    def licence(number: str, day: str = "2026-11-23T09:00:00+00:00") -> list[str]:
        worker = documented_worker(screened_at=day, placement={"agency_license_no": number})
        return [f for f in flag_ids(screen(screener, worker)) if f == "unlicensed_agency"]

    assert licence("SIP3MI-0001-2021") == []  # active
    assert licence("sip3mi 0001-2021") == []  # as typed at a desk
    assert licence("SIP3MI-0016-2019") == ["unlicensed_agency"]  # revoked
    assert licence("SIP3MI-0014-2020") == ["unlicensed_agency"]  # suspended
    assert licence("SIP3MI-0009-2020") == ["unlicensed_agency"]  # expired 2025-04-30
    assert licence("SIP3MI-0009-2020", "2025-01-10T09:00:00+00:00") == []  # valid back then
    assert licence("SIP3MI-4040-2024") == ["unlicensed_agency"]  # not in the registry


def test_unknown_facts_become_questions_not_flags(screener: Screener) -> None:
    worker = documented_worker(travel={"visa_type": None})
    decision = screen(screener, worker)
    assert "work_intent_without_work_visa" not in flag_ids(decision)
    visa = [q for q in decision.questions if q.field == "travel.visa_type"]
    assert len(visa) == 1
    assert "work_intent_without_work_visa" in visa[0].rule_ids
    assert visa[0].text.id
    assert visa[0].text.en


def test_a_tourist_is_not_asked_about_placement_fees_or_schemes(screener: Screener) -> None:
    fields = {q.field for q in screen(screener, tourist()).questions}
    assert not fields & {"recruitment.fee_demanded_idr", "placement.scheme", "placement.occupation"}


# --- escort_network: linking cases across desks ---------------------------------------------------


def escorted(passport: str, day: int, escort: str = "+62 812 7777 0001") -> dict[str, Any]:
    return tourist(
        case_id=f"E-{passport}-{day}",
        screened_at=(datetime(2026, 11, 10, 9) + timedelta(days=day)).isoformat() + "+00:00",
        person={"passport_no": passport},
        travel={"escort_present": True},
        links={"escort_ref": escort},
    )


def test_third_traveller_with_the_same_escort_within_seven_days_is_urgent(
    screener: Screener,
) -> None:
    first = screen(screener, escorted("C1000001", 0))
    second = screen(screener, escorted("C1000002", 3))
    third = screen(screener, escorted("C1000003", 6))
    assert "escort_network" not in flag_ids(first) + flag_ids(second)
    assert "escort_network" in flag_ids(third)
    assert third.tier == "urgent"
    assert "3" in next(f for f in third.flags if f.rule_id == "escort_network").reason.en


def test_escort_links_outside_the_window_or_the_same_person_do_not_count(
    screener: Screener,
) -> None:
    screen(screener, escorted("C2000001", 0))
    screen(screener, escorted("C2000002", 1))
    screen(screener, escorted("C2000002", 2))  # the same traveller again
    assert "escort_network" not in flag_ids(screen(screener, escorted("C2000003", 9)))
    assert "escort_network" not in flag_ids(
        screen(screener, escorted("C2000004", 3, escort="+62 812 7777 0002"))
    )


# --- the contract ---------------------------------------------------------------------------------


def test_decision_has_exactly_the_contract_fields(screener: Screener, pack: RulePack) -> None:
    body = screen(screener, documented_worker(placement={"documents": {"bpjs": False}})).as_dict()
    assert set(body) == CONTRACT_KEYS
    assert body["risk_score"] is None
    assert body["explanation"] is None
    assert body["versions"]["rule_pack"] == pack.label
    [flag] = body["flags"]
    assert set(flag) == {"rule_id", "severity", "title", "reason", "basis", "action"}
    assert set(flag["title"]) == set(flag["reason"]) == set(flag["action"]) == {"id", "en"}


def test_info_flags_never_raise_the_tier(screener: Screener) -> None:
    worker = documented_worker(placement={"documents": {"opp_completed": False, "e_pmi_id": False}})
    decision = screen(screener, worker)
    assert flag_ids(decision) == ["no_predeparture_orientation"]
    assert decision.tier == "clear"


def test_no_engine_state_leaks_past_the_1024_session_limit(
    pack: RulePack, registry: AgencyRegistry
) -> None:
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    for number in range(1_500):
        screen(screener, tourist(case_id=f"L-{number}"))
    assert screen(screener, tourist(case_id="L-last")).tier == "clear"


# --- properties over random cases ---------------------------------------------------------------


def comparable(decision: Decision) -> dict[str, Any]:
    body = decision.as_dict()
    body.pop("decision_id")
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_random_cases_never_crash_and_screen_the_same_twice(
    pack: RulePack, registry: AgencyRegistry, record: dict[str, Any]
) -> None:
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    case = parse_case(record)
    first, second = screener.screen(case), screener.screen(case)
    assert comparable(first) == comparable(second)
    assert first.decision_id != second.decision_id
    assert first.tier in {"clear", "review", "high", "urgent"}


@settings(max_examples=150, deadline=None)
@given(cases(), st.sampled_from(["F", "M", None]))
def test_sex_never_changes_a_decision(
    pack: RulePack, registry: AgencyRegistry, record: dict[str, Any], sex: str | None
) -> None:
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    base = parse_case(merge(record, {"person.sex": None}))
    other = parse_case(merge(record, {"person.sex": sex}))
    assert comparable(screener.screen(base)) == comparable(screener.screen(other))


@settings(max_examples=200, deadline=None)
@given(cases())
def test_every_backend_fires_the_same_rules(
    pack: RulePack, registry: AgencyRegistry, record: dict[str, Any]
) -> None:
    durable = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    facts = durable.enricher.enrich(parse_case(record)).facts
    expected = ReferenceBackend(pack).fired(facts)
    assert durable.backend.fired(facts) == expected
    assert ColumnarBackend(pack).fired(facts) == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=40))
def test_columns_fire_what_each_case_fires_alone(
    pack: RulePack, registry: AgencyRegistry, records: list[dict[str, Any]]
) -> None:
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    batch = without_escorts(records)
    fired = ColumnarBackend(pack).fired_frame(facts_together(screener, batch))
    reference = ReferenceBackend(pack)
    for row, case in enumerate(batch):
        alone = reference.fired(screener.enricher.enrich(case).facts)
        assert {rule for rule, mask in fired.items() if mask[row]} == alone


@settings(max_examples=20, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=12))
def test_a_large_frame_enriches_each_case_as_it_would_alone(
    pack: RulePack, registry: AgencyRegistry, records: list[dict[str, Any]]
) -> None:
    # Frames of more than FEW_ROWS rows take the vectorised paths (repeats found once); a case
    # alone takes the loops for a desk's case.
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    batch = without_escorts(records)
    batch = batch * (FEW_ROWS // len(batch) + 1)
    facts = facts_together(screener, batch)
    for row, case in enumerate(batch):
        assert row_values(facts, row) == screener.enricher.enrich(case).facts


def without_escorts(records: list[dict[str, Any]]) -> list[Case]:
    """The cases, none linked to an escort (enrichment then reads no history)."""
    return [parse_case({**r, "links.escort_ref": None}) for r in records]


def facts_together(screener: Screener, batch: list[Case]) -> Frame:
    return screener.enricher.enrich_frame(frame_from_cases(batch)).facts


def test_unknown_backend_is_refused(pack: RulePack) -> None:
    with pytest.raises(ValueError, match="unknown rule backend 'fast'"):
        Screener(pack, pseudonymiser=Pseudonymiser("k"), backend="fast")


IDENTIFIERS = {
    "person.full_name": "Siti Nurhaliza Marker",
    "person.nik": "3201999988887777",
    "person.passport_no": "X9988776",
    "links.escort_ref": "+628199998888",
    "links.group_ref": "GRP-778899",
}


@settings(max_examples=100, deadline=None)
@given(cases())
def test_identifiers_never_appear_in_a_decision(
    pack: RulePack, registry: AgencyRegistry, record: dict[str, Any]
) -> None:
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    body = json.dumps(screener.screen(parse_case({**record, **IDENTIFIERS})).as_dict())
    for clear in IDENTIFIERS.values():
        assert clear not in body


def test_threads_sharing_one_screener_get_the_sequential_answers(
    pack: RulePack, registry: AgencyRegistry
) -> None:
    variants = [
        tourist(),
        tourist(
            travel={"destination_country": "KH", "visa_type": "visa_on_arrival"},
            placement={"occupation": "it_customer_service"},
        ),
        tourist(person={"age": 16}, travel={"declared_purpose": "work"}),
        documented_worker(),
        documented_worker(placement={"agency_license_no": "SIP3MI-0016-2019"}),
        documented_worker(recruitment={"fee_paid_idr": 90_000_000}),
    ]
    records = [dict(variants[n % len(variants)], case_id=f"C-{n}") for n in range(600)]
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    expected = [comparable(screener.screen(parse_case(r))) for r in records]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, to provoke races
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(lambda r: comparable(screener.screen(parse_case(r))), records))
    finally:
        sys.setswitchinterval(interval)
    assert found == expected
