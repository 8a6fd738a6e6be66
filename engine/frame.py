"""Cases as columns: the one representation enrichment, rules, features and batch all read.

A frame maps each flat dotted case field (`travel.visa_type`) to a numpy array, one entry per case:
- enumerations, text, countries and yes/no fields: object arrays of str / bool, None = unknown;
- numbers and whole numbers: float64, NaN = unknown;
- dates: datetime64[D], NaT = unknown; `screened_at`: datetime64[s] in UTC;
- `travel.transit_countries`: object array of tuples, None = unknown;
- `screened_on`: datetime64[D], the calendar date at the desk (ages and licences are judged on it):
  `engine.case.screening_day`, Jakarta's date for a time in UTC.
Online screening builds a one-row frame, so a single case and a million cases take the same path.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd
from pandas.core.algorithms import isin

from engine.case import CASE_FIELDS, WIB, Case, screening_day

Frame = dict[str, np.ndarray]
SCREENED_ON = "screened_on"
_NONE = np.array(None, dtype=object)
OBJECT_KINDS = {"enum", "text", "country", "bool", "countries"}
NUMBER_KINDS = {"int", "number"}


FEW_ROWS = 64  # below this, a loop in Python costs less than a pandas call (about 25 us)

_GETTERS = {path: attrgetter(path) for path in CASE_FIELDS}


# fields held as plain objects: a few cases' of every one of them are one block of rows
_PLAIN_FIELDS = {
    path: number
    for number, path in enumerate(
        path for path, spec in CASE_FIELDS.items() if spec.kind in OBJECT_KINDS - {"countries"}
    )
}


def frame_from_cases(cases: Sequence[Case]) -> Frame:
    """The columns of validated cases."""
    plain = _plain_block(cases) if len(cases) <= FEW_ROWS else None
    frame: Frame = {
        path: plain[_PLAIN_FIELDS[path]]
        if plain is not None and path in _PLAIN_FIELDS
        else column_of([_GETTERS[path](case) for case in cases], spec.kind)
        for path, spec in CASE_FIELDS.items()
    }
    days = [screening_day(case.screened_at) for case in cases]
    frame[SCREENED_ON] = np.array(days, dtype="datetime64[D]")
    return frame


_WIB_OFFSET = np.timedelta64(int(WIB.utcoffset(None).total_seconds()), "s")


def screening_days(utc: np.ndarray, local_days: np.ndarray, in_utc: np.ndarray) -> np.ndarray:
    """`screening_day` for a column: the local date at the desk, but Jakarta's where the time
    was given in UTC or without a zone (`in_utc`); `utc` is datetime64[s] in UTC."""
    wib_days = (utc + _WIB_OFFSET).astype("datetime64[D]")
    return np.where(in_utc, wib_days, local_days.astype("datetime64[D]"))


def _plain_block(cases: Sequence[Case]) -> np.ndarray:
    """A desk's few cases: their forty-odd plain fields in one array, a row each, not an
    array each."""
    block = np.empty((len(_PLAIN_FIELDS), len(cases)), dtype=object)
    for index, case in enumerate(cases):  # a case's fields in one assignment, not one each
        block[:, index] = [get(case) for get in _PLAIN_GETTERS]
    return block


_PLAIN_GETTERS = [_GETTERS[path] for path in _PLAIN_FIELDS]  # plain values: never sequences


def column_of(values: Sequence[Any], kind: str) -> np.ndarray:
    """One column from Python values (None = unknown), in the frame's conventions."""
    if kind in NUMBER_KINDS:
        return np.array([np.nan if v is None else v for v in values], dtype=float)
    if kind == "date":
        return np.array(values, dtype="datetime64[D]")
    if kind == "datetime":
        utc = [None if v is None else v.astimezone(UTC).replace(tzinfo=None) for v in values]
        return np.array(utc, dtype="datetime64[s]")
    column = np.empty(len(values), dtype=object)
    if kind == "countries":
        column[:] = [None if v is None else tuple(v) for v in values]
    else:
        column[:] = values
    return column


def unknown_column(count: int, kind: str) -> np.ndarray:
    """A column of `count` unknowns, in the frame's conventions."""
    if kind in NUMBER_KINDS:
        return np.full(count, np.nan)
    if kind in {"date", "datetime"}:
        return np.full(
            count,
            np.datetime64("NaT"),
            dtype="datetime64[D]" if kind == "date" else "datetime64[s]",
        )
    return np.full(count, None, dtype=object)


def absent_column(count: int, kind: str) -> np.ndarray:
    """The column of a field a table lacks: `count` unknowns, read-only, and known from the
    start to hold nothing (chunks of one size share it, as a case file lacks the same fields
    in every chunk)."""
    shared = _ABSENT.get((count, kind))
    if shared is not None:
        return shared
    column = unknown_column(count, kind)
    memo = _memo(column) if column.dtype == object else None
    if memo is not None:  # a large column: its memo says what a scan would find
        memo.known = _read_only(np.zeros(count, dtype=bool))
        memo.codes = (_read_only(np.full(count, -1, dtype=np.int64)), _read_only(_NO_VALUES))
    if len(_ABSENT) >= 64:  # nine kinds, chunks of a few sizes (the last one is shorter)
        _ABSENT.clear()
    _ABSENT[(count, kind)] = _read_only(column)
    return column


_ABSENT: dict[tuple[int, str], np.ndarray] = {}  # by rows and kind
_NO_VALUES = np.empty(0, dtype=object)


def member(column: np.ndarray, values: Collection[Any]) -> np.ndarray:
    """Where an object column holds one of `values` (unknown is never a member)."""
    if len(column) <= FEW_ROWS:  # a desk's case: a set costs less than building a hash table
        chosen = set(values)
        return np.fromiter((value in chosen for value in column), bool, len(column))
    allowed = np.empty(len(values), dtype=object)
    allowed[:] = list(values)
    return per_value(column, lambda distinct: np.asarray(isin(distinct, allowed), dtype=bool))


def equals(column: np.ndarray, value: Any) -> np.ndarray:
    """Where a column holds `value` (unknown never does)."""
    return compared(column, operator.eq, value)


def compared(column: np.ndarray, op: Callable[[Any, Any], Any], value: Any) -> np.ndarray:
    """`op(row, value)` for every row; a large object column compares each distinct value once
    (unknown rows: False)."""
    if column.dtype == object and len(column) > FEW_ROWS:
        return per_value(column, lambda distinct: np.array([op(v, value) for v in distinct], bool))
    with np.errstate(invalid="ignore"):
        return np.asarray(op(column, value), dtype=bool)


def per_value(column: np.ndarray, test: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """`test` over the distinct known values of an object column, spread to its rows (False
    where unknown): a column of a million rows holds a few dozen values."""
    codes, distinct = value_codes(column)
    spread: np.ndarray = np.append(test(distinct), False)[codes]
    return spread


@dataclass
class _Memo:
    """What is known of one large object column, found once: rules, features and reasons all
    ask the same columns the same questions."""

    known: np.ndarray | None = None
    codes: tuple[np.ndarray, np.ndarray] | None = None


_MEMOS: dict[int, _Memo] = {}


def _memo(column: np.ndarray) -> _Memo | None:
    """The memo of a column, begun on first use; None for a small column or a view.

    A column with a memo is made read-only, so that nothing can change it under its memo; the
    memo is forgotten with the column."""
    key = id(column)
    memo = _MEMOS.get(key)
    if memo is None and len(column) > FEW_ROWS and column.flags.owndata:
        column.flags.writeable = False
        memo = _MEMOS[key] = _Memo()
        weakref.finalize(column, _MEMOS.pop, key, None)
    return memo


def value_codes(column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct known values of an object column and the index of each row's (-1 where
    unknown)."""
    memo = _memo(column)
    if memo is not None and memo.codes is not None:
        return memo.codes
    codes, distinct = pd.factorize(column, use_na_sentinel=True)
    found = (_read_only(np.asarray(codes)), _read_only(np.asarray(distinct, dtype=object)))
    if memo is not None:
        memo.codes = found
    return found


_VALUES: dict[tuple[Any, ...], np.ndarray] = {}


def column_from_codes(codes: np.ndarray, distinct: Sequence[Any]) -> np.ndarray:
    """The object column whose rows hold `distinct[code]` (None where the code is -1), with its
    codes remembered as `value_codes` would find them."""
    values = _VALUES.get(distinct) if isinstance(distinct, tuple) else None
    if values is None:
        values = np.empty(len(distinct) + 1, dtype=object)
        values[:-1] = list(distinct)
        if isinstance(distinct, tuple):  # yes/no columns: the same few values every time
            _VALUES[distinct] = _read_only(values)
    if len(values) <= 3 and len(codes) > FEW_ROWS:  # yes/no, fired: a row's value by mask
        column: np.ndarray = np.empty(len(codes), dtype=object)  # None throughout
        for code, value in enumerate(values[:-1].tolist()):
            column[codes == code] = value
    else:
        column = values[codes]
    memo = _memo(column) if len(column) > FEW_ROWS else None
    if memo is not None:
        # the codes are kept as given, read-only from now on, when they are whole int64 rows
        own = codes.dtype == np.int64 and codes.flags.owndata
        kept = codes if own else np.array(codes, dtype=np.int64)
        memo.codes = (_read_only(kept), _read_only(values[:-1]))
    return column


def _read_only(array: np.ndarray) -> np.ndarray:
    """An array that a memo hands out: whoever holds it cannot change it for the others."""
    array.flags.writeable = False
    return array


def distinct_rows(
    columns: Sequence[np.ndarray], among: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The distinct combinations of values across columns of equal length (of the rows `among`
    only, if given): the first row of each, as a position among them, and which one each row
    has. Unknowns (None, NaN, NaT) are values like any other."""
    if among is None:
        among = np.arange(len(columns[0]) if len(columns) else 0)
    codes = np.zeros(len(among), dtype=np.int64)
    for column in columns:
        if column.dtype == object:
            column_codes, size = _object_codes(column, among)
        else:
            column_codes, uniques = pd.factorize(column[among], use_na_sentinel=False)
            size = len(uniques)
        codes, _ = pd.factorize(codes * size + column_codes)  # dense again: no overflow
    return first_rows(codes), np.asarray(codes, dtype=np.int64)


def first_rows(codes: np.ndarray) -> np.ndarray:
    """For codes numbered in order of first appearance (as pd.factorize gives them), the first
    row holding each: where a code exceeds every code before it. No sort: a hash already
    found the repeats."""
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    before = np.maximum.accumulate(np.concatenate(([-1], codes[:-1])))
    return np.flatnonzero(codes > before)


def _object_codes(column: np.ndarray, among: np.ndarray) -> tuple[np.ndarray, int]:
    """Codes of some rows of an object column (unknown: a code of its own), and how many codes
    there are: from the column's memo when it has one, which every rule shares."""
    if len(column) > FEW_ROWS and _memo(column) is not None:
        codes, distinct = value_codes(column)
        codes = codes[among]
    else:
        codes, distinct = pd.factorize(column[among], use_na_sentinel=True)
    return np.where(codes < 0, len(distinct), codes), len(distinct) + 1


def rows(frame: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(frame.values()))) if frame else 0


def known(column: np.ndarray) -> np.ndarray:
    """Where a column holds a value (not None, NaN or NaT)."""
    if column.dtype == object:
        memo = _memo(column) if len(column) > FEW_ROWS else None
        if memo is None:
            return np.asarray(np.not_equal(column, _NONE), dtype=bool)
        if memo.known is None:
            memo.known = _read_only(
                memo.codes[0] >= 0
                if memo.codes is not None
                else np.asarray(np.not_equal(column, _NONE), dtype=bool)
            )
        return memo.known
    if column.dtype.kind in "mM":
        return np.asarray(~np.isnat(column), dtype=bool)
    return np.asarray(~np.isnan(column), dtype=bool)


def row_values(frame: Mapping[str, np.ndarray], row: int) -> dict[str, Any]:
    """The known values of one row, as plain Python values (for per-case consumers)."""
    values: dict[str, Any] = {}
    for name, column in frame.items():
        value = column[row]
        if value is None:
            continue
        if isinstance(value, np.floating):
            if np.isnan(value):
                continue
            number = float(value)
            values[name] = int(number) if number.is_integer() and abs(number) < 2**53 else number
        elif isinstance(value, np.datetime64):
            if np.isnat(value):
                continue
            values[name] = _plain_time(value)
        elif isinstance(value, np.bool_):
            values[name] = bool(value)
        else:
            values[name] = value
    return values


def _plain_time(value: np.datetime64) -> date | datetime:
    if value.dtype == np.dtype("datetime64[D]"):
        return date.fromisoformat(str(value))
    return datetime.fromisoformat(str(value.astype("datetime64[s]"))).replace(tzinfo=UTC)
