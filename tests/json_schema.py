"""A small JSON Schema validator, for the keywords Lindung's published schemas use.

jsonschema is not among the dependencies. A keyword this does not know is an error, not skipped,
so a schema cannot pass for one that does not check what it says; `format` is an annotation only,
as in jsonschema's default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_ANNOTATIONS = {"title", "description", "default", "format", "examples"}
_TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def problems(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> list[str]:
    """Where `value` breaks `schema` (refs resolved in `root`), as `path: what`; [] if it fits."""
    return _check(value, schema, root, "$")


def _check(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any], at: str) -> list[str]:
    unknown = set(schema) - _ANNOTATIONS - set(_KEYWORDS)
    if unknown:
        raise ValueError(f"{at}: keywords this validator does not know: {sorted(unknown)}")
    found: list[str] = []
    for keyword, rule in schema.items():
        if keyword in _KEYWORDS:
            found += _KEYWORDS[keyword](value, rule, schema, root, at)
    return found


def _ref(value: Any, ref: str, _: Any, root: Mapping[str, Any], at: str) -> list[str]:
    target: Any = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return _check(value, target, root, at)


def _any_of(value: Any, options: list[Any], _: Any, root: Mapping[str, Any], at: str) -> list[str]:
    tried = [_check(value, option, root, at) for option in options]
    return [] if any(not found for found in tried) else [f"{at}: fits none of {len(options)}"]


def _type(value: Any, name: str, _: Any, __: Any, at: str) -> list[str]:
    if name in {"integer", "number"}:
        fits = isinstance(value, int | float) and not isinstance(value, bool)
        fits = fits and (name == "number" or float(value).is_integer())
    else:
        fits = isinstance(value, _TYPES[name])
    return [] if fits else [f"{at}: expected {name}"]


def _enum(value: Any, allowed: list[Any], _: Any, __: Any, at: str) -> list[str]:
    return [] if value in allowed else [f"{at}: {value!r} not in {allowed}"]


def _bound(check: Any, word: str) -> Any:
    def bound(value: Any, limit: Any, _: Any, __: Any, at: str) -> list[str]:
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if number and not check(value, limit):
            return [f"{at}: {word} {limit}"]
        return []

    return bound


def _max_length(value: Any, most: int, _: Any, __: Any, at: str) -> list[str]:
    return [f"{at}: longer than {most}"] if isinstance(value, str) and len(value) > most else []


def _pattern(value: Any, pattern: str, _: Any, __: Any, at: str) -> list[str]:
    if isinstance(value, str) and not re.search(pattern, value):
        return [f"{at}: does not match {pattern}"]
    return []


def _min_length(value: Any, least: int, _: Any, __: Any, at: str) -> list[str]:
    return [f"{at}: shorter than {least}"] if isinstance(value, str) and len(value) < least else []


def _min_items(value: Any, least: int, _: Any, __: Any, at: str) -> list[str]:
    return [f"{at}: under {least} items"] if isinstance(value, list) and len(value) < least else []


def _not(
    value: Any, schema: Mapping[str, Any], _: Any, root: Mapping[str, Any], at: str
) -> list[str]:
    return [f"{at}: matches what it must not"] if not _check(value, schema, root, at) else []


def _all_of(
    value: Any, options: list[Mapping[str, Any]], _: Any, root: Mapping[str, Any], at: str
) -> list[str]:
    return [p for option in options for p in _check(value, option, root, at)]


def _max_items(value: Any, most: int, _: Any, __: Any, at: str) -> list[str]:
    return [f"{at}: over {most} items"] if isinstance(value, list) and len(value) > most else []


def _required(value: Any, names: list[str], _: Any, __: Any, at: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    return [f"{at}.{name}: required" for name in names if name not in value]


def _items(
    value: Any, item: Mapping[str, Any], _: Any, root: Mapping[str, Any], at: str
) -> list[str]:
    if not isinstance(value, list):
        return []
    return [p for n, each in enumerate(value) for p in _check(each, item, root, f"{at}[{n}]")]


def _properties(
    value: Any, properties: Mapping[str, Any], _: Any, root: Mapping[str, Any], at: str
) -> list[str]:
    if not isinstance(value, dict):
        return []
    return [
        p
        for name, field in properties.items()
        if name in value
        for p in _check(value[name], field, root, f"{at}.{name}")
    ]


def _pattern_properties(
    value: Any, patterns: Mapping[str, Any], _: Any, root: Mapping[str, Any], at: str
) -> list[str]:
    if not isinstance(value, dict):
        return []
    return [
        p
        for pattern, field in patterns.items()
        for name in value
        if re.search(pattern, name)
        for p in _check(value[name], field, root, f"{at}.{name}")
    ]


def _additional(
    value: Any, allowed: Any, schema: Mapping[str, Any], root: Mapping[str, Any], at: str
) -> list[str]:
    if not isinstance(value, dict):
        return []
    extra = [
        name
        for name in value
        if name not in schema.get("properties", {})
        and not any(re.search(pattern, name) for pattern in schema.get("patternProperties", {}))
    ]
    if allowed is False:
        return [f"{at}.{name}: not allowed" for name in extra]
    if allowed is True:
        return []
    return [p for name in extra for p in _check(value[name], allowed, root, f"{at}.{name}")]


_KEYWORDS: dict[str, Any] = {
    "$ref": _ref,
    "anyOf": _any_of,
    "type": _type,
    "enum": _enum,
    "minimum": _bound(lambda v, limit: v >= limit, "below"),
    "maximum": _bound(lambda v, limit: v <= limit, "above"),
    "pattern": _pattern,
    "minLength": _min_length,
    "maxLength": _max_length,
    "minItems": _min_items,
    "maxItems": _max_items,
    "allOf": _all_of,
    "not": _not,
    "required": _required,
    "items": _items,
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional,
}
