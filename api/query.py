"""Query parameters' types that pydantic alone reads too loosely: a date or a time must be
written as one, not as a number (pydantic takes `on=0` for Unix time, 1970-01-01)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

_STARTS_AS_A_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _written_as(example: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if isinstance(value, str) and not _STARTS_AS_A_DATE.match(value):
            raise PydanticCustomError(
                "date_format", "expected {example}, got {got}", {"example": example, "got": value}
            )
        return value

    return BeforeValidator(check)


Day = Annotated[date, _written_as("a date like 2026-12-07")]
Moment = Annotated[
    datetime, _written_as("a date like 2026-12-07 or a time like 2026-12-07T08:00:00+07:00")
]
