"""Case record v1 (`shared/case-v1.md`) as typed, immutable models.

Every field but `channel` may be absent or null, meaning "not known"; enumerations also accept
"unknown", read as null. Unknown fields are refused with the closest valid name.
"""

from __future__ import annotations

import numbers
import re
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

IDENTIFIER_FIELDS = frozenset(
    {"person.full_name", "person.nik", "person.passport_no", "links.escort_ref", "links.group_ref"}
)
AUDIT_ONLY_FIELDS = frozenset({"person.sex"})


MAX_AMOUNT = 1e15  # larger amounts are typing errors, and would not reach the engine intact
_PLACEHOLDERS = {"", "-", "--", "?", "unknown", "n/a", "na", "null", "none"}


def _unknown_is_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in {"unknown", ""}:
        return None
    return value


MAX_TEXT = 200  # characters in a free-text field: a name, an agency, a place, a reference
# Control characters other than tab and line breaks: no desk types them, and PostgreSQL refuses
# to store a NUL.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
_CONTROL = re.compile(CONTROL_CHARACTERS)


_OFF_LINE = re.compile(r"[\t\n\r\x80-\x9f\u2028\u2029]")  # and C1 controls (NEL is one)

# The same as JSON schema patterns (ECMA-262 reads these escapes as Python does), for
# /openapi.json: a client validating against it sends what the service accepts.
PLAIN_TEXT = f"^[^{CONTROL_CHARACTERS[1:-1]}]*$"
ONE_LINE = f"^[^{CONTROL_CHARACTERS[1:-1]}{_OFF_LINE.pattern[1:-1]}]*$"


def one_line(value: Any) -> Any:
    """Plain text on one line (a key's name, shown in lists and logs), or ValueError."""
    if isinstance(value, str) and _OFF_LINE.search(value):
        raise ValueError("must be one line, without tabs, line breaks or control characters")
    return plain_text(value)


def plain_text(value: Any) -> Any:
    """The value, unless it is text with a control character in it (then ValueError)."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValueError("contains a control character")
    return value


def _text(value: Any) -> Any:
    """Free text: blank and placeholders such as "-" or "unknown" mean not known."""
    if isinstance(value, str) and value.strip().lower() in _PLACEHOLDERS:
        return None
    return plain_text(value)


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a number, not true or false")
    return _blank_is_none(value)


def _country_code(value: Any) -> Any:
    value = _unknown_is_none(value)
    if isinstance(value, str):
        code = _folded(value).strip().upper()  # full-width letters (U+FF2B U+FF28) are KH
        if len(code) != 2 or not (code.isascii() and code.isalpha()):
            raise ValueError("expected an ISO 3166 alpha-2 country code such as MY or KH")
        return code
    return value


def _folded(text: str) -> str:
    """Text as a keyboard types it: full-width and other compatibility forms folded (NFKC)."""
    return unicodedata.normalize("NFKC", text)


def _country_list(value: Any) -> Any:
    if isinstance(value, str):  # flat (CSV) input: "KH;TH" or "KH,TH"
        value = [part for part in value.replace(";", ",").split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        return value
    codes = []
    for number, item in enumerate(value, start=1):
        try:
            code = _country_code(item)
        except ValueError as error:
            raise ValueError(f"item {number}: {error}") from None
        if code is not None:
            codes.append(code)
        elif item is not None and not isinstance(item, str):
            raise ValueError(f"item {number}: expected a country code")
    return None if value and not codes else codes  # ["unknown"] means not known


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _group(value: Any) -> Any:
    return {} if value is None else value  # a null group means nothing in it is known


@dataclass(frozen=True)
class _NullIsEmpty:
    """A group's marker: null is read as an empty group, and its JSON schema allows null."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(_group, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"anyOf": [handler(schema), {"type": "null"}]}


NullIsEmpty = _NullIsEmpty()


# How a date and a time are written (ISO 8601), in the words every problem with one uses.
DATE_FORM = "a date as YYYY-MM-DD, like 2026-12-07"
TIME_FORM = "an ISO 8601 date and time, like 2026-12-07T08:00:00+07:00"
_NUMERAL = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _not_a_number(form: str) -> BeforeValidator:
    """Refuses a number, or a numeral in text, where a date or a time is expected: pydantic
    would read it as seconds since 1970 (1765065600 as 2025-12-07), and "20261207" as such a
    count too, not as the day it spells. A desk or a table sends ISO 8601 (case-v1.md)."""

    def check(value: Any) -> Any:
        text = value.decode("latin-1") if isinstance(value, bytes | bytearray) else value
        number = isinstance(value, numbers.Number) and not isinstance(value, bool)
        if number or (isinstance(text, str) and _NUMERAL.fullmatch(text)):
            raise ValueError(f"expected {form}, not a number")
        return value

    return BeforeValidator(check)


def _in_range(low: date, high: date) -> Any:
    def check(value: Any) -> Any:
        day = value.date() if isinstance(value, datetime) else value
        if isinstance(day, date) and not low <= day < high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return AfterValidator(check)


Country = Annotated[str | None, BeforeValidator(_country_code)]


@dataclass(frozen=True)
class _Pattern:
    """A text's marker: its JSON schema refuses what its check refuses (a control character,
    for `plain_text`; a line break too, for `one_line`). Validation stays the check's, in its
    words."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {**handler(schema), "pattern": self.pattern}


Plain = _Pattern(PLAIN_TEXT)
OneLine = _Pattern(ONE_LINE)
_Bounded = Annotated[str, Field(max_length=MAX_TEXT), Plain]
Text = Annotated[_Bounded | None, BeforeValidator(_text)]
Flag = Annotated[bool | None, BeforeValidator(_blank_is_none)]
Amount = Annotated[
    Annotated[
        float,
        Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False),
        AfterValidator(lambda v: round(v, 2)),
    ]
    | None,
    BeforeValidator(_number),
]
Day = Annotated[
    date | None,
    _not_a_number(DATE_FORM),
    BeforeValidator(_blank_is_none),
    _in_range(date(1900, 1, 1), date(2100, 1, 1)),
]


@dataclass(frozen=True)
class _UnknownIsNull:
    """An enumeration's marker: "unknown" is read as null, and its JSON schema lists it, so that
    a client validating against /openapi.json sends what the service accepts."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_before_validator_function(_unknown_is_none, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        found = handler(schema)
        for option in found.get("anyOf", [found]):
            if "enum" in option:
                option["enum"] = [*option["enum"], "unknown"]
        return found


Unknown = _UnknownIsNull()  # enumerations read "unknown" as null
Channel = Literal["immigration_desk", "port_desk", "ltsa_counter", "batch"]
Sex = Annotated[Literal["F", "M"] | None, Unknown]
Education = Annotated[
    Literal["none", "primary", "junior_secondary", "senior_secondary", "tertiary"] | None, Unknown
]
ExitPointType = Annotated[
    Literal["airport", "ferry_terminal", "land_border", "unofficial"] | None, Unknown
]
Mode = Annotated[Literal["air", "sea", "land"] | None, Unknown]
Ticket = Annotated[Literal["return", "one_way", "none"] | None, Unknown]
TicketPaidBy = Annotated[Literal["self", "family", "employer", "agency", "sponsor"] | None, Unknown]
Purpose = Annotated[
    Literal[
        "work", "tourism", "religious", "family_visit", "study", "internship", "business", "other"
    ]
    | None,
    Unknown,
]
VisaType = Annotated[
    Literal[
        "work",
        "tourist",
        "visa_on_arrival",
        "visa_free",
        "umrah",
        "hajj",
        "ziarah",
        "student",
        "internship",
        "none",
    ]
    | None,
    Unknown,
]
Scheme = Annotated[Literal["p3mi", "g2g", "g2p", "self_placed", "spsk", "none"] | None, Unknown]
EmployerType = Annotated[Literal["legal_entity", "individual"] | None, Unknown]
Occupation = Annotated[
    Literal[
        "domestic_worker",
        "baby_carer",
        "elderly_carer",
        "child_carer",
        "cook",
        "family_driver",
        "gardener",
        "cleaner",
        "plantation_worker",
        "fishing_crew",
        "caregiver",
        "manufacturing",
        "construction",
        "hospitality",
        "nurse",
        "it_customer_service",
        "entertainment",
        "other",
    ]
    | None,
    Unknown,
]
RecruitmentChannel = Annotated[
    Literal[
        "ltsa", "licensed_agency", "individual_broker", "social_media", "family_friend", "other"
    ]
    | None,
    Unknown,
]
FeePayee = Annotated[Literal["agency", "individual", "boat_operator", "none"] | None, Unknown]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Person(_Part):
    full_name: Text = None
    nik: Text = None
    passport_no: Text = None
    birth_date: Day = None
    age: Annotated[Annotated[int, Field(ge=0, le=120)] | None, BeforeValidator(_number)] = None
    sex: Sex = None
    origin_province: Text = None
    education: Education = None
    prior_overseas_work: Flag = None
    prior_postponed_departure: Flag = None
    prior_deportation: Flag = None
    prior_trafficking_victim: Flag = None


class Travel(_Part):
    exit_point: Annotated[
        _Bounded | None,
        BeforeValidator(
            lambda v: plain_text(_folded(v).strip().upper()) if isinstance(v, str) else v
        ),
    ] = None
    exit_point_type: ExitPointType = None
    mode: Mode = None
    destination_country: Country = None
    transit_countries: Annotated[list[str] | None, BeforeValidator(_country_list)] = None
    ticket: Ticket = None
    ticket_paid_by: TicketPaidBy = None
    declared_purpose: Purpose = None
    visa_type: VisaType = None
    passport_issued_on: Day = None
    group_size: Annotated[
        Annotated[int, Field(ge=1, le=10_000)] | None, BeforeValidator(_number)
    ] = None
    escort_present: Flag = None
    documents_held_by_other: Flag = None


class Documents(_Part):
    work_contract: Flag = None
    placement_agreement: Flag = None
    medical_certificate: Flag = None
    competency_certificate: Flag = None
    family_consent: Flag = None
    bpjs: Flag = None
    opp_completed: Flag = None
    e_pmi_id: Flag = None


class Placement(_Part):
    scheme: Scheme = None
    agency_license_no: Text = None
    agency_name: Text = None
    job_order_no: Text = None
    employer_type: EmployerType = None
    occupation: Occupation = None
    offered_monthly_salary_usd: Amount = None
    documents: Annotated[Documents, NullIsEmpty] = Field(default_factory=Documents)


class Recruitment(_Part):
    channel: RecruitmentChannel = None
    fee_demanded_idr: Amount = None
    fee_paid_idr: Amount = None
    fee_payee: FeePayee = None
    debt_or_salary_deduction: Flag = None


class Interview(_Part):
    can_explain_trip: Flag = None
    reports_deception: Flag = None
    reports_coercion: Flag = None
    wants_to_go_home: Flag = None
    visible_injury: Flag = None
    restricted_communication: Flag = None


def _reference(value: Any) -> Any:
    """An escort's phone or ID: one with no letter or digit ("---", "( )") says nothing, and is
    not known (its separators dropped, every such one would be one escort)."""
    value = _text(value)
    if isinstance(value, str) and not any(character.isalnum() for character in value):
        return None
    return value


class Links(_Part):
    escort_ref: Annotated[_Bounded | None, BeforeValidator(_reference)] = None
    group_ref: Text = None


def _new_case_id() -> str:
    return uuid.uuid4().hex


def _case_id(value: Any) -> Any:
    """The client's reference, or a new one if it sent none or a blank one (a blank id would
    be every such traveller's, and link them all as one)."""
    value = _blank_is_none(value)
    return _new_case_id() if value is None else plain_text(value)


WIB = timezone(timedelta(hours=7), "WIB")  # Jakarta's time, no daylight saving


def _now() -> datetime:
    return datetime.now(WIB)


def _screened_at(value: Any) -> Any:
    return _now() if value is None or value == "" else value


def screening_day(at: datetime) -> date:
    """The date a case's ages and licences are judged on: the desk's own, by the offset its
    time came with (+07:00 WIB, +08:00 WITA, +09:00 WIT); a time in UTC (or without a zone,
    taken as UTC) is no desk's clock, and is judged on Jakarta's date, as the licence lookup's
    today is (from 17:00 UTC it is already tomorrow there)."""
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(WIB).date() if not aware.utcoffset() else aware.date()


# How far ahead of this machine's clock a screening time may be (the desk's clock runs fast).
# Further is a mistake, such as a local time sent without its zone: its referral's deadline
# would lie as far ahead, and the case would sort first among the newest.
CLOCK_SKEW = timedelta(minutes=15)


class Case(_Part):
    """One screening case: a traveller at a desk, or a candidate's placement file."""

    case_id: Annotated[
        str,
        BeforeValidator(_case_id, json_schema_input_type=str | None),
        Field(max_length=200),
        Plain,
    ] = Field(default_factory=_new_case_id)
    channel: Channel
    screened_at: Annotated[
        datetime,
        _not_a_number(TIME_FORM),
        BeforeValidator(_screened_at, json_schema_input_type=datetime | None),
        _in_range(date(2000, 1, 1), date(2100, 1, 1)),
    ] = Field(default_factory=_now)
    person: Annotated[Person, NullIsEmpty] = Field(default_factory=Person)
    travel: Annotated[Travel, NullIsEmpty] = Field(default_factory=Travel)
    placement: Annotated[Placement, NullIsEmpty] = Field(default_factory=Placement)
    recruitment: Annotated[Recruitment, NullIsEmpty] = Field(default_factory=Recruitment)
    interview: Annotated[Interview, NullIsEmpty] = Field(default_factory=Interview)
    links: Annotated[Links, NullIsEmpty] = Field(default_factory=Links)

    @model_validator(mode="after")
    def _dates_make_sense(self) -> Case:
        if self.screened_at.tzinfo is None:  # a time without a zone is taken as UTC
            object.__setattr__(self, "screened_at", self.screened_at.replace(tzinfo=UTC))
        if self.screened_at > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError(
                "screened_at: is in the future (a time without a zone is taken as UTC)"
            )
        born = self.person.birth_date
        if born is not None and born > screening_day(self.screened_at):
            raise ValueError("person.birth_date: is after the screening date")
        return self

    def value(self, path: str) -> Any:
        """The value at a dotted path (`travel.visa_type`), None when unknown."""
        node: Any = self
        for part in path.split("."):
            node = getattr(node, part)
            if node is None:
                return None
        return node


@dataclass(frozen=True)
class FieldSpec:
    """What one case field may hold, read off the models (the one source of truth)."""

    path: str
    kind: str  # bool | int | number | text | enum | date | datetime | country | countries
    values: tuple[str, ...] = ()


def _strip(annotation: Any) -> Any:
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _kind_of(annotation: Any) -> tuple[str, tuple[str, ...]]:
    annotation = _strip(annotation)
    if get_origin(annotation) in (Union, UnionType):
        annotation = _strip(next(a for a in get_args(annotation) if a is not type(None)))
    if get_origin(annotation) is Literal:
        return "enum", tuple(str(v) for v in get_args(annotation))
    if get_origin(annotation) is list:
        return "countries", ()
    kinds = {bool: "bool", int: "int", float: "number", date: "date", datetime: "datetime"}
    return kinds.get(annotation, "text"), ()


def _walk(model: type[BaseModel], prefix: str = "") -> Iterator[FieldSpec]:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _walk(annotation, f"{path}.")
            continue
        kind, values = _kind_of(annotation)
        if path == "travel.destination_country":
            kind = "country"
        yield FieldSpec(path, kind, values)


CASE_FIELDS: dict[str, FieldSpec] = {spec.path: spec for spec in _walk(Case)}
GROUPS = {path.rsplit(".", 1)[0] for path in CASE_FIELDS if "." in path}
