from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from engine.errors import RegistryError
from engine.registry import AgencyRegistry, normalise_licence, registry_text

HEADER = "license_no,agency_name,status,valid_from,valid_until\n"


def registry_error(text: str) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        AgencyRegistry.from_text(text, source="upload.csv")
    return caught.value


def test_sample_registry_is_readable_and_fictional(registry: AgencyRegistry) -> None:
    assert len(registry) == 25
    licence = registry.lookup("SIP3MI-0001-2021")
    assert licence is not None
    assert "fiktif" in licence.agency_name


def test_status_on_a_day() -> None:
    registry = AgencyRegistry.from_text(HEADER + "A-1,PT A,active,2021-01-01,2025-12-31\n")
    assert registry.status_on("A-1", date(2020, 12, 31)) == "not_yet_valid"
    assert registry.status_on("A-1", date(2025, 12, 31)) == "active"
    assert registry.status_on("A-1", date(2026, 1, 1)) == "expired"
    assert registry.status_on("B-2", date(2026, 1, 1)) == "not_found"


def test_licence_numbers_match_whatever_separators_a_desk_types() -> None:
    assert normalise_licence(" sip3mi/0001 2021 ") == normalise_licence("SIP3MI-0001-2021")


def test_a_bad_row_names_its_line_and_column() -> None:
    error = registry_error(
        HEADER + "A-1,PT A,active,2021-01-01,2025-12-31\nA-2,PT B,active,2021-13-01,2025-12-31\n"
    )
    assert (error.line, error.field) == (3, "valid_from")
    assert str(error) == (
        "upload.csv, line 3: valid_from: expected a date as YYYY-MM-DD, got '2021-13-01'"
    )


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        ("A-1,PT A,active,,\n\nA-2,PT B,active,2021-13-01,\n", 4),  # after a blank line
        ("A-1,PT A,active,,\n\nA-2,PT B,active\n", 4),
        ('A-1,"PT A\nJakarta",active,,\nA-2,PT B,active,2021-13-01,\n', 4),  # a value of 2 lines
        ('A-1,"PT A\nJakarta",active,,\nA-2,PT B,active\n', 4),
        ('A-1,PT A,active,,\nA-2,"PT B\nJakarta",active,2021-13-01,\n', 3),  # where it starts
        ('A-1,PT A,active,,\nA-2,"PT B\nJakarta",active\n', 3),
    ],
)
def test_a_bad_row_names_the_file_line_it_starts_on(rows: str, line: int) -> None:
    """Blank lines and values of several lines count, for every kind of error alike."""
    assert registry_error(HEADER + rows).line == line


def test_a_licence_given_twice_names_the_line_and_number_it_repeats() -> None:
    error = registry_error(HEADER + "B.1/12/2020,PT A,active,,\n\nB.11/2/2020,PT B,active,,\n")
    assert (error.line, error.field) == (4, "license_no")
    assert "licence B.11/2/2020 appears twice: line 2 has B.1/12/2020" in str(error)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("A-1,PT A,cancelled,,\n", "status: 'cancelled' is not allowed"),
        (",PT A,active,,\n", "license_no: is empty"),
        ("---,PT A,active,,\n", "line 2: license_no: '---' has no letter or digit"),
        ("A-1,PT A,active,2022-01-01,2021-01-01\n", "valid_until: is before valid_from"),
        ("A-1,PT A,active,,\na-1,PT A again,active,,\n", "licence a-1 appears twice"),
        ("A-1,PT A,active\n", "line 2: 3 value(s) where the header names 5"),
        ("A-1,PT A,active,,,2021-01-01\n", "line 2: 6 value(s) where the header names 5"),
        ("A-1,PT\x00 A,active,,\n", "agency_name: contains a control character"),
        ("A-1,PT \x1b[31mA,active,,\n", "agency_name: contains a control character"),
        (f"A-1,{'PT A' * 60},active,,\n", "agency_name: longer than 200 characters"),
    ],
)
def test_bad_rows_are_refused_whole(rows: str, message: str) -> None:
    assert message in str(registry_error(HEADER + rows))


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_a_file_is_read_whatever_its_line_ends(end: str) -> None:
    text = HEADER.replace("\n", end) + f"A-1,PT A,active,,{end}A-2,PT B,revoked,,{end}"
    registry = AgencyRegistry.from_text(text)
    assert len(registry) == 2
    assert registry.status_on("A-2", date(2026, 1, 1)) == "revoked"


def test_a_value_too_long_for_the_csv_reader_is_refused_naming_its_line() -> None:
    error = registry_error(HEADER + "A-1,PT A,active,,\n" + f"A-2,{'x' * 131_073},active,,\n")
    assert error.line == 3
    assert "not readable as CSV: field larger than field limit (131072)" in str(error)


def test_header_names_are_read_without_the_spaces_around_them() -> None:
    header = " license_no , agency_name, status,valid_from,\tvalid_until\n"
    registry = AgencyRegistry.from_text(header + "A-1,PT A,suspended,,2025-12-31\n")
    licence = registry.lookup("A-1")
    assert licence is not None
    assert (licence.agency_name, licence.status) == ("PT A", "suspended")
    assert licence.valid_until == date(2025, 12, 31)


def test_a_column_named_twice_in_the_header_is_refused_naming_it() -> None:
    error = registry_error(
        "license_no,agency_name,status,valid_from,valid_until, status\nA-1,PT A,revoked,,,active\n"
    )
    assert (error.line, error.field) == (1, "status")
    assert "column(s) status appear more than once in the header" in str(error)
    extra = "license_no,agency_name,status,valid_from,valid_until,,\nA-1,PT A,active,,,,\n"
    assert len(AgencyRegistry.from_text(extra)) == 1, "columns it does not read may repeat"


def test_missing_columns_are_named() -> None:
    error = registry_error("license_no,agency_name\nA-1,PT A\n")
    assert "missing column(s) status, valid_from, valid_until" in str(error)


@pytest.mark.parametrize(
    ("separator", "received"),
    [(";", "';' (as Excel saves CSV in an Indonesian locale)"), ("\t", "tabs")],
)
def test_a_file_separated_by_another_character_than_the_comma_is_refused_saying_so(
    separator: str, received: str
) -> None:
    """Excel in an Indonesian locale saves "CSV" with semicolons: the header is then one name."""
    text = HEADER + "A-1,PT A,active,2021-01-01,2025-12-31\n"
    error = registry_error(text.replace(",", separator))
    assert error.line == 1
    assert str(error) == (
        f"upload.csv, line 1: the file's columns are separated by {received}, not commas: "
        "send comma-separated CSV, the header reading "
        "license_no,agency_name,status,valid_from,valid_until"
    )


def test_unreadable_file_is_a_registry_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="cannot read the registry"):
        AgencyRegistry.from_csv(tmp_path / "absent.csv")


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_a_file_not_in_utf8_is_refused_naming_the_line_and_byte(tmp_path: Path, end: str) -> None:
    """Excel's plain CSV is Windows-1252: é is the one byte 0xE9."""
    text = HEADER.replace("\n", end) + f"A-1,PT A,active,,{end}A-2,PT Café,active,,{end}"
    path = tmp_path / "registry.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("cp1252"))  # after a byte-order mark too
    with pytest.raises(RegistryError) as caught:
        AgencyRegistry.from_csv(path)
    assert caught.value.line == 3
    assert str(caught.value) == (
        f"{path}, line 3: byte 0xE9 is not UTF-8 (saved as Windows-1252?): save the file as "
        "CSV UTF-8"
    )
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert len(AgencyRegistry.from_csv(path)) == 2
    assert registry_text(text.encode(), source="upload") == text


def test_a_files_text_encodes_back_to_its_bytes_and_is_read_past_its_byte_order_mark() -> None:
    """An uploaded registry is stored as text and recorded by its SHA-256: the file's own."""
    data = b"\xef\xbb\xbf" + (HEADER + "A-1,PT Café,active,,\r\n").encode()
    text = registry_text(data, source="upload")
    assert text.encode() == data
    licence = AgencyRegistry.from_text(text).lookup("A-1")
    assert licence is not None
    assert licence.agency_name == "PT Café"
