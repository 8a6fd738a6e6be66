from __future__ import annotations

from engine.case import CASE_FIELDS, GROUPS
from engine.case_input import parse_case


def test_field_catalogue_covers_the_contract() -> None:
    assert CASE_FIELDS["travel.visa_type"].values[0] == "work"
    assert CASE_FIELDS["placement.documents.e_pmi_id"].kind == "bool"
    assert CASE_FIELDS["travel.destination_country"].kind == "country"
    assert len([p for p in CASE_FIELDS if p.startswith("interview.")]) == 6


def test_values_are_read_by_dotted_path() -> None:
    case = parse_case({"channel": "batch", "placement": {"documents": {"bpjs": False}}})
    assert case.value("placement.documents.bpjs") is False
    assert case.value("travel.visa_type") is None
    assert "placement.documents" in GROUPS
