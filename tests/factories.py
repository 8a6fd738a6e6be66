"""Test data: plain factory functions for realistic cases, and random valid cases."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from engine.case import CASE_FIELDS

SCREENED_AT = "2026-11-23T09:00:00+00:00"
COUNTRIES = ["MY", "SG", "TW", "HK", "KH", "MM", "LA", "TH", "PH", "SA", "AE", "JP", "KR", "QA"]
EXIT_POINTS = ["BTM", "TPG", "TBK", "DUM", "NNX", "CGK", "DPS", "SUB"]

ALL_DOCUMENTS = {
    "work_contract": True,
    "placement_agreement": True,
    "medical_certificate": True,
    "competency_certificate": True,
    "family_consent": True,
    "bpjs": True,
    "opp_completed": True,
    "e_pmi_id": True,
}
CLEAN_INTERVIEW = {
    "can_explain_trip": True,
    "reports_deception": False,
    "reports_coercion": False,
    "wants_to_go_home": False,
    "visible_injury": False,
    "restricted_communication": False,
}
CLEAN_HISTORY = {
    "prior_postponed_departure": False,
    "prior_deportation": False,
    "prior_trafficking_victim": False,
}


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def tourist(**changes: Any) -> dict[str, Any]:
    """A holidaymaker flying to Singapore with a return ticket she paid for."""
    return merge(
        {
            "case_id": "T-1",
            "channel": "immigration_desk",
            "screened_at": SCREENED_AT,
            "person": {"age": 34, "sex": "F", "origin_province": "DKI Jakarta", **CLEAN_HISTORY},
            "travel": {
                "exit_point": "CGK",
                "exit_point_type": "airport",
                "mode": "air",
                "destination_country": "SG",
                "ticket": "return",
                "ticket_paid_by": "self",
                "declared_purpose": "tourism",
                "visa_type": "visa_free",
                "documents_held_by_other": False,
                "escort_present": False,
            },
            "interview": CLEAN_INTERVIEW,
        },
        changes,
    )


def documented_worker(**changes: Any) -> dict[str, Any]:
    """A caregiver placed in Taiwan by a licensed agency, every document in order, no fee."""
    return merge(
        {
            "case_id": "W-1",
            "channel": "ltsa_counter",
            "screened_at": SCREENED_AT,
            "person": {"age": 29, "sex": "F", "origin_province": "Jawa Timur", **CLEAN_HISTORY},
            "travel": {
                "exit_point": "SUB",
                "exit_point_type": "airport",
                "mode": "air",
                "destination_country": "TW",
                "ticket": "one_way",
                "ticket_paid_by": "agency",
                "declared_purpose": "work",
                "visa_type": "work",
                "documents_held_by_other": False,
                "escort_present": False,
            },
            "placement": {
                "scheme": "p3mi",
                "agency_license_no": "SIP3MI-0001-2021",
                "agency_name": "PT Contoh",
                "job_order_no": "SIP2MI-2026-0001",
                "employer_type": "legal_entity",
                "occupation": "caregiver",
                "offered_monthly_salary_usd": 700,
                "documents": ALL_DOCUMENTS,
            },
            "recruitment": {
                "channel": "licensed_agency",
                "fee_demanded_idr": 0,
                "fee_paid_idr": 0,
                "fee_payee": "none",
                "debt_or_salary_deduction": False,
            },
            "interview": CLEAN_INTERVIEW,
        },
        changes,
    )


# --- random valid cases ------------------------------------------------------------------------


_amounts = st.one_of(
    st.sampled_from([0, 50, 300, 650, 1500, 3000, 2_000_000, 15_000_000, 60_000_000]),
    st.integers(0, 10**15),
    st.floats(0, 1e15, allow_nan=False, allow_infinity=False),
)
_zones = st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-11))])


def _values(path: str) -> st.SearchStrategy[Any]:
    spec = CASE_FIELDS[path]
    if spec.kind == "enum":
        return st.sampled_from([*spec.values, "unknown"])
    if spec.kind == "bool":
        return st.booleans()
    if spec.kind == "int":
        return st.integers(1, 10_000) if path.endswith("group_size") else st.integers(0, 120)
    if spec.kind == "number":
        return _amounts
    if spec.kind == "country":
        return st.sampled_from(COUNTRIES)
    if spec.kind == "countries":
        return st.lists(st.sampled_from(COUNTRIES), max_size=3)
    if spec.kind == "date":
        return st.dates(date(1900, 1, 1), date(2099, 12, 31))
    if path == "travel.exit_point":
        return st.sampled_from(EXIT_POINTS)
    if path == "placement.agency_license_no":
        return st.sampled_from(["SIP3MI-0001-2021", "SIP3MI-0007-2019", "SIP3MI-9999-2020"])
    if path == "links.escort_ref":
        return st.sampled_from(["+62 812 0000 0001", "+62 812 0000 0002"])
    return st.text(st.characters(codec="utf-8", exclude_categories=["Cc"]), min_size=1, max_size=30)


_RANDOM_FIELDS = [p for p in CASE_FIELDS if p not in {"case_id", "channel", "screened_at"}]


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """A random valid case record (flat, dotted keys), any field possibly unknown."""
    record: dict[str, Any] = {
        "case_id": draw(st.text("abcdef0123456789", min_size=8, max_size=8)),
        "channel": draw(st.sampled_from(CASE_FIELDS["channel"].values)),
        "screened_at": draw(
            st.datetimes(datetime(2000, 1, 2), datetime(2026, 1, 1), timezones=_zones)
        ).isoformat(),
    }
    for path in _RANDOM_FIELDS:
        presence = draw(st.sampled_from(["absent", "null", "value", "value"]))
        if presence == "null":  # an explicit null means unknown, like an absent field
            record[path] = None
        elif presence == "value":
            value = draw(_values(path))
            if isinstance(value, date):
                value = value.isoformat()
            record[path] = value
    born = record.get("person.birth_date")
    if born is not None and born > record["screened_at"][:10]:
        del record["person.birth_date"]
    return record
