from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from engine.case import CASE_FIELDS
from engine.case_input import _OTHER_NAMES, parse_case
from engine.errors import CaseError
from engine.frame import SCREENED_ON, frame_from_cases


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


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"age": 23}, "age: unknown field, did you mean person.age?"),
        ({"travel": {"age": 23}}, "travel.age: unknown field, did you mean person.age?"),
        ({"travel.age": 23}, "travel.age: unknown field, did you mean person.age?"),
        ({"bpjs": True}, "bpjs: unknown field, did you mean placement.documents.bpjs?"),
        ({"documents": {}}, "documents: unknown field, did you mean placement.documents?"),
        # two fields are named channel: the closer path
        (
            {"interview": {"channel": "ltsa"}},
            "interview.channel: unknown field, did you mean recruitment.channel?",
        ),
    ],
)
def test_unknown_field_suggests_the_field_of_the_same_name_in_another_group(
    record: dict[str, Any], problem: str
) -> None:
    # travel.age read as a typo of travel.mode; the desk meant the traveller's age
    assert problems({"channel": "port_desk", **record}) == [problem]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        # spelling alone led elsewhere: name and gender are closest to age
        (
            {"person": {"name": "Siti"}},
            "person.name: unknown field, did you mean person.full_name?",
        ),
        ({"person.gender": "F"}, "person.gender: unknown field, did you mean person.sex?"),
        ({"nama": "Siti"}, "nama: unknown field, did you mean person.full_name?"),
        ({"Nama Lengkap": "Siti"}, "Nama Lengkap: unknown field, did you mean person.full_name?"),
        ({"jenis_kelamin": "F"}, "jenis_kelamin: unknown field, did you mean person.sex?"),
        ({"usia": 23}, "usia: unknown field, did you mean person.age?"),
        ({"person": {"umur": 23}}, "person.umur: unknown field, did you mean person.age?"),
        ({"dob": "1990-01-01"}, "dob: unknown field, did you mean person.birth_date?"),
        (
            {"person.tanggal_lahir": "1990-01-01"},
            "person.tanggal_lahir: unknown field, did you mean person.birth_date?",
        ),
        # travel.passport_number read as a typo of travel.passport_issued_on
        (
            {"travel": {"passport_number": "C1"}},
            "travel.passport_number: unknown field, did you mean person.passport_no?",
        ),
        ({"paspor": "C1"}, "paspor: unknown field, did you mean person.passport_no?"),
        ({"tujuan": "MY"}, "tujuan: unknown field, did you mean travel.destination_country?"),
        (
            {"travel.destination": "MY"},
            "travel.destination: unknown field, did you mean travel.destination_country?",
        ),
        # no such field: no hint, rather than a wrong one (nationality is not education)
        ({"person": {"nationality": "ID"}}, "person.nationality: unknown field"),
        ({"kewarganegaraan": "WNI"}, "kewarganegaraan: unknown field"),
        ({"person.phone": "0812"}, "person.phone: unknown field"),
    ],
)
def test_unknown_field_suggests_the_field_a_desk_calls_by_another_name(
    record: dict[str, Any], problem: str
) -> None:
    assert problems({"channel": "port_desk", **record}) == [problem]


def test_a_name_in_another_group_is_not_taken_for_the_travellers() -> None:
    [problem] = problems({"channel": "port_desk", "placement": {"name": "PT Maju"}})
    assert problem == "placement.name: unknown field, did you mean placement.agency_name?"
    # a group with no name of its own: nobody's to guess (spelling led to travel.mode)
    assert problems({"channel": "port_desk", "travel": {"name": "Siti"}}) == [
        "travel.name: unknown field"
    ]


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        # a group the record does not have, and a key inside it
        ({"agency.name": "PT Maju"}, "agency: unknown field, did you mean placement.agency_name?"),
        (
            {"agency": {"license_no": "KEP-1"}},
            "agency: unknown field, did you mean placement.agency_license_no?",
        ),
        (
            {"placement": {"agency": {"name": "PT Maju"}}},
            "placement.agency: unknown field, did you mean placement.agency_name?",
        ),
        ({"fee": {"paid_idr": 1}}, "fee: unknown field, did you mean recruitment.fee_paid_idr?"),
        # the one field of its group whose name ends in it
        (
            {"placement": {"license_no": "KEP-1"}},
            "placement.license_no: unknown field, did you mean placement.agency_license_no?",
        ),
        ({"id": "C-1"}, "id: unknown field, did you mean case_id?"),
        # a spreadsheet's heading, as written
        (
            {"Agency Name": "PT Maju"},
            "Agency Name: unknown field, did you mean placement.agency_name?",
        ),
        ({"Age": 23}, "Age: unknown field, did you mean person.age?"),
    ],
)
def test_unknown_field_suggests_the_field_its_words_make(
    record: dict[str, Any], problem: str
) -> None:
    assert problems({"channel": "port_desk", **record}) == [problem]


def test_the_other_names_are_of_real_fields_and_none_is_a_field_of_its_own() -> None:
    own_names = {path.rsplit(".", 1)[-1] for path in CASE_FIELDS}
    assert set(_OTHER_NAMES.values()) - {None} <= set(CASE_FIELDS)
    assert not set(_OTHER_NAMES) & own_names


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


def test_a_case_without_a_screening_time_is_screened_now_in_wib() -> None:
    """The decision echoes it, and its date is Jakarta's, as the licence lookup's today is."""
    for record in ({"channel": "port_desk"}, {"channel": "port_desk", "screened_at": ""}):
        at = parse_case(record).screened_at
        assert at.utcoffset() == timedelta(hours=7)
        assert abs(at - datetime.now(UTC)) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("screened_at", "day"),
    [
        ("2025-09-13T18:00:00Z", date(2025, 9, 14)),  # 01:00 WIB: already the 14th in Jakarta
        ("2025-09-13T18:00:00+00:00", date(2025, 9, 14)),
        ("2025-09-13T18:00:00", date(2025, 9, 14)),  # no zone: UTC, so the same instant
        ("2025-09-13T16:59:59Z", date(2025, 9, 13)),  # 23:59:59 WIB
        ("2025-09-14T01:00:00+07:00", date(2025, 9, 14)),
        ("2025-09-13T23:30:00+08:00", date(2025, 9, 13)),  # a WITA desk keeps its own date
        ("2025-09-14T00:30:00+09:00", date(2025, 9, 14)),  # a WIT desk: 22:30 WIB the 13th
    ],
)
def test_a_time_in_utc_is_judged_on_jakartas_date(screened_at: str, day: date) -> None:
    case = parse_case({"channel": "port_desk", "screened_at": screened_at})
    assert frame_from_cases([case])[SCREENED_ON][0] == np.datetime64(day)


def test_a_birth_date_on_jakartas_date_is_not_after_a_utc_screening() -> None:
    record = {
        "channel": "port_desk",
        "screened_at": "2025-09-13T18:00:00Z",
        "person": {"birth_date": "2025-09-14"},
    }
    assert parse_case(record).person.birth_date == date(2025, 9, 14)


def test_a_blank_case_id_is_generated_like_an_absent_one() -> None:
    """Blank ids were stored as "", and travellers known by their case alone (no name, NIK or
    passport) all became one traveller: an escort's three never made escort_network."""
    ids = [
        parse_case({"channel": "port_desk", "case_id": blank}).case_id for blank in ("", "  ", "\t")
    ]
    assert all(ids)
    assert len(set(ids)) == 3
    assert parse_case({"channel": "port_desk", "case_id": " C-1 "}).case_id == "C-1"


def test_flat_and_nested_keys_merge_whatever_their_order() -> None:
    one = parse_case(
        {"channel": "batch", "travel.exit_point_type": "unofficial", "travel": {"mode": "sea"}}
    )
    other = parse_case(
        {"channel": "batch", "travel": {"mode": "sea"}, "travel.exit_point_type": "unofficial"}
    )
    assert one.travel == other.travel
    assert (one.travel.mode, one.travel.exit_point_type) == ("sea", "unofficial")


def test_a_field_given_twice_is_refused_not_overwritten() -> None:
    assert problems({"channel": "batch", "travel.mode": "air", "travel": {"mode": "sea"}}) == [
        "travel.mode: given twice (as a dotted key and in an object)"
    ]
    assert problems({"channel": "batch", "travel": "ferry", "travel.mode": "sea"}) == [
        "travel: expected an object"
    ]


def test_a_group_given_null_one_way_and_an_object_the_other_is_the_object() -> None:
    # "placement.documents": null before "placement": {"documents": {...}}: a null never
    # overrides what another key gave, in either order (it was an AttributeError, a 500)
    for record in (
        {"placement.documents": None, "placement": {"documents": {"bpjs": True}}},
        {"placement": {"documents": None}, "placement.documents": {"bpjs": True}},
        {"placement.documents": {"bpjs": True}, "placement": {"documents": None}},
    ):
        case = parse_case({"channel": "batch", **record})
        assert case.placement.documents.bpjs is True, record


def test_reading_input_never_changes_it() -> None:
    record = {"channel": "batch", "travel": {"mode": "sea"}, "travel.ticket": "return"}
    before = copy.deepcopy(record)
    parse_case(record)
    assert record == before


def test_null_groups_mean_unknown() -> None:
    case = parse_case({"channel": "batch", "travel": None, "placement": {"documents": None}})
    assert case.travel.mode is None
    assert case.placement.documents.bpjs is None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"travel..mode": "sea"}, "travel..mode: is not a field path (empty part)"),
        ({"person": {"age": True}}, "person.age: expected a number, not true or false"),
        ({"case_id": 0}, "case_id: expected text"),
        ({"screened_at": "9999-12-31T23:00:00Z"}, "screened_at: must be between 2000-01-01"),
        ({"person": {"birth_date": "0001-01-01"}}, "person.birth_date: must be between 1900-01-01"),
        ({"recruitment": {"fee_paid_idr": 1e300}}, "recruitment.fee_paid_idr: must be at most"),
        (
            {"recruitment": {"fee_paid_idr": "Infinity"}},
            "recruitment.fee_paid_idr: expected a finite number",
        ),
        (
            {"travel": {"transit_countries": ["KH", "Malaysia"]}},
            "travel.transit_countries: item 2: expected an ISO 3166 alpha-2 country code",
        ),
    ],
)
def test_bad_values_are_named_clearly(record: dict[str, Any], expected: str) -> None:
    [problem] = problems({"channel": "batch", **record})
    assert problem.startswith(expected)


_A_DATE = "expected a date as YYYY-MM-DD, like 2026-12-07, not a number"
_A_TIME = "expected an ISO 8601 date and time, like 2026-12-07T08:00:00+07:00, not a number"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"screened_at": 1765065600}, f"screened_at: {_A_TIME}"),  # read as 2025-12-07T00:00Z
        ({"screened_at": "1765065600"}, f"screened_at: {_A_TIME}"),
        ({"screened_at": 1765065600.5}, f"screened_at: {_A_TIME}"),
        ({"screened_at": 0}, f"screened_at: {_A_TIME}"),
        ({"person.birth_date": 631152000}, f"person.birth_date: {_A_DATE}"),  # 1990-01-01
        ({"person.birth_date": "19900101"}, f"person.birth_date: {_A_DATE}"),
        ({"person.birth_date": " 631152000 "}, f"person.birth_date: {_A_DATE}"),
        ({"travel.passport_issued_on": "20261207"}, f"travel.passport_issued_on: {_A_DATE}"),
        ({"travel.passport_issued_on": 1.7e12}, f"travel.passport_issued_on: {_A_DATE}"),
    ],
)
def test_a_number_for_a_date_or_a_time_is_refused_not_read_as_seconds_since_1970(
    record: dict[str, Any], expected: str
) -> None:
    assert problems({"channel": "batch", **record}) == [expected]


def test_a_date_or_a_time_given_as_such_is_read() -> None:
    # as a Parquet file's date and timestamp columns give them
    case = parse_case(
        {
            "channel": "batch",
            "screened_at": datetime(2026, 3, 1, 10, tzinfo=UTC),
            "person.birth_date": date(1990, 1, 1),
            "travel.passport_issued_on": datetime(2024, 5, 2),
        }
    )
    assert case.screened_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert case.person.birth_date == date(1990, 1, 1)
    assert case.travel.passport_issued_on == date(2024, 5, 2)
    [problem] = problems({"channel": "batch", "person.birth_date": "1990-13-01"})
    assert problem == (
        "person.birth_date: expected a date as YYYY-MM-DD, like 2026-12-07, got '1990-13-01'"
    )


def test_identifier_like_values_in_the_wrong_column_are_never_echoed() -> None:
    [problem] = problems({"channel": "batch", "person": {"age": "3201010101010001"}})
    assert problem == "person.age: must be at most 120"
    [problem] = problems({"channel": "batch", "travel": {"visa_type": "C1234567"}})
    assert problem.startswith("travel.visa_type: the value is not allowed; expected one of")


def test_placeholders_in_text_and_lists_mean_unknown() -> None:
    case = parse_case(
        {
            "channel": "batch",
            "placement": {"agency_license_no": "-", "agency_name": "unknown"},
            "travel": {"transit_countries": ["unknown"]},
        }
    )
    assert case.placement.agency_license_no is None
    assert case.placement.agency_name is None
    assert case.travel.transit_countries is None
    assert parse_case(
        {"channel": "batch", "travel.transit_countries": [None, "kh"]}
    ).travel.transit_countries == ["KH"]


def test_amounts_are_kept_to_the_cent() -> None:
    case = parse_case(
        {
            "channel": "batch",
            "recruitment": {"fee_paid_idr": 0.004, "fee_demanded_idr": 1500000.126},
        }
    )
    assert case.recruitment.fee_paid_idr == 0
    assert case.recruitment.fee_demanded_idr == 1500000.13


def test_free_text_is_bounded_and_has_no_control_characters() -> None:
    """A desk types a name or a place in a line; a megabyte or a NUL is a client's mistake
    (and PostgreSQL would refuse the NUL when the decision is stored)."""
    found = problems(
        {
            "case_id": "C\x001",
            "channel": "port_desk",
            "person": {"full_name": "A" * 201, "origin_province": "Jawa\x07Barat"},
            "travel": {"exit_point": "B" * 201},
        }
    )
    assert "case_id: contains a control character" in found
    assert "person.full_name: is too long (at most 200 characters)" in found
    assert "person.origin_province: contains a control character" in found
    assert "travel.exit_point: is too long (at most 200 characters)" in found
    assert parse_case({"channel": "port_desk", "person": {"full_name": "A" * 200}})


def test_a_screening_time_ahead_of_the_clock_is_refused() -> None:
    """A referral's deadline follows from it: a time a week ahead would hide an urgent case
    at the end of the queue. A desk clock a few minutes fast is allowed."""
    ahead = datetime.now(UTC) + timedelta(days=7)
    assert problems({"channel": "port_desk", "screened_at": ahead.isoformat()}) == [
        "screened_at: is in the future (a time without a zone is taken as UTC)"
    ]
    fast_clock = datetime.now(UTC) + timedelta(minutes=5)
    assert parse_case({"channel": "port_desk", "screened_at": fast_clock.isoformat()})


FULL_WIDTH_KH = "\uff2b\uff28"
CYRILLIC_KH = "\u041a\u041d"


def test_a_country_typed_in_full_width_is_read_and_a_lookalike_alphabet_refused() -> None:
    """A phone keyboard's full-width KH is KH (Cambodia: the scam-compound rule reads it);
    Cyrillic KA EN only looks like KH, and was taken as a country no rule knew."""
    case = parse_case(
        {
            "channel": "port_desk",
            "travel": {"destination_country": FULL_WIDTH_KH, "exit_point": "\uff43\uff47\uff4b"},
        }
    )
    assert case.travel.destination_country == "KH"
    assert case.travel.exit_point == "CGK"
    assert problems({"channel": "port_desk", "travel": {"destination_country": CYRILLIC_KH}}) == [
        "travel.destination_country: expected an ISO 3166 alpha-2 country code such as MY or KH"
    ]
    assert problems(
        {"channel": "port_desk", "travel": {"transit_countries": ["TH", CYRILLIC_KH]}}
    ) == [
        "travel.transit_countries: item 2: expected an ISO 3166 alpha-2 country code such as "
        "MY or KH"
    ]


def test_an_escort_reference_of_no_letter_or_digit_is_not_known() -> None:
    """Its separators dropped, every "---" or "( )" would be one escort, and three unrelated
    travellers an escort_network (urgent, referred to the police)."""
    for nothing in ("---", ".", "( )", "- / -"):
        assert (
            parse_case({"channel": "port_desk", "links.escort_ref": nothing}).links.escort_ref
            is None
        )
    assert (
        parse_case({"channel": "port_desk", "links.escort_ref": "esc-7"}).links.escort_ref
        == "esc-7"
    )


def test_a_case_of_thousands_of_unknown_fields_names_the_first_fifty_and_counts_the_rest() -> None:
    record = {"channel": "port_desk", "person": {f"passport_number_{n}": 1 for n in range(2_000)}}
    with pytest.raises(CaseError) as raised:
        parse_case(record)
    problems = raised.value.problems
    assert len(problems) == 51
    assert str(problems[0]) == (
        "person.passport_number_0: unknown field, did you mean person.passport_no?"
    )
    assert str(problems[-1]) == "(case): 1,950 more problems, not listed"
