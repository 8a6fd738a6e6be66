"""One rule of a pack: its YAML file read and checked, and the examples it carries.

A rule that loads is sound: its condition parses and type-checks, its texts exist in both
languages, its reason quotes only facts it may quote, and every field it may need has a question.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import yaml

from engine import condition
from engine.case import AUDIT_ONLY_FIELDS, CASE_FIELDS, IDENTIFIER_FIELDS
from engine.case_input import parse_case
from engine.enrichment import DERIVED, vocabulary
from engine.errors import CaseError, RegistryError, RulePackError
from engine.reference import yaml_data
from engine.registry import COLUMNS as REGISTRY_COLUMNS
from engine.registry import AgencyRegistry
from engine.vocabulary import check
from engine.wording import MATCHED, Text, placeholders, text_from

SEVERITIES = ("info", "warning", "high", "urgent")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
_RULE_KEYS = {
    "id",
    "severity",
    "title",
    "when",
    "reason",
    "basis",
    "action",
    "referral",
    "questions",
    "examples",
}
_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Example:
    """A case a rule must fire on (or must not), run by `lindung rules check` and the tests."""

    fires: bool
    note: str
    case: Mapping[str, Any]
    registry: tuple[Mapping[str, Any], ...] | None = None
    prior_cases: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: Text
    when: str
    condition: condition.Node
    reason: Text
    basis: str
    action: Text
    referral: str | None
    questions: Mapping[str, Text]  # question for every case field this rule may need
    examples: tuple[Example, ...]
    file: str

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]

    def ask_fields(self, undecided: list[str], facts: Mapping[str, Any]) -> list[str]:
        """Case fields to ask about, given the facts that left this rule undecided."""
        fields: dict[str, None] = {}
        for name in undecided:
            derived = DERIVED.get(name)
            if derived is None:
                fields[name] = None
            else:
                fields.update((f, None) for f in derived.ask if f not in facts)
        return [f for f in fields if f in self.questions]


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml_data(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RulePackError(f"cannot read: {error.strerror}", file=str(path)) from None
    except yaml.YAMLError as error:
        raise RulePackError(f"not valid YAML: {error}", file=str(path)) from None
    if not isinstance(data, dict):
        raise RulePackError("expected a mapping at the top level", file=str(path))
    return data


def unknown_field_text(field: Any) -> str:
    hint = difflib.get_close_matches(str(field), list(CASE_FIELDS), n=1)
    return f"unknown case field {field}" + (f", did you mean {hint[0]}?" if hint else "")


def read_rule(
    path: Path,
    lists: Mapping[str, tuple[Any, ...]],
    agencies: Collection[str],
    pack_questions: Mapping[str, Text],
) -> Rule:
    data = read_yaml(path)
    where = str(path)
    rule_id = data.get("id")
    if not isinstance(rule_id, str) or not _ID.match(rule_id):
        raise RulePackError("id: expected lower_snake_case text", file=where)

    def fail(problem: str, field: str = "") -> RulePackError:
        return RulePackError(problem, file=where, rule_id=rule_id, field=field)

    if rule_id != path.stem:
        raise fail(f"id must equal the file name {path.stem!r}")
    for key in data:
        if key not in _RULE_KEYS:
            hint = difflib.get_close_matches(str(key), sorted(_RULE_KEYS), n=1)
            raise fail(f"unknown key {key!r}" + (f", did you mean {hint[0]!r}?" if hint else ""))
    severity = data.get("severity")
    if severity not in SEVERITIES:
        raise fail(f"severity: {severity!r} is not one of {', '.join(SEVERITIES)}")
    texts = {}
    for key in ("title", "reason", "action"):
        text = text_from(data.get(key))
        if text is None:
            raise fail(f"{key}: needs a non-empty text in both 'id' and 'en' (missing translation)")
        texts[key] = text
    basis = data.get("basis")
    if not isinstance(basis, str) or not basis.strip():
        raise fail("basis: say where the rule comes from (law, regulation or practice)")
    when = data.get("when")
    if not isinstance(when, str):
        raise fail("when: the condition is required")
    try:
        node = condition.parse(when, lists)
    except condition.ConditionError as error:
        raise fail(f"when: {error.problem}") from None
    _check_condition(node, fail)
    used = set(condition.fields(node))
    quotable = used | {q for name in used if name in DERIVED for q in DERIVED[name].quotes}
    for language in ("id", "en"):
        for name in placeholders(texts["reason"].get(language)):
            if name in AUDIT_ONLY_FIELDS or name in IDENTIFIER_FIELDS:
                raise fail(f"reason.{language}: {{{name}}} may never be quoted", name)
            if name not in quotable and name != MATCHED:
                raise fail(
                    f"reason.{language}: {{{name}}} is not a fact this rule's condition reads "
                    f"(quotable: {', '.join(sorted(quotable))})",
                    name,
                )
    referral = data.get("referral")
    if severity == "urgent":
        if referral not in agencies:
            raise fail(
                f"referral: urgent rules must name one of {', '.join(agencies)}, got {referral!r}"
            )
    elif referral is not None:
        raise fail("referral: only urgent rules open a referral")
    questions = _rule_questions(data.get("questions"), node, pack_questions, fail)
    examples = _examples(data.get("examples"), fail)
    return Rule(
        id=rule_id,
        severity=severity,
        title=texts["title"],
        when=" ".join(when.split()),
        condition=node,
        reason=texts["reason"],
        basis=basis.strip(),
        action=texts["action"],
        referral=referral,
        questions=questions,
        examples=examples,
        file=where,
    )


def _check_condition(node: condition.Node, fail: Any) -> None:
    for test in condition.tests(node):
        if test.field in AUDIT_ONLY_FIELDS:
            raise fail(
                f"when: {test.field} is kept for the fairness audit only and may not be used "
                "by any rule",
                test.field,
            )
    try:
        check(node, vocabulary())
    except condition.ConditionError as error:
        raise fail(f"when: {error.problem}", error.field) from None


def _rule_questions(
    raw: Any, node: condition.Node, pack_questions: Mapping[str, Text], fail: Any
) -> dict[str, Text]:
    own = {}
    for field, value in (raw or {}).items():
        if field not in CASE_FIELDS:
            raise fail(f"questions: {unknown_field_text(field)}", str(field))
        text = text_from(value)
        if text is None:
            raise fail(f"questions.{field}: needs both 'id' and 'en'", field)
        own[field] = text
    needed: dict[str, None] = {}
    for name in condition.fields(node):
        derived = DERIVED.get(name)
        needed.update((f, None) for f in (derived.ask if derived else (name,)))
    questions = {}
    for field in needed:
        text = own.get(field) or pack_questions.get(field)
        if text is None:
            raise fail(
                f"questions: no question for {field} (add it to questions.yaml or to the rule)",
                field,
            )
        questions[field] = text
    return questions


def _examples(raw: Any, fail: Any) -> tuple[Example, ...]:
    if not isinstance(raw, dict):
        raise fail("examples: needs 'fires' and 'does_not_fire' lists")
    examples = []
    for key, fires in (("fires", True), ("does_not_fire", False)):
        items = raw.get(key)
        if not isinstance(items, list) or not items:
            raise fail(f"examples.{key}: at least one example is required")
        for number, item in enumerate(items, start=1):
            label = f"examples.{key}[{number}]"
            if not isinstance(item, dict) or not isinstance(item.get("case"), dict):
                raise fail(f"{label}: expected a mapping with a 'case'")
            extra = set(item) - {"note", "case", "registry", "prior_cases"}
            if extra:
                raise fail(f"{label}: unknown key(s) {sorted(extra)}")
            registry = item.get("registry")
            if registry is not None:
                if not isinstance(registry, list) or not all(isinstance(r, dict) for r in registry):
                    raise fail(
                        f"{label}.registry: expected rows with {', '.join(REGISTRY_COLUMNS)}"
                    )
                registry = tuple(registry)
            prior = item.get("prior_cases") or []
            if not isinstance(prior, list) or not all(isinstance(c, dict) for c in prior):
                raise fail(f"{label}.prior_cases: expected a list of cases")
            example = Example(
                fires, str(item.get("note", "")), item["case"], registry, tuple(prior)
            )
            _check_example(example, label, fail)
            examples.append(example)
    return tuple(examples)


def example_record(data: Mapping[str, Any], effective: date | None = None) -> dict[str, Any]:
    """An example's partial case with the defaults it is screened with."""
    record = dict(data)
    record.setdefault("channel", "immigration_desk")
    if effective is not None:
        record.setdefault("screened_at", datetime.combine(effective, time(9), tzinfo=UTC))
    return record


def _check_example(example: Example, label: str, fail: Any) -> None:
    for where, data in [("case", example.case)] + [
        (f"prior_cases[{n}]", c) for n, c in enumerate(example.prior_cases, start=1)
    ]:
        try:
            parse_case(example_record(data))
        except CaseError as error:
            raise fail(f"{label}.{where}: {error}") from None
    if example.registry is not None:
        try:
            AgencyRegistry.from_rows(example.registry, source=f"{label}.registry")
        except RegistryError as error:
            raise fail(f"{label}.registry: {error}") from None
