"""Reading a case record from input: nested JSON, flat dotted columns, or a mix of both.

Every problem is reported with the field's dotted path and what is wrong, in words a desk
officer or an integrator can act on. Values that may be identifiers are never echoed.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from engine.case import CASE_FIELDS, DATE_FORM, GROUPS, IDENTIFIER_FIELDS, TIME_FORM, Case
from engine.errors import CaseError, FieldProblem

_MANY_DIGITS = re.compile(r"\d{6}")
_ECHOED = re.compile(r"[a-z0-9_.:+\-]{1,30}")  # see _got
MOST_PROBLEMS = 50  # listed for one case (a case has about 150 fields)


def parse_case(data: Mapping[str, Any], most: int = MOST_PROBLEMS) -> Case:
    """Validate one case record (nested, or flat with dotted keys); raise CaseError on any fault,
    naming the first `most` problems and counting the rest."""
    if not isinstance(data, Mapping):
        raise CaseError([FieldProblem("(case)", "expected a JSON object")])
    nested = unflatten(data)
    try:
        return Case.model_validate(nested)
    except ValidationError as error:
        raise CaseError(_problems(error, most)) from None


def record_schema(ref_template: str = "#/$defs/{model}") -> dict[str, Any]:
    """The JSON schema of what `parse_case` accepts: the case record, nested or with flat dotted
    keys at the top level (`travel.visa_type`, `placement.documents.bpjs`, `placement.documents`).
    A field given both ways is refused, which the schema cannot say."""
    schema = Case.model_json_schema(ref_template=ref_template)
    schema["patternProperties"] = _dotted("", schema["properties"], schema.get("$defs", {}))
    schema["description"] = (
        f"{schema.get('description', '')} Its fields may also be sent flat at the top level, "
        "nested names joined with a dot as in a table's columns (`travel.visa_type`); a field "
        'sent both ways is refused. Any field but channel may be null or absent; "unknown" in '
        "an enumeration is read as null."
    ).strip()
    return schema


def _dotted(prefix: str, properties: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    """Each field inside a group, by its dotted name as a pattern (`^travel\\.visa_type$`)."""
    found: dict[str, Any] = {}
    for name, field in properties.items():
        if prefix:
            found[f"^{re.escape(prefix + name)}$"] = field
        for option in field.get("anyOf", [field]):  # a group: {"$ref": ...} or null
            if "$ref" in option:
                group = defs[option["$ref"].rsplit("/", 1)[-1]]
                found |= _dotted(f"{prefix}{name}.", group["properties"], defs)
    return found


def _problems(error: ValidationError, most: int) -> list[FieldProblem]:
    """The first `most` problems in words and the rest counted: a case of thousands of unknown
    fields is refused about as fast as one (naming each, with a hint, costs)."""
    items = error.errors(include_url=False)
    problems = [FieldProblem(*_describe(dict(item))) for item in items[:most]]
    if len(items) > most:
        more = len(items) - most
        problems.append(FieldProblem("(case)", f"{more:,} more problems, not listed"))
    return problems


def unflatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """Nested objects from flat dotted keys (`travel.visa_type`); nested input passes as it is.

    A field given twice (as a dotted key and inside an object) is refused, not overwritten.
    The input is never changed.
    """
    if not any("." in str(key) for key in data):
        return dict(data)
    nested: dict[str, Any] = {}
    for key, value in data.items():
        parts = str(key).split(".")
        if not all(parts):
            raise CaseError([FieldProblem(str(key), "is not a field path (empty part)")])
        node = nested
        for depth, part in enumerate(parts[:-1], start=1):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise CaseError([FieldProblem(".".join(parts[:depth]), "expected an object")])
            node = child
        _put(node, parts[-1], value, str(key))
    return nested


def _put(node: dict[str, Any], name: str, value: Any, path: str) -> None:
    existing = node.get(name)
    if isinstance(value, Mapping):
        if existing is not None and not isinstance(existing, dict):
            raise CaseError([FieldProblem(path, "given twice (as a value and as an object)")])
        if existing is None:  # absent, or a null another key gave: the object says more
            existing = node[name] = {}
        for key, inner in value.items():
            _put(existing, str(key), copy.deepcopy(inner), f"{path}.{key}")
    elif value is None:
        node.setdefault(name, None)  # a null never overrides what another key gave
    elif existing is None:
        node[name] = value
    else:
        raise CaseError([FieldProblem(path, "given twice (as a dotted key and in an object)")])


def _describe(item: Mapping[str, Any]) -> tuple[str, str]:
    path = ".".join(str(part) for part in item["loc"] if not isinstance(part, int)) or "(case)"
    kind = str(item["type"])
    spec = CASE_FIELDS.get(path)
    got = "" if path in IDENTIFIER_FIELDS else _got(item.get("input"))
    if kind == "extra_forbidden":
        return path, _unknown_field(path, item.get("input"))
    if kind == "missing":
        return path, "is required"
    if kind == "literal_error" and spec is not None:
        unknown = "" if path == "channel" else ", or unknown"
        hint = _closest(str(item.get("input")), spec.values)
        return path, (
            f"{got.removeprefix(', got ') or 'the value'} is not allowed; expected one of "
            f"{', '.join(spec.values)}{unknown}" + (f" (did you mean {hint}?)" if hint else "")
        )
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return path, "expected an object"
    if kind.startswith("bool"):
        return path, f"expected true or false{got}"
    if kind.startswith("int"):
        return path, f"expected a whole number{got}"
    if kind.startswith("float") or kind == "finite_number":
        return path, f"expected a finite number{got}"
    if kind in {"greater_than_equal", "less_than_equal"}:
        context = item.get("ctx", {})
        word, bound = (
            ("at least", context.get("ge")) if "ge" in context else ("at most", context.get("le"))
        )
        return path, f"must be {word} {_plain_number(bound)}{got}"
    if kind in {"string_too_long", "too_long"}:
        return path, f"is too long (at most {item.get('ctx', {}).get('max_length')} characters)"
    if kind.startswith("date") and spec is not None and spec.kind == "date":
        return path, f"expected {DATE_FORM}{got}"
    if kind.startswith("datetime"):
        return path, f"expected {TIME_FORM}{got}"
    if kind == "list_type":
        return path, "expected a list of country codes"
    if kind in {"value_error", "assertion_error"}:
        message = str(item.get("ctx", {}).get("error", item.get("msg", "")))
        field, _, rest = message.partition(": ")
        return (field, rest) if field in CASE_FIELDS else (path, message)
    if kind.startswith("string"):
        return path, "expected text"
    return path, str(item.get("msg", "is not valid"))


_KNOWN = [*CASE_FIELDS, *sorted(GROUPS)]


def _own_name(path: str) -> str:
    return path.rsplit(".", 1)[-1]


_BY_NAME = {name: [p for p in _KNOWN if _own_name(p) == name] for name in map(_own_name, _KNOWN)}


# Other names a desk's form or spreadsheet gives a field, in English and Bahasa Indonesia, that
# spelling alone would not lead to (name is closest to age, gender to age). None: the record has
# no such field, and the closest name would mislead (nationality is not education).
_OTHER_NAMES: dict[str, str | None] = {
    "name": "person.full_name",
    "nama": "person.full_name",
    "nama_lengkap": "person.full_name",
    "gender": "person.sex",
    "jenis_kelamin": "person.sex",
    "umur": "person.age",
    "usia": "person.age",
    "dob": "person.birth_date",
    "date_of_birth": "person.birth_date",
    "tanggal_lahir": "person.birth_date",
    "tgl_lahir": "person.birth_date",
    "passport": "person.passport_no",
    "passport_number": "person.passport_no",
    "paspor": "person.passport_no",
    "no_paspor": "person.passport_no",
    "nomor_paspor": "person.passport_no",
    "destination": "travel.destination_country",
    "tujuan": "travel.destination_country",
    "negara_tujuan": "travel.destination_country",
    "nationality": None,
    "kewarganegaraan": None,
    "phone": None,  # the traveller's, or an escort's (links.escort_ref)? not for a guess
}
# A name alone or in person is the traveller's; in another group it is its group's own field
# (placement.name: placement.agency_name) or, where the group has none, nobody's to guess.
_PERSON_ONLY = {"name", "nama", "nama_lengkap"}


def _unknown_field(path: str, given: Any = None) -> str:
    """The words for an unknown field, with the field meant: first one of the same name in
    another group (`age`, `travel.age`: person.age); then the one field of its group whose name
    ends in it (`placement.name`: placement.agency_name); then one a desk calls otherwise
    (`nama`, `person.gender`: person.sex); for a group of its own making, a field its name and
    a key inside it make (`agency.name`: placement.agency_name); else the closest path
    (`travel.visa_typ`)."""
    group, _, name = path.rpartition(".")
    key = _key(name)
    named = _BY_NAME.get(key, [])
    hint = difflib.get_close_matches(path, named, n=1, cutoff=0)[0] if named else ""
    if not hint:
        ending = [p for p in _KNOWN if p.rpartition(".")[0] == group and p.endswith(f"_{key}")]
        hint = ending[0] if len(ending) == 1 else ""
    if not hint and key in _OTHER_NAMES:
        meant = _OTHER_NAMES[key]
        if meant is None:
            return "unknown field"
        if key in _PERSON_ONLY and group not in {"", "person"}:
            return "unknown field"  # travel.name: whose? not the mode of travel
        hint = meant
    if not hint and isinstance(given, Mapping):
        joined = (_BY_NAME.get(f"{key}_{_key(str(inner))}", []) for inner in given)
        hint = next((found[0] for found in joined if len(found) == 1), "")
    hint = hint or _closest(path, _KNOWN)
    return "unknown field" + (f", did you mean {hint}?" if hint else "")


def _key(name: str) -> str:
    """A field's name as a desk's form may write it, in the record's spelling."""
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def _closest(word: str, candidates: tuple[str, ...] | list[str]) -> str:
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return found[0] if found else ""


def _got(value: Any) -> str:
    """', got <value>' for a short value that cannot be an identifier; otherwise nothing.

    Only what reads like a mistyped code is echoed: a word in lower case, a number or a date
    ('tourst', -4, '2021-13-01'). A name, NIK, passport or phone number in the wrong column
    (a row shifted by a stray comma) is never echoed: messages are logged and stored, as a
    rescore job's error or a rejects file."""
    if isinstance(value, dict | list) or value is None:
        return ""
    text = str(value)
    if _MANY_DIGITS.search(text) or not _ECHOED.fullmatch(text):
        return ""
    return f", got {repr(value) if isinstance(value, str) else text}"


def _plain_number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    return str(value)
