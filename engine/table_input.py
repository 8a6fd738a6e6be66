"""Cases from columns (CSV or Parquet with flat dotted names): validated exactly as one case is.

Reading millions of rows one `parse_case` at a time would take longer than screening them, so each
column is checked at once:
- values already in their plain form (`2026-03-01`, `1500000`, a name without stray blanks) are
  taken as they are, over the whole column;
- any other value is validated through the field's own pydantic validator, once per distinct
  value (an enumeration column holds a few dozen);
- a row with any value that does not validate, or that breaks a rule across fields, goes through
  `parse_case`, so its problems read exactly as the command line and the HTTP API report them.
A property test holds this to `parse_case` row by row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from engine.case import (
    CASE_FIELDS,
    CLOCK_SKEW,
    CONTROL_CHARACTERS,
    GROUPS,
    MAX_AMOUNT,
    MAX_TEXT,
    Case,
    screening_day,
)
from engine.case_input import _unknown_field, parse_case
from engine.errors import CaseError, FieldProblem
from engine.frame import (
    SCREENED_ON,
    Frame,
    absent_column,
    column_from_codes,
    column_of,
    frame_from_cases,
    known,
    screening_days,
    unknown_column,
)

REQUIRED_COLUMNS = ("channel", "screened_at")
NO_TIME = "is required to rescore a case (the date and time it was screened)"
_TEXT_PLACEHOLDERS = ["", "-", "--", "?", "unknown", "n/a", "na", "null", "none"]
_PLAIN_END = (0x21, 0x7E)  # a text that begins and ends with a visible ASCII byte is plain
_PLAIN_NUMBER = r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?$"
_PLAIN_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_PLAIN_TIME = (
    r"^(?P<day>[0-9]{4}-[0-9]{2}-[0-9]{2})[T ](?P<time>(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])"
    r"(?P<fraction>\.[0-9]{1,6})?(?P<zone>Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?$"
)
_DAYS = {
    "date": (date(1900, 1, 1), date(2100, 1, 1)),
    "datetime": (date(2000, 1, 1), date(2100, 1, 1)),
}
_CODED_KINDS = {"enum", "bool", "country"}  # every value of these is validated once per distinct
CODED_FIELDS = frozenset(path for path, spec in CASE_FIELDS.items() if spec.kind in _CODED_KINDS)
_FREE_TEXT = {
    "case_id",
    "person.full_name",
    "person.nik",
    "person.passport_no",
    "placement.agency_name",
    "placement.job_order_no",
    "placement.agency_license_no",
    "links.escort_ref",
    "links.group_ref",
}


@dataclass(frozen=True)
class Reject:
    """One problem of one input row (1-based, the header not counted)."""

    row: int
    field: str
    problem: str


@dataclass(frozen=True)
class TableCases:
    """The valid rows of a chunk as a frame (engine/frame.py), their row numbers, the rest."""

    frame: Frame
    rows: np.ndarray  # 1-based input row number of each frame row
    rejects: list[Reject]


def check_columns(names: Iterable[str]) -> None:
    """Refuse a table whose columns are not case fields, that names one twice, or that lacks
    channel or screened_at."""
    names = list(names)
    problems = [
        FieldProblem(name, _unknown_field(name))
        for name in names
        if name not in CASE_FIELDS and name not in GROUPS
    ]
    problems += [
        FieldProblem(name, "column appears more than once")
        for name in dict.fromkeys(names)
        if names.count(name) > 1 and (name in CASE_FIELDS or name in GROUPS)
    ]
    problems += [
        FieldProblem(name, "column is missing (every case needs it)")
        for name in REQUIRED_COLUMNS
        if name not in names
    ]
    if problems:
        raise CaseError(problems)


def cases_from_table(
    table: pa.Table | pa.RecordBatch, first_row: int, numbers: np.ndarray | None = None
) -> TableCases:
    """Validate a chunk of rows; `first_row` is the input row number of its first row (or
    `numbers` gives each row's)."""
    count = table.num_rows
    present = set(table.schema.names)
    check_columns(present)
    columns: Frame = {}
    coded: dict[str, _Codes] = {}  # enumerations: each row's value as a code, as validated
    doubtful = np.zeros(count, dtype=bool)
    for path, spec in CASE_FIELDS.items():
        if path not in present:
            columns[path] = absent_column(count, spec.kind)
            continue
        values, bad, local_days, value_codes = _column(path, _plain_array(path, table.column(path)))
        columns[path] = values
        if value_codes is not None:
            coded[path] = value_codes
        doubtful |= bad
        if path == "screened_at":
            columns[SCREENED_ON] = local_days
    if numbers is None:
        numbers = np.arange(first_row, first_row + count)
    columns["case_id"] = _row_ids(columns["case_id"], numbers)
    doubtful |= np.isnat(columns["screened_at"]) | ~known(columns["channel"])
    ahead = (datetime.now(UTC) + CLOCK_SKEW).replace(tzinfo=None)
    doubtful |= columns["screened_at"] > np.datetime64(ahead, "s")  # parse_case says why
    with np.errstate(invalid="ignore"):
        doubtful |= columns["person.birth_date"] > columns[SCREENED_ON]
    return _checked_one_by_one(table, columns, coded, doubtful, numbers)


def _checked_one_by_one(
    table: pa.Table | pa.RecordBatch,
    columns: Frame,
    coded: dict[str, _Codes],
    doubtful: np.ndarray,
    numbers: np.ndarray,
) -> TableCases:
    rejects: list[Reject] = []
    keep = ~doubtful
    parsed: list[Case] = []
    parsed_at: list[int] = []
    for index in np.flatnonzero(doubtful).tolist():
        number = int(numbers[index])
        record = {name: table.column(name)[index].as_py() for name in table.schema.names}
        problems = []
        if _blank(record.get("screened_at")):
            problems.append(FieldProblem("screened_at", NO_TIME))
            record.pop("screened_at", None)
        if _blank(record.get("case_id")):
            record["case_id"] = f"row-{number}"
        try:
            case = parse_case(record)
        except CaseError as error:
            problems += error.problems
        if problems:
            rejects += [Reject(number, problem.field, problem.problem) for problem in problems]
            continue
        keep[index] = True
        parsed.append(case)
        parsed_at.append(index)
    if parsed:
        one_by_one = frame_from_cases(parsed)
        for name, column in columns.items():
            if name in coded:
                coded[name].take(parsed_at, one_by_one[name])
                columns[name] = coded[name].column()
            else:
                columns[name] = column = column.copy()  # a column read so far is read-only
                column[parsed_at] = one_by_one[name]
    if keep.all():  # the usual chunk: every column as it is, with what is known of it
        return TableCases(columns, numbers, rejects)
    frame = {
        name: coded[name].column(keep) if name in coded else column[keep]
        for name, column in columns.items()
    }
    return TableCases(frame, numbers[keep], rejects)


class _Codes:
    """An enumeration column as a code per row (-1: unknown) into its distinct values, as
    validation found them: rules and features then ask about a few values, not every row."""

    def __init__(self, count: int) -> None:
        self.codes = np.full(count, -1, dtype=np.int64)
        self.values: list[Any] = []
        self._index: dict[Any, int] = {}

    def set_distinct(self, at: np.ndarray, codes: np.ndarray, results: list[Any]) -> None:
        """The rows `at`, whose values are `results[codes]`."""
        canonical = np.array([self._code(value) for value in results], dtype=np.int64)
        self.codes[at] = canonical[codes]

    def take(self, rows: list[int], values: np.ndarray) -> None:
        """Rows parsed one by one, with their values."""
        self.codes = self.codes.copy()  # a column made from them holds them read-only
        self.codes[rows] = [self._code(value) for value in values.tolist()]

    def column(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The column of values (of the chosen rows), its codes known to the frame."""
        return column_from_codes(self.codes if rows is None else self.codes[rows], self.values)

    def _code(self, value: Any) -> int:
        if value is None:
            return -1
        code = self._index.get(value)
        if code is None:
            code = self._index[value] = len(self.values)
            self.values.append(value)
        return code


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _row_ids(ids: np.ndarray, numbers: np.ndarray) -> np.ndarray:
    """A case without an id is named by its row, so that every run names it the same."""
    missing = np.flatnonzero(~known(ids))
    if not len(missing):
        return ids
    named = ids.copy()  # a column `known` has read is read-only
    named[missing] = [f"row-{number}" for number in numbers[missing].tolist()]
    return named


def _plain_array(path: str, column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(array.type) and path not in CODED_FIELDS:
        array = array.dictionary_decode()  # enumerations are validated by their dictionary
    return array


def _column(path: str, array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, _Codes | None]:
    """The column in the frame's conventions, where a value did not validate, (for the
    screening time) the local date at the desk, and (for enumerations) its codes."""
    kind = CASE_FIELDS[path].kind
    count = len(array)
    pending = np.asarray(array.is_valid(), dtype=bool)
    if path in {"case_id", "screened_at"} and (
        pa.types.is_string(array.type) or pa.types.is_large_string(array.type)  # polars' text
    ):
        # a blank is no id (the row names the case) and no time (a rescored case needs its own)
        blank = pc.equal(pc.utf8_trim_whitespace(array), "")
        pending &= ~np.asarray(pc.fill_null(blank, False), dtype=bool)
    coded = _Codes(count) if kind in _CODED_KINDS else None
    values = unknown_column(count, kind) if coded is None else _NO_ROWS  # else from the codes
    local_days = (
        np.full(count, np.datetime64("NaT"), dtype="datetime64[D]")
        if kind == "datetime"
        else _NO_DAYS
    )
    if kind == "number":
        _plain_numbers(array, values, pending)
    elif kind == "date":
        _plain_dates(array, values, pending)
    elif kind == "datetime":
        _plain_times(array, values, local_days, pending)
    elif path in _FREE_TEXT and pa.types.is_string(array.type):
        _plain_texts(path, array, values, pending)
    bad = np.zeros(count, dtype=bool)
    if pending.any():
        at = np.flatnonzero(pending)
        distinct, codes = _distinct(array, at)
        validated = [_validate(path, value) for value in distinct]
        ok = np.array([good for good, _ in validated], dtype=bool)
        results = [value if good else None for good, value in validated]
        if kind == "datetime":
            utc, days = _times_of(results)
            values[at], local_days[at] = utc[codes], days[codes]
        elif coded is not None:
            coded.set_distinct(at, codes, results)
        else:
            values[at] = column_of(results, kind)[codes]
        bad[at] = ~ok[codes]
    if coded is not None:
        values = coded.column()
    return values, bad, local_days, coded


def _distinct(array: pa.Array, at: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """The distinct values of the rows `at` of an array (none null), and where each row's value
    is among them."""
    if pa.types.is_dictionary(array.type):  # as a Parquet file stores an enumeration
        indices = array.indices  # read off its buffer: `at` holds no null
        buffer = np.frombuffer(indices.buffers()[1], dtype=indices.type.to_pandas_dtype())
        return array.dictionary.to_pylist(), buffer[indices.offset + at].astype(np.int64)
    return _distinct_values(array.take(pa.array(at)))


def _distinct_values(array: pa.Array) -> tuple[list[Any], np.ndarray]:
    try:
        encoded = pc.dictionary_encode(array)
    except pa.ArrowNotImplementedError:  # lists (transit countries from Parquet)
        return array.to_pylist(), np.arange(len(array))
    return encoded.dictionary.to_pylist(), np.asarray(encoded.indices.to_numpy(), dtype=np.int64)


def _plain_numbers(array: pa.Array, values: np.ndarray, pending: np.ndarray) -> None:
    if pa.types.is_string(array.type):
        plain = _matches(array, _PLAIN_NUMBER) & pending
        numbers = pc.cast(pc.if_else(pa.array(plain), array, None), pa.float64())
    elif pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        numbers = pc.cast(array, pa.float64())
        plain = pending.copy()
    else:
        return
    found = np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=float)
    with np.errstate(invalid="ignore"):
        plain &= np.isfinite(found) & (found >= 0) & (found <= MAX_AMOUNT)
        plain &= np.round(found, 2) == found  # pydantic rounds to cents: take only what it keeps
    values[plain] = found[plain]
    pending &= ~plain


def _plain_dates(array: pa.Array, values: np.ndarray, pending: np.ndarray) -> None:
    if pa.types.is_string(array.type):
        plain = _matches(array, _PLAIN_DATE) & pending
        parsed = pc.strptime(
            pc.if_else(pa.array(plain), array, None), "%Y-%m-%d", "s", error_is_null=True
        )
        plain &= _real_day(parsed, pc.if_else(pa.array(plain), array, None))
        days = pc.cast(parsed, pa.date32())
    elif pa.types.is_date32(array.type):
        days, plain = array, pending.copy()
    else:
        return
    found = np.asarray(days.to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    plain &= _within(found, "date")
    values[plain] = found[plain]
    pending &= ~plain


def _plain_times(
    array: pa.Array, values: np.ndarray, local_days: np.ndarray, pending: np.ndarray
) -> None:
    if pa.types.is_string(array.type):
        plain, utc, days, in_utc = _zoned_times(array, pending) or _plain_time_texts(array, pending)
    elif pa.types.is_timestamp(array.type):
        if array.type.tz is None:  # a time without a zone is read as UTC, as one case is
            local = np.asarray(array.to_numpy(zero_copy_only=False), dtype="datetime64[s]")
            utc = local
        else:
            utc = np.asarray(array.to_numpy(zero_copy_only=False), dtype="datetime64[s]")
            local = np.asarray(
                pc.local_timestamp(array).to_numpy(zero_copy_only=False), dtype="datetime64[s]"
            )
        plain, days, in_utc = pending.copy(), local.astype("datetime64[D]"), local == utc
    else:
        return
    plain &= _within(days, "datetime")
    days = screening_days(utc, days, in_utc)
    values[plain], local_days[plain] = utc[plain], days[plain]
    pending &= ~plain


_NO_ROWS = np.zeros(0, dtype=object)  # what an enumeration's column is until its codes are read
_NO_DAYS = np.zeros(0, dtype="datetime64[D]")  # the local days of a column not a time
# where plain, the UTC time, the local date, and where the time was given in UTC or without a zone
_Times = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_IN_UTC = r"(Z|[+-]00:00)$"


def _zoned_times(array: pa.Array, pending: np.ndarray) -> _Times | None:
    """Plain times when every one has its zone and a day in the calendar, as a desk's do:
    Arrow's ISO 8601 parser reads them at once. None when any has not (it refuses them all)."""
    plain = _matches(array, _PLAIN_TIME) & pending
    chosen = pc.if_else(pa.array(plain), array, None)
    try:
        instants = pc.cast(chosen, pa.timestamp("us", "UTC"))
        dates = pc.cast(pc.utf8_slice_codeunits(chosen, 0, 10), pa.date32())  # the desk's day
    except pa.ArrowInvalid:
        return None
    # the fraction of a second is dropped, as the text's own parse below drops it
    utc = np.asarray(instants.to_numpy(zero_copy_only=False), dtype="datetime64[s]")
    days = np.asarray(dates.to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    return plain, utc, days, _matches(chosen, _IN_UTC)


def _plain_time_texts(array: pa.Array, pending: np.ndarray) -> _Times:
    """Plain times read part by part: a time without a zone is UTC, a day not in the calendar
    (02-30) is not plain."""
    parts = pc.extract_regex(array, _PLAIN_TIME)
    plain = np.asarray(parts.is_valid(), dtype=bool) & pending
    stamp = pc.binary_join_element_wise(parts.field("day"), parts.field("time"), "T")
    wall = pc.strptime(stamp, "%Y-%m-%dT%H:%M:%S", "s", error_is_null=True)
    plain &= _real_day(wall, stamp)
    local = np.asarray(wall.to_numpy(zero_copy_only=False), dtype="datetime64[s]")
    zones, codes = _distinct_values(pc.fill_null(parts.field("zone"), ""))
    offsets = np.array([_offset_seconds(zone) for zone in zones], dtype=np.int64)[codes]
    utc = local - offsets.astype("timedelta64[s]")
    plain &= ~np.isnat(local)
    return plain, utc, local.astype("datetime64[D]"), offsets == 0


def _plain_texts(path: str, array: pa.Array, values: np.ndarray, pending: np.ndarray) -> None:
    plain, sizes = _plain_ends(array)
    plain &= pending
    # bytes: a longer text in fewer characters, or one with a control character inside it,
    # takes the careful way
    plain &= sizes <= (200 if path == "case_id" else MAX_TEXT)
    control = pc.match_substring_regex(array, CONTROL_CHARACTERS)
    plain &= ~np.asarray(pc.fill_null(control, False), dtype=bool)
    if path != "case_id":
        placeholder = pc.is_in(pc.utf8_lower(array), pa.array(_TEXT_PLACEHOLDERS))
        plain &= ~np.asarray(pc.fill_null(placeholder, False), dtype=bool)
    if path == "links.escort_ref":  # one of no letter or digit is no reference
        named = pc.match_substring_regex(array, "[A-Za-z0-9]")
        plain &= np.asarray(pc.fill_null(named, False), dtype=bool)
    found = array.to_numpy(zero_copy_only=False)
    values[plain] = found[plain]
    pending &= ~plain


def _plain_ends(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Where a text surely has no blank to strip: its first and last bytes are visible ASCII
    (any other text, say one ending in a non-ASCII letter, is validated the careful way); and
    the size of each in bytes. Read off Arrow's buffers, without a string per row."""
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    _validity, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type)[
        array.offset : array.offset + len(array) + 1
    ].astype(np.int64)
    sizes = np.diff(offsets)
    # every text empty: no bytes to read, and a byte of zero stands in for them
    empty = data_buffer is None or not data_buffer.size
    data = np.zeros(1, np.uint8) if empty else np.frombuffer(data_buffer, dtype=np.uint8)
    filled = sizes > 0
    low, high = _PLAIN_END
    first = np.where(filled, data[np.where(filled, offsets[:-1], 0)], 0)
    last = np.where(filled, data[np.where(filled, offsets[1:] - 1, 0)], 0)
    plain = filled & (first >= low) & (first <= high) & (last >= low) & (last <= high)
    return plain, sizes


def _real_day(parsed: pa.Array, text: pa.Array) -> np.ndarray:
    """Where the parsed time has the month and day its text gives (strptime rolls 02-30 into
    March). `text` starts YYYY-MM-DD, as both plain forms do, where it parsed."""
    text = pc.if_else(pc.is_valid(parsed), text, None)
    month = pc.cast(pc.utf8_slice_codeunits(text, 5, 7), pa.int64())
    day = pc.cast(pc.utf8_slice_codeunits(text, 8, 10), pa.int64())
    same = pc.and_(pc.equal(pc.month(parsed), month), pc.equal(pc.day(parsed), day))
    return np.asarray(pc.fill_null(same, False), dtype=bool)


def _matches(array: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.match_substring_regex(array, pattern), False), dtype=bool)


def _within(days: np.ndarray, kind: str) -> np.ndarray:
    low, high = (np.datetime64(day, "D") for day in _DAYS[kind])
    return np.asarray(~np.isnat(days) & (days >= low) & (days < high), dtype=bool)


def _offset_seconds(zone: str | None) -> int:
    if not zone or zone == "Z":
        return 0
    sign = -1 if zone[0] == "-" else 1
    return sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)


def _times_of(results: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """UTC instants and screening dates of validated screening times (None where not valid)."""
    aware = [
        None if value is None else value if value.tzinfo else value.replace(tzinfo=UTC)
        for value in results
    ]
    utc = column_of(aware, "datetime")
    days = np.array([None if v is None else screening_day(v) for v in aware], dtype="datetime64[D]")
    return utc, days


def _validate(path: str, value: Any) -> tuple[bool, Any]:
    """A value through its field's validator (cached: a column repeats its values)."""
    cache = _CACHE.setdefault(path, {})
    key = (type(value), value)
    hashable = True
    try:
        return cache[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value (a list of countries from Parquet)
        hashable = False
    try:
        result: tuple[bool, Any] = (True, _ADAPTERS[path].validate_python(value))
    except (ValidationError, ValueError):
        result = (False, None)
    if hashable:
        if len(cache) > 100_000:
            cache.clear()
        cache[key] = result
    return result


_CACHE: dict[str, dict[Any, tuple[bool, Any]]] = {}


def _adapters(model: type[BaseModel], prefix: str = "") -> Mapping[str, TypeAdapter[Any]]:
    found: dict[str, TypeAdapter[Any]] = {}
    config = ConfigDict(str_strip_whitespace=True)
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(_adapters(annotation, f"{prefix}{name}."))
            continue
        typed = Annotated[annotation, *info.metadata] if info.metadata else annotation
        found[f"{prefix}{name}"] = TypeAdapter(cast(Any, typed), config=config)
    return found


_ADAPTERS = _adapters(Case)
