from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.case import CASE_FIELDS, parse_case
from engine.errors import CaseError


def problems(record: dict) -> list[str]:
    with pytest.raises(CaseError) as caught:
        parse_case(record)
    return [str(problem) for problem in caught.value.problems]


def test_unknown_field_names_the_path_and_the_closest_valid_name() -> None:
    assert problems({"channel": "port_desk", "travel": {"visa_typ": "tourist"}}) == [
        "travel.visa_typ: unknown field, did you mean travel.visa_type?"
    ]


def test_unknown_top_level_group_is_refused_with_a_suggestion() -> None:
    assert problems({"channel": "port_desk", "travl": {}}) == [
        "travl: unknown field, did you mean travel?"
    ]


def test_bad_enumeration_value_lists_the_allowed_values() -> None:
    [problem] = problems({"channel": "port_desk", "travel": {"visa_type": "tourst"}})
    assert problem.startswith("travel.visa_type: 'tourst' is not allowed; expected one of work, ")
    assert "did you mean tourist?" in problem


def test_channel_is_required_and_every_problem_is_reported() -> None:
    found = problems({"person": {"age": -1}, "travel": {"destination_country": "Malaysia"}})
    assert "channel: is required" in found
    assert "person.age: must be at least 0, got -1" in found
    assert any(p.startswith("travel.destination_country: expected an ISO 3166") for p in found)


def test_unknown_stays_unknown_never_false() -> None:
    case = parse_case(
        {"channel": "batch", "travel": {"visa_type": "unknown", "escort_present": None}}
    )
    assert case.travel.visa_type is None
    assert case.travel.escort_present is None
    assert case.placement.documents.bpjs is None


def test_flat_dotted_columns_read_like_nested_objects() -> None:
    case = parse_case(
        {
            "channel": "batch",
            "travel.transit_countries": "kh;th",
            "placement.documents.bpjs": "false",
            "recruitment.fee_paid_idr": "1500000",
        }
    )
    assert case.travel.transit_countries == ["KH", "TH"]
    assert case.placement.documents.bpjs is False
    assert case.recruitment.fee_paid_idr == 1_500_000


def test_identifier_values_are_never_echoed_in_errors() -> None:
    [problem] = problems({"channel": "batch", "person": {"nik": ["3201010101010001"]}})
    assert problem.startswith("person.nik:")
    assert "3201010101010001" not in problem


def test_birth_date_after_the_screening_date_is_refused() -> None:
    found = problems(
        {
            "channel": "batch",
            "screened_at": "2026-01-01T00:00:00Z",
            "person": {"birth_date": "2026-05-01"},
        }
    )
    assert found == ["person.birth_date: is after the screening date"]


def test_naive_screening_time_is_utc_and_absent_ids_are_generated() -> None:
    first = parse_case({"channel": "batch", "screened_at": "2026-11-23T10:00:00"})
    second = parse_case({"channel": "batch"})
    assert first.screened_at == datetime(2026, 11, 23, 10, tzinfo=UTC)
    assert first.case_id
    assert second.case_id
    assert first.case_id != second.case_id
    assert second.screened_at.tzinfo is not None


def test_field_catalogue_covers_the_contract() -> None:
    assert CASE_FIELDS["travel.visa_type"].values[0] == "work"
    assert CASE_FIELDS["placement.documents.e_pmi_id"].kind == "bool"
    assert CASE_FIELDS["travel.destination_country"].kind == "country"
    assert len([p for p in CASE_FIELDS if p.startswith("interview.")]) == 6
