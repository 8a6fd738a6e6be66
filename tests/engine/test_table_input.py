from __future__ import annotations

import os
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import table_input
from engine.case import CASE_FIELDS
from engine.case_input import parse_case
from engine.errors import CaseError
from engine.frame import FEW_ROWS, equals, frame_from_cases, row_values
from engine.table_input import CODED_FIELDS, NO_TIME, Reject, cases_from_table, check_columns
from tests.factories import cases

# How a CSV export or a hand-kept spreadsheet writes values: the same facts, other spellings.
_SPELLINGS = {
    True: ["true", "True", "TRUE", "yes", "1", " true "],
    False: ["false", "False", "no", "0", "n"],
}
_ODD = [
    "",
    " ",
    "-",
    "unknown",
    "Unknown",
    "n/a",
    "??",
    "-5",
    "1e400",
    "abc",
    "2026-02-30",
    "1765065600",  # as a date or a time: a number, refused, not read as seconds since 1970
    "20261207",
    "x" * 300,
    "a\x00b",  # a control character: refused
    "2099-01-01T00:00:00+00:00",  # as a screening time: in the future, refused
    "\u00a0A-1\u00a0",  # blanks that are not ASCII, a letter that is not
    "Jos\u00e9",
    "\u3000B2",
    "C3\x1f",
    "\x00D4",
    "\u00e9" * 150,  # 150 characters in 300 bytes
]


def _spelled(path: str, value: Any, choice: int) -> str | None:
    """One way of writing `value` as a CSV cell."""
    if value is None:
        return None
    kind = CASE_FIELDS[path].kind
    if isinstance(value, bool):
        options = _SPELLINGS[value]
        return options[choice % len(options)]
    if isinstance(value, list):
        return ";".join(value) if choice % 2 else ", ".join(code.lower() for code in value)
    if kind in {"enum", "country", "text"} and choice % 5 == 1:
        return f" {value} "
    if kind == "country" and choice % 5 == 2:
        return str(value).lower()
    if kind in {"int", "number"} and choice % 4 == 1:
        return f"{float(value)!r}"
    return str(value)


@st.composite
def csv_rows(draw: st.DrawFn) -> dict[str, str | None]:
    """A case as a CSV row of text cells; sometimes one cell is odd or wrong."""
    record = draw(cases())
    row = {path: _spelled(path, value, draw(st.integers(0, 9))) for path, value in record.items()}
    if draw(st.booleans()):
        row[draw(st.sampled_from(sorted(CASE_FIELDS)))] = draw(st.sampled_from(_ODD))
    return row


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    names = sorted({name for row in rows for name in row} | {"channel", "screened_at"})
    return pa.table(
        {name: pa.array([row.get(name) for row in rows], pa.string()) for name in names}
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _one_by_one(row: dict[str, Any], number: int) -> list[tuple[str, str]] | dict[str, Any]:
    """What parse_case makes of a row: its problems, or the case's plain facts."""
    record = {name: value for name, value in row.items()}
    problems = []
    if _blank(record.get("screened_at")):
        problems.append(("screened_at", NO_TIME))
        record.pop("screened_at", None)
    if _blank(record.get("case_id")):
        record["case_id"] = f"row-{number}"
    try:
        case = parse_case(record)
    except CaseError as error:
        problems += [(p.field, p.problem) for p in error.problems]
    if problems:
        return problems
    return row_values(frame_from_cases([case]), 0)


@settings(
    max_examples=int(os.environ.get("LINDUNG_TEST_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(csv_rows(), min_size=1, max_size=12))
def test_columns_validate_every_row_as_parse_case_does(rows: list[dict[str, Any]]) -> None:
    _assert_as_parse_case(rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(csv_rows(), min_size=1, max_size=12))
def test_a_chunk_of_many_rows_validates_each_as_parse_case_does(
    rows: list[dict[str, Any]],
) -> None:
    """Past FEW_ROWS rows, columns keep their codes and known masks: the same cases."""
    _assert_as_parse_case(_past_few_rows(rows))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(csv_rows(), min_size=1, max_size=12))
def test_enumerations_read_as_dictionaries_give_the_same_cases(
    rows: list[dict[str, Any]],
) -> None:
    """A Parquet file's enumeration columns arrive as dictionaries (distinct values and codes):
    the same cases and the same problems as plain text."""
    plain = _table(_past_few_rows(rows))
    coded = pa.table(
        {
            name: column.dictionary_encode() if name in CODED_FIELDS else column
            for name, column in zip(plain.schema.names, plain.columns, strict=True)
        }
    )
    first, second = cases_from_table(plain, 1), cases_from_table(coded, 1)
    assert first.rejects == second.rejects
    assert first.rows.tolist() == second.rows.tolist()
    for row in range(len(first.rows)):
        assert row_values(first.frame, row) == row_values(second.frame, row)


@st.composite
def time_texts(draw: st.DrawFn) -> str:
    """Screening times as exports write them: either separator, a fraction or not, any zone
    (or none), now and then a day that is not in the calendar."""
    moment = draw(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31)))
    text = moment.strftime("%Y-%m-%d") + draw(st.sampled_from("T ")) + moment.strftime("%H:%M:%S")
    if draw(st.booleans()):
        text += "." + str(moment.microsecond).zfill(6)[: draw(st.integers(1, 6))]
    minutes = draw(st.integers(-14 * 60, 14 * 60))
    sign = "-" if minutes < 0 else "+"
    text += draw(
        st.sampled_from(["Z", "", f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"])
    )
    if draw(st.integers(0, 9)) == 0:
        text = text[:5] + "02-30" + text[10:]
    return text


@settings(max_examples=200, deadline=None)
@given(st.lists(time_texts(), min_size=1, max_size=80))
def test_screening_times_read_at_once_are_the_times_read_part_by_part(texts: list[str]) -> None:
    """Arrow reads zoned times at once; a list with a time it cannot read (no zone, 02-30) is
    read part by part instead, and both readings agree on every time they both read."""
    array = pa.array(texts, pa.string())
    pending = np.ones(len(texts), dtype=bool)
    careful = table_input._plain_time_texts(array, pending)
    fast = table_input._zoned_times(array, pending)
    if any(not t.endswith("Z") and t[-6] not in "+-" for t in texts) or any(
        "-02-30" in t for t in texts
    ):
        assert fast is None
        return
    assert fast is not None
    for first, second in zip(fast, careful, strict=True):
        assert first.tolist() == second.tolist()


def _past_few_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows repeated past FEW_ROWS, so that a chunk takes the paths of large frames."""
    return (rows * (FEW_ROWS // len(rows) + 2))[: FEW_ROWS + 7]


def _assert_as_parse_case(rows: list[dict[str, Any]]) -> None:
    checked = cases_from_table(_table(rows), first_row=5)
    kept = {int(number): i for i, number in enumerate(checked.rows)}
    for index, row in enumerate(rows):
        number = 5 + index
        expected = _one_by_one(row, number)
        if isinstance(expected, list):
            assert number not in kept
            got = [(r.field, r.problem) for r in checked.rejects if r.row == number]
            assert got == expected
        else:
            assert row_values(checked.frame, kept[number]) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=1, max_size=12))
def test_typed_parquet_columns_read_as_the_same_cases(records: list[dict[str, Any]]) -> None:
    """Parquet keeps types: booleans, numbers, dates and lists arrive as such, not as text."""
    names = sorted({name for record in records for name in record})
    columns = {}
    for name in names:
        values = [record.get(name) for record in records]
        if CASE_FIELDS[name].kind == "date":
            values = [None if v is None else date.fromisoformat(v) for v in values]
        if CASE_FIELDS[name].kind == "number":
            values = [None if v is None else float(v) for v in values]
        if CASE_FIELDS[name].kind == "enum":
            values = [None if v is None else str(v) for v in values]
        columns[name] = pa.array(values)
    checked = cases_from_table(pa.table(columns), first_row=1)
    assert checked.rejects == []
    for index, record in enumerate(records):
        expected = row_values(frame_from_cases([parse_case(record)]), 0)
        assert row_values(checked.frame, index) == expected


def test_a_bad_row_is_named_by_row_and_column_and_the_rest_are_kept() -> None:
    rows = [
        {"case_id": "A", "channel": "port_desk", "screened_at": "2026-03-01T10:00:00+07:00"},
        {
            "case_id": "B",
            "channel": "port_desk",
            "screened_at": "2026-03-01T10:00:00+07:00",
            "travel.visa_type": "tourst",
        },
        {"case_id": "C", "channel": "port_desk", "screened_at": None},
        {"case_id": "D", "channel": "airport", "screened_at": "2026-03-01T10:00:00Z"},
    ]
    checked = cases_from_table(_table(rows), first_row=1)
    assert list(checked.frame["case_id"]) == ["A"]
    assert [(r.row, r.field) for r in checked.rejects] == [
        (2, "travel.visa_type"),
        (3, "screened_at"),
        (4, "channel"),
    ]
    assert "did you mean tourist?" in checked.rejects[0].problem


def test_rows_the_column_check_doubts_are_kept_when_parse_case_takes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The column check is a fast path: where it doubts a value that the case's own model
    accepts, the row is kept with the model's values (in a chunk past FEW_ROWS rows, whose
    columns are read-only once read)."""
    strict = table_input._validate
    monkeypatch.setattr(  # a column check stricter than the model, for one value
        table_input,
        "_validate",
        lambda path, value: (False, None) if value == "one_way" else strict(path, value),
    )
    rows = [
        {
            "case_id": f"C-{n}",
            "channel": "port_desk",
            "screened_at": "2026-03-01T10:00:00+07:00",
            "travel.ticket": ["one_way", "return", None][n % 3],
            "travel.visa_type": "tourist",
        }
        for n in range(FEW_ROWS + 10)
    ]
    checked = cases_from_table(_table(rows), first_row=1)
    assert not checked.rejects
    assert list(checked.frame["travel.ticket"]) == [row["travel.ticket"] for row in rows]
    assert list(checked.frame["case_id"]) == [row["case_id"] for row in rows]
    one_way = np.flatnonzero(equals(checked.frame["travel.ticket"], "one_way"))
    assert one_way.tolist() == list(range(0, FEW_ROWS + 10, 3))


def test_identifiers_in_the_wrong_column_are_never_echoed() -> None:
    rows = [
        {
            "channel": "port_desk",
            "screened_at": "2026-03-01T10:00:00Z",
            "person.age": "3201234567890001",
        }
    ]
    [reject] = cases_from_table(_table(rows), first_row=1).rejects
    assert reject == Reject(1, "person.age", reject.problem)
    assert "3201234567890001" not in reject.problem


def test_a_case_without_an_id_is_named_by_its_row() -> None:
    rows = [{"channel": "batch", "screened_at": "2026-03-01T10:00:00Z"}] * 2
    checked = cases_from_table(_table(rows), first_row=41)
    assert list(checked.frame["case_id"]) == ["row-41", "row-42"]


def test_the_local_date_at_the_desk_judges_ages_and_licences() -> None:
    rows = [{"channel": "port_desk", "screened_at": "2026-03-01T23:30:00-05:00"}]
    frame = cases_from_table(_table(rows), first_row=1).frame
    assert frame["screened_on"][0] == np.datetime64("2026-03-01")
    assert frame["screened_at"][0] == np.datetime64("2026-03-02T04:30:00")


_TIMES = [  # as text: the same instant in UTC, without a zone, and at desks in WIB and WITA
    "2025-09-13T18:00:00Z",
    "2025-09-13T18:00:00+00:00",
    "2025-09-13T18:00:00",
    "2025-09-13T18:00:00.5Z",
    "2025-09-14T01:00:00+07:00",
    "2025-09-13T23:30:00+08:00",
    "2025-09-13 18:00:00Z",
]


@pytest.mark.parametrize(
    "times", [_TIMES, _TIMES[:2] + _TIMES[4:6], ["2025-09-13T18:00Z", "2025-09-13T23:30+08:00"]]
)
def test_a_time_in_utc_is_judged_on_jakartas_date_as_one_case_is(times: list[str]) -> None:
    rows = [{"channel": "port_desk", "screened_at": time} for time in times]
    frame = cases_from_table(_table(rows), first_row=1).frame
    one_by_one = [parse_case(row) for row in rows]
    assert list(frame["screened_on"]) == list(frame_from_cases(one_by_one)["screened_on"])
    wita = [row for row, time in enumerate(times) if time.endswith("+08:00")]
    assert [day == np.datetime64("2025-09-13") for day in frame["screened_on"]] == [
        row in wita for row in range(len(times))
    ]


@pytest.mark.parametrize(
    ("zone", "hour", "day"),
    [
        (None, 18, "2025-09-14"),  # 01:00 WIB the 14th
        ("UTC", 18, "2025-09-14"),
        ("+00:00", 18, "2025-09-14"),
        ("Asia/Jakarta", 16, "2025-09-13"),  # 16:30 UTC: 23:30 WIB the 13th
        ("Asia/Makassar", 16, "2025-09-14"),  # 00:30 WITA the 14th: the desk's own date
    ],
)
def test_a_time_column_is_judged_on_jakartas_date_where_it_is_in_utc(
    zone: str | None, hour: int, day: str
) -> None:
    instant = datetime(2025, 9, 13, hour, 30 if hour == 16 else 0, tzinfo=UTC)
    stamps = pa.array([instant], pa.timestamp("s", "UTC")).cast(pa.timestamp("s", zone))
    table = pa.table({"channel": ["port_desk"], "screened_at": stamps})
    frame = cases_from_table(table, first_row=1).frame
    assert frame["screened_on"][0] == np.datetime64(day)


def test_columns_that_are_not_case_fields_are_refused_whole() -> None:
    with pytest.raises(CaseError) as caught:
        check_columns(["channel", "screened_at", "travel.visa_typ", "extra"])
    assert [p.field for p in caught.value.problems] == ["travel.visa_typ", "extra"]
    assert "did you mean travel.visa_type?" in str(caught.value)
    with pytest.raises(CaseError, match="screened_at: column is missing"):
        check_columns(["channel"])


def test_a_column_named_twice_is_refused_naming_it() -> None:
    with pytest.raises(CaseError) as caught:
        check_columns(["case_id", "channel", "screened_at", "channel", "channel"])
    assert [str(p) for p in caught.value.problems] == ["channel: column appears more than once"]


def test_a_day_that_is_not_in_the_calendar_is_refused_not_rolled_over() -> None:
    rows = [
        {"channel": "port_desk", "screened_at": "2026-03-01T10:00:00Z", "person.birth_date": day}
        for day in ("2000-02-30", "2000-02-29")
    ] + [{"channel": "port_desk", "screened_at": "2026-02-30T10:00:00Z"}]
    checked = cases_from_table(_table(rows), first_row=1)
    assert [(r.row, r.field) for r in checked.rejects] == [
        (1, "person.birth_date"),
        (3, "screened_at"),
    ]
    assert checked.frame["person.birth_date"][0] == np.datetime64("2000-02-29")


def test_a_number_in_a_date_or_time_column_is_refused_as_one_case_is() -> None:
    """Text (CSV) or a Parquet integer column alike: one case's words, not a day in 1970."""
    at = "2026-03-01T10:00:00Z"
    text = _table(
        [
            {"channel": "batch", "screened_at": "1765065600"},
            {"channel": "batch", "screened_at": at, "person.birth_date": "19900101"},
        ]
    )
    typed = pa.table(
        {
            "channel": ["batch", "batch"],
            "screened_at": [at, at],
            "travel.passport_issued_on": pa.array([None, 1765065600], pa.int64()),
        }
    )
    for table, refused in (
        (text, [(1, "screened_at", 1765065600), (2, "person.birth_date", "19900101")]),
        (typed, [(2, "travel.passport_issued_on", 1765065600)]),
    ):
        one_case = [
            _problems_of_one_case({"channel": "batch", "screened_at": at, field: value})[0]
            for _, field, value in refused
        ]
        rejects = cases_from_table(table, first_row=1).rejects
        assert [f"{r.field}: {r.problem}" for r in rejects] == one_case
        assert [r.row for r in rejects] == [row for row, _, _ in refused]
        assert all(r.problem.endswith(", not a number") for r in rejects)


def test_date_and_timestamp_columns_are_read() -> None:
    """As Parquet keeps them: date32, date64 and timestamps, with a zone or without."""
    table = pa.table(
        {
            "channel": ["batch"],
            "screened_at": pa.array([datetime(2026, 3, 1, 3)], pa.timestamp("ms")),
            "person.birth_date": pa.array([date(1990, 1, 1)], pa.date64()),
            "travel.passport_issued_on": pa.array(
                [datetime(2024, 5, 2, tzinfo=UTC)], pa.timestamp("us", "UTC")
            ),
        }
    )
    checked = cases_from_table(table, first_row=1)
    assert checked.rejects == []
    one_case = {
        "case_id": "row-1",
        "channel": "batch",
        "screened_at": "2026-03-01T03:00:00Z",
        "person.birth_date": "1990-01-01",
        "travel.passport_issued_on": "2024-05-02",
    }
    expected = row_values(frame_from_cases([parse_case(one_case)]), 0)
    assert row_values(checked.frame, 0) == expected


def _problems_of_one_case(record: dict[str, Any]) -> list[str]:
    with pytest.raises(CaseError) as caught:
        parse_case(record)
    return [str(problem) for problem in caught.value.problems]


@pytest.mark.parametrize("blank", ["", "  ", "\t", "\u00a0", "\u3000"])
def test_a_blank_case_id_is_no_id(blank: str) -> None:
    """A case with a blank id is named by its row, as one without: every run names it the
    same (a blank was stored as "", every such traveller one), whether the file holds its text
    as Arrow's string or as large_string (as polars writes Parquet)."""
    rows = [{"case_id": blank, "channel": "batch", "screened_at": "2026-03-01T10:00:00Z"}]
    table = _table(rows)
    large = table.cast(pa.schema([(name, pa.large_string()) for name in table.column_names]))
    for read in (table, large):
        assert list(cases_from_table(read, first_row=7).frame["case_id"]) == ["row-7"]


def test_an_empty_screening_time_is_no_time() -> None:
    rows = [{"case_id": "E", "channel": "batch", "screened_at": ""}]
    [reject] = cases_from_table(_table(rows), first_row=1).rejects
    assert (reject.field, reject.problem) == ("screened_at", NO_TIME)


def test_an_escort_reference_of_no_letter_or_digit_is_not_known_in_a_table() -> None:
    rows = [
        {
            "case_id": f"E-{n}",
            "channel": "batch",
            "screened_at": "2026-03-01T10:00:00Z",
            "links.escort_ref": ref,
        }
        for n, ref in enumerate(["---", "( )", "esc-7"])
    ]
    assert list(cases_from_table(_table(rows), first_row=1).frame["links.escort_ref"]) == [
        None,
        None,
        "esc-7",
    ]
