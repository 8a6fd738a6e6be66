"""Case record v1 (`shared/case-v1.md`) as typed, immutable models.

Every field but `channel` may be absent or null, meaning "not known"; enumerations also accept
"unknown", read as null. Unknown fields are refused with the closest valid name.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from engine.errors import CaseError, FieldProblem

IDENTIFIER_FIELDS = frozenset(
    {"person.full_name", "person.nik", "person.passport_no", "links.escort_ref", "links.group_ref"}
)
AUDIT_ONLY_FIELDS = frozenset({"person.sex"})


def _unknown_is_none(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in {"unknown", ""}:
        return None
    return value


def _country_code(value: Any) -> Any:
    value = _unknown_is_none(value)
    if isinstance(value, str):
        code = value.strip().upper()
        if len(code) != 2 or not code.isalpha():
            raise ValueError("expected an ISO 3166 alpha-2 country code such as MY or KH")
        return code
    return value


def _country_list(value: Any) -> Any:
    if isinstance(value, str):  # flat (CSV) input: "KH;TH" or "KH,TH"
        value = [part for part in value.replace(";", ",").split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [_country_code(item) for item in value]
    return value


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


Country = Annotated[str | None, BeforeValidator(_country_code)]
Text = Annotated[str | None, BeforeValidator(_blank_is_none)]
Flag = Annotated[bool | None, BeforeValidator(_blank_is_none)]
Amount = Annotated[Annotated[float, Field(ge=0)] | None, BeforeValidator(_blank_is_none)]

Unknown = BeforeValidator(_unknown_is_none)  # enumerations read "unknown" as null
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
    birth_date: Annotated[date | None, BeforeValidator(_blank_is_none)] = None
    age: Annotated[Annotated[int, Field(ge=0, le=120)] | None, BeforeValidator(_blank_is_none)] = (
        None
    )
    sex: Sex = None
    origin_province: Text = None
    education: Education = None
    prior_overseas_work: Flag = None
    prior_postponed_departure: Flag = None
    prior_deportation: Flag = None
    prior_trafficking_victim: Flag = None


class Travel(_Part):
    exit_point: Annotated[
        str | None, BeforeValidator(lambda v: v.strip().upper() if isinstance(v, str) else v)
    ] = None
    exit_point_type: ExitPointType = None
    mode: Mode = None
    destination_country: Country = None
    transit_countries: Annotated[list[str] | None, BeforeValidator(_country_list)] = None
    ticket: Ticket = None
    ticket_paid_by: TicketPaidBy = None
    declared_purpose: Purpose = None
    visa_type: VisaType = None
    passport_issued_on: Annotated[date | None, BeforeValidator(_blank_is_none)] = None
    group_size: Annotated[Annotated[int, Field(ge=1)] | None, BeforeValidator(_blank_is_none)] = (
        None
    )
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
    documents: Documents = Field(default_factory=Documents)


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


class Links(_Part):
    escort_ref: Text = None
    group_ref: Text = None


def _new_case_id() -> str:
    return uuid.uuid4().hex


class Case(_Part):
    """One screening case: a traveller at a desk, or a candidate's placement file."""

    case_id: Annotated[str, BeforeValidator(lambda v: v or _new_case_id())] = Field(
        default_factory=_new_case_id
    )
    channel: Channel
    screened_at: Annotated[datetime, BeforeValidator(lambda v: v or datetime.now(UTC))] = Field(
        default_factory=lambda: datetime.now(UTC)
    )
    person: Person = Field(default_factory=Person)
    travel: Travel = Field(default_factory=Travel)
    placement: Placement = Field(default_factory=Placement)
    recruitment: Recruitment = Field(default_factory=Recruitment)
    interview: Interview = Field(default_factory=Interview)
    links: Links = Field(default_factory=Links)

    @model_validator(mode="after")
    def _dates_make_sense(self) -> Case:
        if self.screened_at.tzinfo is None:
            object.__setattr__(self, "screened_at", _utc(self.screened_at))
        born = self.person.birth_date
        if born is not None and born > self.screened_at.date():
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
_GROUPS = {path.rsplit(".", 1)[0] for path in CASE_FIELDS if "." in path}


def parse_case(data: Mapping[str, Any]) -> Case:
    """Validate one case record (nested, or flat with dotted keys); raise CaseError on any fault."""
    if not isinstance(data, Mapping):
        raise CaseError([FieldProblem("(case)", "expected a JSON object")])
    nested = unflatten(data)
    try:
        return Case.model_validate(nested)
    except ValidationError as error:
        raise CaseError(_problems(error, nested)) from None


def unflatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Turn flat dotted keys (`travel.visa_type`) into nested objects; nested input passes."""
    if not any("." in key for key in data):
        return dict(data)
    nested: dict[str, Any] = {}
    for key, value in data.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return nested


def _problems(error: ValidationError, data: Mapping[str, Any]) -> list[FieldProblem]:
    problems = []
    for item in error.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"] if not isinstance(part, int))
        path = path or "(case)"
        problems.append(FieldProblem(*_describe(path, item)))
    return problems


def _describe(path: str, item: Mapping[str, Any]) -> tuple[str, str]:
    kind = item["type"]
    spec = CASE_FIELDS.get(path)
    shown = "" if path in IDENTIFIER_FIELDS else f" {_show(item.get('input'))}"
    if kind == "extra_forbidden":
        return path, _unknown_field(path)
    if kind == "missing":
        return path, "is required"
    if kind == "literal_error" and spec is not None:
        allowed = ", ".join(spec.values)
        hint = _closest(str(item.get("input")), spec.values)
        unknown = "" if path == "channel" else ", or unknown"
        return path, f"{shown.strip()} is not allowed; expected one of {allowed}{unknown}" + (
            f" (did you mean {hint}?)" if hint else ""
        )
    if kind == "model_type" or kind == "model_attributes_type":
        return path, "expected an object"
    if kind.startswith("bool"):
        return path, f"expected true or false, got{shown}"
    if kind.startswith("int"):
        return path, f"expected a whole number, got{shown}"
    if kind.startswith("float"):
        return path, f"expected a number, got{shown}"
    if kind in {"greater_than_equal", "less_than_equal"}:
        bound = item.get("ctx", {}).get("ge", item.get("ctx", {}).get("le"))
        word = "at least" if kind == "greater_than_equal" else "at most"
        return path, f"must be {word} {bound}, got{shown}"
    if kind.startswith("date") and spec is not None and spec.kind == "date":
        return path, f"expected a date as YYYY-MM-DD, got{shown}"
    if kind.startswith("datetime"):
        return path, f"expected an ISO 8601 date and time, got{shown}"
    if kind == "list_type":
        return path, "expected a list of country codes"
    if kind in {"value_error", "assertion_error"}:
        message = str(item.get("ctx", {}).get("error", item.get("msg", "")))
        if ": " in message and message.split(": ", 1)[0] in CASE_FIELDS:
            return message.split(": ", 1)[0], message.split(": ", 1)[1]
        return path, message
    if kind.startswith("string"):
        return path, "expected text"
    return path, str(item.get("msg", "is not valid"))


def _unknown_field(path: str) -> str:
    candidates = list(CASE_FIELDS) + sorted(_GROUPS)
    hint = _closest(path, candidates)
    return "unknown field" + (f", did you mean {hint}?" if hint else "")


def _closest(word: str, candidates: tuple[str, ...] | list[str]) -> str:
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else ""


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
