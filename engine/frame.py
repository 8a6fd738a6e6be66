"""Cases as columns: the one representation enrichment, rules, features and batch all read.

A frame maps each flat dotted case field (`travel.visa_type`) to a numpy array, one entry per case:
- enumerations, text, countries and yes/no fields: object arrays of str / bool, None = unknown;
- numbers and whole numbers: float64, NaN = unknown;
- dates: datetime64[D], NaT = unknown; `screened_at`: datetime64[s] in UTC;
- `travel.transit_countries`: object array of tuples, None = unknown;
- `screened_on`: datetime64[D], the calendar date at the desk (ages and licences are judged on it).
Online screening builds a one-row frame, so a single case and a million cases take the same path.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any

import numpy as np
import pandas as pd
from pandas.core.algorithms import isin

from engine.case import CASE_FIELDS, Case

Frame = dict[str, np.ndarray]
SCREENED_ON = "screened_on"
_NONE = np.array(None, dtype=object)
OBJECT_KINDS = {"enum", "text", "country", "bool", "countries"}
NUMBER_KINDS = {"int", "number"}


FEW_ROWS = 64  # below this, a loop in Python costs less than a pandas call (about 25 us)

_GETTERS = {path: attrgetter(path) for path in CASE_FIELDS}


def frame_from_cases(cases: Sequence[Case]) -> Frame:
    """The columns of validated cases."""
    frame: Frame = {
        path: column_of([_GETTERS[path](case) for case in cases], spec.kind)
        for path, spec in CASE_FIELDS.items()
    }
    local_days = [case.screened_at.date() for case in cases]
    frame[SCREENED_ON] = np.array(local_days, dtype="datetime64[D]")
    return frame


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


def member(column: np.ndarray, values: Collection[Any]) -> np.ndarray:
    """Where an object column holds one of `values` (unknown is never a member)."""
    if len(column) <= FEW_ROWS:  # a desk's case: a set costs less than building a hash table
        chosen = set(values)
        return np.fromiter((value in chosen for value in column), bool, len(column))
    allowed = np.empty(len(values), dtype=object)
    allowed[:] = list(values)
    return np.asarray(isin(column, allowed), dtype=bool)  # a hash table, not a loop in Python


def distinct_rows(columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct combinations of values across columns of equal length: the first row of
    each, and which one each row has. Unknowns (None, NaN, NaT) are values like any other."""
    count = len(columns[0]) if len(columns) else 0
    codes = np.zeros(count, dtype=np.int64)
    for column in columns:
        column_codes, uniques = pd.factorize(column, use_na_sentinel=False)
        codes, _ = pd.factorize(codes * len(uniques) + column_codes)  # dense again: no overflow
    _, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def rows(frame: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(frame.values()))) if frame else 0


def known(column: np.ndarray) -> np.ndarray:
    """Where a column holds a value (not None, NaN or NaT)."""
    if column.dtype == object:
        return np.asarray(np.not_equal(column, _NONE), dtype=bool)
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
