"""An analyst's labelled cases: CSV or Parquet with flat dotted columns (`travel.visa_type`) and a
label column. Every row is validated as a case record; a file with bad rows is refused whole,
with the rows and fields at fault, so nothing trains on half-read data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.case_input import parse_case
from engine.errors import CaseError, LindungError
from engine.frame import Frame, frame_from_cases

TRUE = {"1", "true", "yes", "y", "t", "non_procedural", "nonprocedural", "trafficking"}
FALSE = {"0", "false", "no", "n", "f", "procedural"}
SHOWN_PROBLEMS = 10


class DatasetError(LindungError):
    """A labelled data set that cannot be used, with the first problems found."""


def read_table(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV or Parquet file as dicts; blank cells are absent (unknown)."""
    import pandas as pd

    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    if path.suffix.lower() in {".parquet", ".pq"}:
        table = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    else:
        raise DatasetError(f"{path}: expected a .csv or .parquet file")
    records = table.to_dict(orient="records")
    return [{k: v for k, v in row.items() if not _blank(v)} for row in records]


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def read_labelled(path: Path, label: str) -> tuple[Frame, np.ndarray]:
    """The cases of `path` as columns, and their labels (True = non-procedural)."""
    rows = read_table(path)
    if not rows:
        raise DatasetError(f"{path}: no rows")
    cases, labels, problems = [], [], []
    for number, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        value = row.pop(label, None)
        try:
            labels.append(_label(value))
            cases.append(parse_case(row))
        except CaseError as error:
            problems += [f"row {number}: {problem}" for problem in error.problems]
        except ValueError as error:
            problems.append(f"row {number}: {label}: {error}")
    if problems:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = (
            f" (and {len(problems) - SHOWN_PROBLEMS} more)"
            if len(problems) > SHOWN_PROBLEMS
            else ""
        )
        raise DatasetError(f"{path}: {len(problems)} problem(s): {shown}{more}")
    return frame_from_cases(cases), np.array(labels, dtype=bool)


def _label(value: Any) -> bool:
    text = str(value).strip().lower() if value is not None else ""
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise ValueError(
        "the label is missing"
        if not text
        else f"{text!r} is not a label (expected true/false, 1/0, non_procedural/procedural)"
    )
