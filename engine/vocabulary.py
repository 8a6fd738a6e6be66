"""Type checking of conditions against the facts they may name (case fields, derived facts)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from engine.condition import Compare, ConditionError, Known, Literal, Member, Node, tests


@dataclass(frozen=True)
class FactType:
    """What a fact holds, for type checking: a kind and, for enumerations, its values."""

    kind: str  # bool | int | number | text | enum | country | date | ...
    values: tuple[str, ...] = ()
    presence_only: bool = False  # identifiers: only `is known` / `is unknown`


def check(node: Node, vocabulary: Mapping[str, FactType]) -> None:
    """Refuse unknown facts, bad operators and values of the wrong type, with a suggestion."""
    for test in tests(node):
        fact = vocabulary.get(test.field)
        if fact is None:
            hint = difflib.get_close_matches(test.field, list(vocabulary), n=1, cutoff=0.6)
            raise ConditionError(
                f"unknown fact {test.field}" + (f", did you mean {hint[0]}?" if hint else ""),
                field=test.field,
            )
        if isinstance(test, Known):
            continue
        if fact.presence_only:
            raise ConditionError(
                f"{test.field} may only be tested with 'is known' or 'is unknown'", field=test.field
            )
        values = test.values if isinstance(test, Member) else (test.value,)
        op = test.op if isinstance(test, Compare) else "in"
        if op in {"<", "<=", ">", ">="} and fact.kind not in {"int", "number"}:
            raise ConditionError(
                f"{test.field} is {_kind_name(fact)}: '{op}' needs a number", field=test.field
            )
        for value in values:
            _check_value(test.field, fact, value)


def _kind_name(fact: FactType) -> str:
    return {"bool": "yes/no", "enum": "one of a list of values"}.get(fact.kind, fact.kind)


def _check_value(field: str, fact: FactType, value: Literal) -> None:
    if fact.kind == "bool":
        ok = isinstance(value, bool)
        expected = "true or false"
    elif fact.kind in {"int", "number"}:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        expected = "a number"
    elif fact.kind == "enum":
        ok = isinstance(value, str) and value in fact.values
        expected = "one of " + ", ".join(fact.values)
        if isinstance(value, str) and not ok:
            hint = difflib.get_close_matches(value, list(fact.values), n=1)
            if hint:
                expected += f" (did you mean {hint[0]!r}?)"
    elif fact.kind == "country":
        ok = isinstance(value, str) and len(value) == 2 and value.isalpha() and value.isupper()
        expected = "an ISO 3166 alpha-2 code such as MY"
    else:
        ok = isinstance(value, str)
        expected = "text"
    if not ok:
        raise ConditionError(f"{field} cannot be {value!r}: expected {expected}", field=field)
