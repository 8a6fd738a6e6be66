from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.case import Case
from engine.case_input import parse_case
from engine.enrichment import Enricher, vocabulary, work_intent
from engine.frame import frame_from_cases
from engine.history import InMemoryCaseHistory
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from tests.factories import cases, documented_worker, tourist


@pytest.fixture
def enricher(pack: RulePack, registry: AgencyRegistry) -> Enricher:
    return enricher_of(pack, registry)


def facts(enricher: Enricher, record: dict[str, Any]) -> dict[str, Any]:
    return dict(enricher.enrich(parse_case(record)).facts)


@settings(max_examples=300, deadline=None)
@given(st.lists(cases(), min_size=1, max_size=8))
def test_a_desks_few_cases_derive_what_their_columns_would(
    pack: RulePack, registry: AgencyRegistry, records: list[dict[str, Any]]
) -> None:
    # up to FEW_ROWS cases are derived one by one, more column by column: the same facts
    assert_same_derived_facts(enricher_of(pack, registry), [parse_case(r) for r in records])


@pytest.mark.parametrize("copies", [1, 4, 8])
def test_a_zero_fee_is_plus_zero_whichever_amount_was_minus_zero(
    pack: RulePack, registry: AgencyRegistry, copies: int
) -> None:
    # numpy's fmax leaves the sign of max(-0.0, 0.0) to its vector loop (row by row, it
    # differed with the row's place in a frame of four)
    case = parse_case(tourist(recruitment={"fee_demanded_idr": -0.0, "fee_paid_idr": 0.0}))
    enricher = enricher_of(pack, registry)
    assert_same_derived_facts(enricher, [case] * copies)
    fees = enricher._derive_columns(frame_from_cases([case] * copies))["fee_idr"]
    assert not np.signbit(fees).any()


def enricher_of(pack: RulePack, registry: AgencyRegistry) -> Enricher:
    return Enricher(
        pack.reference, registry, InMemoryCaseHistory(), Pseudonymiser("k"), pack.escort_window
    )


def assert_same_derived_facts(enricher: Enricher, cases: list[Case]) -> None:
    frame = frame_from_cases(cases)
    one_by_one, as_columns = enricher._derive_rows(frame), enricher._derive_columns(frame)
    assert list(one_by_one) == list(as_columns)
    for name, column in as_columns.items():
        assert one_by_one[name].dtype == column.dtype, name
        if column.dtype == object:
            assert [(type(v), v) for v in one_by_one[name]] == [(type(v), v) for v in column]
        else:  # equal, NaN where NaN, and zeros of the same sign
            np.testing.assert_array_equal(one_by_one[name], column, err_msg=name)
            signs = [np.signbit(np.nan_to_num(c, nan=1.0)) for c in (one_by_one[name], column)]
            np.testing.assert_array_equal(*signs, err_msg=name)


def test_age_on_the_screening_date_birth_date_wins(enricher: Enricher) -> None:
    record = tourist(person={"age": 40, "birth_date": "2008-11-24"})
    assert facts(enricher, record)["age"] == 17  # one day short of 18 on 2026-11-23
    record = tourist(person={"age": 40, "birth_date": "2008-11-23"})
    assert facts(enricher, record)["age"] == 18
    assert facts(enricher, tourist(person={"age": 40}))["age"] == 40
    assert "age" not in facts(enricher, tourist(person={"age": None}))


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"travel": {"declared_purpose": "work"}}, True),
        ({"placement": {"occupation": "cook"}}, True),
        ({"placement": {"job_order_no": "SIP2MI-1"}}, True),
        ({"placement": {"scheme": "none"}}, False),
        ({"recruitment": {"fee_paid_idr": 5_000_000}}, True),
        ({"recruitment": {"fee_paid_idr": 0}}, False),
        ({"recruitment": {"channel": "family_friend"}}, False),
        ({"recruitment": {"channel": "social_media"}}, True),
        ({"travel": {"declared_purpose": None}}, None),
    ],
)
def test_work_intent_follows_the_contract(changes: dict[str, Any], expected: bool | None) -> None:
    assert work_intent(frame_from_cases([parse_case(tourist(**changes))]))[0] is expected


def test_licence_status_comes_from_the_registry_on_the_screening_date(enricher: Enricher) -> None:
    def status(number: str, day: str) -> Any:
        record = documented_worker(screened_at=day, placement={"agency_license_no": number})
        return facts(enricher, record)["agency_licence_status"]

    assert status("SIP3MI-0001-2021", "2026-11-23T00:00:00Z") == "active"
    assert status("SIP3MI-0021-2026", "2026-11-23T00:00:00Z") == "not_yet_valid"
    assert status("SIP3MI-0021-2026", "2026-12-02T00:00:00Z") == "active"
    assert status("SIP3MI-0015-2021", "2026-11-23T00:00:00Z") == "suspended"
    assert status("SIP3MI-0016-2019", "2026-11-23T00:00:00Z") == "revoked"
    assert status("SIP3MI-0010-2020", "2026-11-23T00:00:00Z") == "expired"
    assert status("NOPE-1", "2026-11-23T00:00:00Z") == "not_found"


@pytest.mark.parametrize(
    ("screened_at", "expected"),
    [
        ("2025-09-13T18:00:00Z", "expired"),  # 01:00 WIB the 14th: expired since midnight
        ("2025-09-13T18:00:00", "expired"),  # no zone: the same UTC instant
        ("2025-09-14T01:00:00+07:00", "expired"),
        ("2025-09-13T16:59:59Z", "active"),  # 23:59:59 WIB, its last day
        ("2025-09-13T23:30:00+08:00", "active"),  # a WITA desk on its own last day
    ],
)
def test_a_licence_is_judged_on_jakartas_date_for_a_time_in_utc(
    enricher: Enricher, screened_at: str, expected: str
) -> None:
    """SIP3MI-0010-2020 is valid until 2025-09-13: the licence lookup's today is Jakarta's."""
    record = documented_worker(
        screened_at=screened_at, placement={"agency_license_no": "SIP3MI-0010-2020"}
    )
    assert facts(enricher, record)["agency_licence_status"] == expected


@pytest.mark.parametrize(
    ("travel", "expected"),
    [
        ({"exit_point": "BTM", "mode": "sea", "destination_country": "MY"}, True),
        ({"exit_point": "DUM", "mode": "sea", "destination_country": "SG"}, False),  # Dumai: MY
        ({"exit_point_type": "unofficial", "destination_country": "MY"}, True),
        ({"mode": "air", "exit_point": "CGK", "destination_country": "MY"}, False),
        ({"mode": "sea", "destination_country": "TW"}, False),
        ({"mode": "sea", "destination_country": None}, None),
        (
            {
                "mode": None,
                "exit_point_type": None,
                "exit_point": None,
                "destination_country": "MY",
            },
            None,
        ),
    ],
)
def test_sea_route_to_a_neighbour(
    enricher: Enricher, travel: dict[str, Any], expected: bool | None
) -> None:
    found = facts(
        enricher,
        tourist(travel={"exit_point": None, "exit_point_type": None, "mode": None, **travel}),
    )
    assert found.get("sea_route_to_neighbour") is expected


def test_scam_hotspot_by_destination_or_transit(enricher: Enricher) -> None:
    assert facts(enricher, tourist(travel={"destination_country": "KH"}))["scam_hotspot_route"]
    via = tourist(travel={"destination_country": "JP", "transit_countries": ["TH"]})
    assert facts(enricher, via)["scam_hotspot_route"] is True
    assert facts(enricher, tourist())["scam_hotspot_route"] is False
    assert "scam_hotspot_route" not in facts(
        enricher, tourist(travel={"destination_country": None})
    )


def test_fee_against_the_configured_cap(enricher: Enricher, pack: RulePack) -> None:
    cap = pack.reference.fee_cap("TW", "caregiver")
    assert cap is not None
    assert cap > 0
    over = documented_worker(recruitment={"fee_demanded_idr": cap + 1, "fee_paid_idr": 0})
    within = documented_worker(recruitment={"fee_demanded_idr": cap, "fee_paid_idr": 0})
    paid_unknown = documented_worker(recruitment={"fee_demanded_idr": cap, "fee_paid_idr": None})
    assert facts(enricher, over)["fee_over_cap"] is True
    assert facts(enricher, over)["fee_idr"] == cap + 1
    assert facts(enricher, within)["fee_over_cap"] is False
    assert "fee_over_cap" not in facts(enricher, paid_unknown)  # what was paid may be more
    no_cap = documented_worker(travel={"destination_country": "BN"})
    assert facts(enricher, no_cap)["fee_over_cap"] is False  # nothing configured: no breach
    unknown = documented_worker(recruitment={"fee_demanded_idr": None, "fee_paid_idr": None})
    assert "fee_over_cap" not in facts(enricher, unknown)


def test_a_recorded_zero_fee_says_nothing_about_the_other_amount(enricher: Enricher) -> None:
    zero_demanded = documented_worker(recruitment={"fee_demanded_idr": 0, "fee_paid_idr": None})
    assert "fee_idr" not in facts(enricher, zero_demanded)
    paid = documented_worker(recruitment={"fee_demanded_idr": None, "fee_paid_idr": 4_000_000})
    assert facts(enricher, paid)["fee_idr"] == 4_000_000  # a fee was charged: at least this


def test_offered_pay_against_the_market_reference(enricher: Enricher, pack: RulePack) -> None:
    market = pack.reference.market_salary("caregiver", "TW")
    assert market
    found = facts(enricher, documented_worker(placement={"offered_monthly_salary_usd": 2 * market}))
    assert found["market_salary_usd"] == market
    assert found["pay_to_market_ratio"] == 2.0


def test_sex_and_clear_identifiers_never_become_facts(enricher: Enricher) -> None:
    record = tourist(
        person={
            "sex": "F",
            "full_name": "Siti Aminah",
            "nik": "3201010101010001",
            "passport_no": "C1234567",
        },
        links={"escort_ref": "+6281200001111"},
    )
    found = facts(enricher, record)
    assert "person.sex" not in found
    assert "person.sex" not in vocabulary()
    text = repr(found)
    for clear in ("Siti", "3201010101010001", "C1234567", "+6281200001111"):
        assert clear not in text
    assert found["links.escort_ref"] is True  # rules may only ask whether it is known


def test_escort_travellers_counts_distinct_people_in_the_window(enricher: Enricher) -> None:
    def screened(passport: str, day: str) -> int:
        record = tourist(
            screened_at=f"2026-11-{day}T09:00:00Z",
            person={"passport_no": passport},
            links={"escort_ref": "E-1"},
        )
        enrichment = enricher.enrich(parse_case(record))
        assert enrichment.escort is not None
        return int(enrichment.facts["escort_travellers"])

    assert screened("P1", "10") == 1
    assert screened("P2", "12") == 2
    assert screened("P2", "13") == 2  # the same person again
    assert screened("P3", "16") == 3
    assert screened("P4", "21") == 2  # P1 (10th) and P2 (12th, 13th) are out of the 7-day window


def unidentified(case_id: str, age: int) -> Case:
    """A traveller known by nothing but the case: no passport, NIK, or name and birth date."""
    return parse_case(
        tourist(case_id=case_id, person={"age": age}, links={"escort_ref": "0812-5555-2222"})
    )


def test_a_case_known_only_by_its_case_id_is_one_traveller_within_its_source(
    enricher: Enricher,
) -> None:
    """Desks number their own cases: three desks' case 1 with one escort are three people (the
    third is the escort's third traveller), and one desk's case 1 screened again is one. Before,
    the case_id was one traveller whoever screened it, and escort_network missed the third."""

    def counted(case: Case, source: str) -> int:
        enriched = enricher.enrich_frame(frame_from_cases([case]), sources=[source])
        [traveller] = enriched.travellers
        assert re.fullmatch("source_case:[0-9a-f]{32}", traveller)  # a keyed hash, no clear
        return int(enriched.facts["escort_travellers"][0])

    assert counted(unidentified("1", 19), "desk A") == 1
    assert counted(unidentified("1", 19), "desk A") == 1  # the same case at the same desk
    assert counted(unidentified("1", 34), "desk B") == 2
    assert counted(unidentified("1", 52), "desk C") == 3


def test_without_sources_a_case_id_is_one_traveller_among_the_cases_linked(
    pack: RulePack, registry: AgencyRegistry
) -> None:
    """A command's run (lindung screen, lindung rescore) is one source: its case 1 thrice is
    one traveller, and its cases A-1, B-1 and C-1 three."""
    frame = frame_from_cases([unidentified("1", age) for age in (19, 34, 52)])
    counts = enricher_of(pack, registry).enrich_frame(frame).facts["escort_travellers"]
    assert counts.tolist() == [1, 1, 1]
    frame = frame_from_cases([unidentified(f"{desk}-1", 40) for desk in "ABC"])
    counts = enricher_of(pack, registry).enrich_frame(frame).facts["escort_travellers"]
    assert counts.tolist() == [1, 2, 3]


def test_a_source_and_its_case_id_do_not_run_into_another_source_and_case_id(
    enricher: Enricher,
) -> None:
    cases = [unidentified("1-2", 30), unidentified("2", 30)]
    travellers, _escorts = enricher.links(frame_from_cases(cases), ["desk 1", "desk 1-"])
    assert travellers[0] != travellers[1]
    assert len({t.partition(":")[0] for t in travellers}) == 1  # one kind: source_case
