"""The rule condition language: parsing, type checking, three-valued evaluation.

Grammar (see rules/README.md): `or` of `and` of `not` of tests; a test is a yes/no fact, a
comparison with a literal, membership in a list or a reference list (`@name`), or `is known` /
`is unknown`. A test on an unknown fact is undecided (None), and `not`/`and`/`or` follow Kleene's
three-valued logic, so a rule fires only when its condition is definitely true.

The tree is plain data: each rule backend (durable-rules now, a columnar one for batch) compiles it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

from engine.errors import LindungError


class ConditionError(LindungError):
    """A condition that does not parse or does not type-check."""

    def __init__(self, problem: str, *, field: str = "") -> None:
        self.problem = problem
        self.field = field
        super().__init__(problem)


Literal = str | int | float | bool


@dataclass(frozen=True)
class Compare:
    field: str
    op: str  # == != < <= > >=
    value: Literal


@dataclass(frozen=True)
class Member:
    field: str
    values: tuple[Literal, ...]
    negated: bool = False
    list_name: str = ""


@dataclass(frozen=True)
class Known:
    field: str
    negated: bool = False  # True: "is unknown"


@dataclass(frozen=True)
class Not:
    item: Node


@dataclass(frozen=True)
class All:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


Node = Union[Compare, Member, Known, Not, All, AnyOf]  # noqa: UP007 (recursive alias)
Truth = bool | None

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<number>-?\d+(?:\.\d+)?)
    | (?P<string>"[^"]*"|'[^']*')
    | (?P<op>==|!=|<=|>=|<|>)
    | (?P<punct>[()\[\],@])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "is", "known", "unknown", "true", "false"}
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}


def parse(text: str, lists: Mapping[str, tuple[Literal, ...]]) -> Node:
    """Parse a condition; `@name` lists resolve against `lists` now, at load time."""
    return _Parser(text, lists).parse()


class _Parser:
    def __init__(self, text: str, lists: Mapping[str, tuple[Literal, ...]]) -> None:
        self.text = text
        self.lists = lists
        self.tokens = self._tokenise(text)
        self.at = 0

    @staticmethod
    def _tokenise(text: str) -> list[tuple[str, str, int]]:
        tokens, pos = [], 0
        stripped = text.rstrip()
        while pos < len(stripped):
            match = _TOKEN.match(stripped, pos)
            if not match or match.end() == pos:
                bad = stripped[pos:].strip()[:20]
                raise ConditionError(f"cannot read {bad!r} at character {pos + 1}")
            group = match.lastgroup or ""
            value, start = match.group(group), match.start(group)
            kind = "keyword" if group == "name" and value in _KEYWORDS else group
            tokens.append((kind, value, start))
            pos = match.end()
        return tokens

    def parse(self) -> Node:
        if not self.tokens:
            raise ConditionError("the condition is empty")
        node = self._or()
        if self.at < len(self.tokens):
            _, value, pos = self.tokens[self.at]
            raise ConditionError(f"unexpected {value!r} at character {pos + 1}")
        return node

    def _peek(self, *values: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at][1] in values

    def _next(self, expected: str = "") -> tuple[str, str, int]:
        if self.at >= len(self.tokens):
            raise ConditionError(
                f"the condition ends early{'; expected ' + expected if expected else ''}"
            )
        token = self.tokens[self.at]
        self.at += 1
        return token

    def _expect(self, value: str) -> None:
        _, got, pos = self._next(repr(value))
        if got != value:
            raise ConditionError(f"expected {value!r} at character {pos + 1}, found {got!r}")

    def _or(self) -> Node:
        items = [self._and()]
        while self._peek("or"):
            self.at += 1
            items.append(self._and())
        return items[0] if len(items) == 1 else AnyOf(tuple(items))

    def _and(self) -> Node:
        items = [self._not()]
        while self._peek("and"):
            self.at += 1
            items.append(self._not())
        return items[0] if len(items) == 1 else All(tuple(items))

    def _not(self) -> Node:
        if self._peek("not"):
            self.at += 1
            return Not(self._not())
        if self._peek("("):
            self.at += 1
            node = self._or()
            self._expect(")")
            return node
        return self._test()

    def _test(self) -> Node:
        kind, name, pos = self._next("a fact name")
        if kind != "name":
            raise ConditionError(f"expected a fact name at character {pos + 1}, found {name!r}")
        if self._peek("==", "!=", "<", "<=", ">", ">="):
            _, op, _ = self._next()
            return Compare(name, op, self._literal())
        if self._peek("in"):
            self.at += 1
            values, list_name = self._list()
            return Member(name, values, False, list_name)
        if (
            self._peek("not")
            and self.at + 1 < len(self.tokens)
            and self.tokens[self.at + 1][1] == "in"
        ):
            self.at += 2
            values, list_name = self._list()
            return Member(name, values, True, list_name)
        if self._peek("is"):
            self.at += 1
            _, word, wpos = self._next("'known' or 'unknown'")
            if word not in {"known", "unknown"}:
                raise ConditionError(f"expected 'known' or 'unknown' at character {wpos + 1}")
            return Known(name, negated=word == "unknown")
        return Compare(name, "==", True)

    def _literal(self) -> Literal:
        kind, value, pos = self._next("a value")
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "string":
            return value[1:-1]
        if value in {"true", "false"}:
            return value == "true"
        raise ConditionError(f"expected a value at character {pos + 1}, found {value!r}")

    def _list(self) -> tuple[tuple[Literal, ...], str]:
        if self._peek("@"):
            self.at += 1
            _kind, name, _pos = self._next("a reference list name")
            if name not in self.lists:
                hint = difflib.get_close_matches(name, list(self.lists), n=1)
                raise ConditionError(
                    f"unknown reference list @{name}"
                    + (f", did you mean @{hint[0]}?" if hint else "")
                )
            return tuple(self.lists[name]), name
        self._expect("[")
        values = [self._literal()]
        while self._peek(","):
            self.at += 1
            values.append(self._literal())
        self._expect("]")
        return tuple(values), ""


# --- what a condition reads ------------------------------------------------------------------


def tests(node: Node) -> Iterator[Compare | Member | Known]:
    """Every test (leaf) of a condition, left to right."""
    if isinstance(node, Not):
        yield from tests(node.item)
    elif isinstance(node, All | AnyOf):
        for item in node.items:
            yield from tests(item)
    else:
        yield node


def fields(node: Node) -> list[str]:
    """The facts a condition reads, in order of first use."""
    return list(dict.fromkeys(test.field for test in tests(node)))


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


# --- three-valued evaluation -----------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: bool(a == b),
    "!=": lambda a, b: bool(a != b),
    "<": lambda a, b: bool(a < b),
    "<=": lambda a, b: bool(a <= b),
    ">": lambda a, b: bool(a > b),
    ">=": lambda a, b: bool(a >= b),
}


def evaluate(node: Node, facts: Mapping[str, Any]) -> Truth:
    """True, False, or None (undecided because facts it needs are unknown)."""
    if isinstance(node, Compare):
        value = facts.get(node.field)
        return None if value is None else _COMPARE[node.op](value, node.value)
    if isinstance(node, Member):
        value = facts.get(node.field)
        return None if value is None else (value in node.values) != node.negated
    if isinstance(node, Known):
        return (facts.get(node.field) is not None) != node.negated
    if isinstance(node, Not):
        inner = evaluate(node.item, facts)
        return None if inner is None else not inner
    results = [evaluate(item, facts) for item in node.items]
    decisive = isinstance(node, AnyOf)  # `or` is decided by a True, `and` by a False
    if decisive in results:
        return decisive
    return None if None in results else not decisive


def undecided_fields(node: Node, facts: Mapping[str, Any]) -> list[str]:
    """The unknown facts that leave an undecided condition undecided (what to ask next)."""
    found: dict[str, None] = {}
    _collect_undecided(node, facts, found)
    return list(found)


def _collect_undecided(node: Node, facts: Mapping[str, Any], found: dict[str, None]) -> None:
    if evaluate(node, facts) is not None:
        return
    if isinstance(node, Compare | Member):
        found[node.field] = None
    elif isinstance(node, Not):
        _collect_undecided(node.item, facts, found)
    elif isinstance(node, All | AnyOf):
        for item in node.items:
            _collect_undecided(item, facts, found)


def deciding_tests(node: Node, facts: Mapping[str, Any]) -> list[Compare | Member | Known]:
    """The tests that make a true condition true (for reasons that quote what fired a rule).

    Works on the negation normal form, so `not placement.documents.bpjs` reads as the test
    `placement.documents.bpjs == false`; in an `or`, only the true branches count.
    """
    found: list[Compare | Member | Known] = []
    _collect_deciding(negation_normal_form(node), facts, found)
    return found


def _collect_deciding(node: Node, facts: Mapping[str, Any], found: list[Any]) -> None:
    if evaluate(node, facts) is not True:
        return
    if isinstance(node, All | AnyOf):
        for item in node.items:
            _collect_deciding(item, facts, found)
    elif not isinstance(node, Not):
        found.append(node)


def negation_normal_form(node: Node) -> Node:
    """Push every `not` down to the tests, flipping them; Kleene truth is unchanged.

    Engines that see an unknown fact as "no match" (durable-rules, columnar masks) then agree with
    three-valued logic: a flipped test on an unknown fact is still no match.
    """
    return _nnf(node, negate=False)


def _nnf(node: Node, negate: bool) -> Node:
    if isinstance(node, Not):
        return _nnf(node.item, not negate)
    if isinstance(node, All | AnyOf):
        items = tuple(_nnf(item, negate) for item in node.items)
        flip = isinstance(node, All) == negate  # De Morgan
        return AnyOf(items) if flip else All(items)
    if not negate:
        return node
    if isinstance(node, Compare):
        return Compare(node.field, _NEGATED[node.op], node.value)
    if isinstance(node, Member):
        return Member(node.field, node.values, not node.negated, node.list_name)
    return Known(node.field, not node.negated)


def render(node: Node) -> str:
    """The condition written back in the rule language (for listings and error messages)."""
    if isinstance(node, Compare):
        if node.op == "==" and node.value is True:
            return node.field
        return f"{node.field} {node.op} {_literal_text(node.value)}"
    if isinstance(node, Member):
        values = (
            f"@{node.list_name}"
            if node.list_name
            else ("[" + ", ".join(_literal_text(v) for v in node.values) + "]")
        )
        return f"{node.field} {'not in' if node.negated else 'in'} {values}"
    if isinstance(node, Known):
        return f"{node.field} is {'unknown' if node.negated else 'known'}"
    if isinstance(node, Not):
        return f"not {_wrapped(node.item)}"
    joiner = " and " if isinstance(node, All) else " or "
    return joiner.join(_wrapped(item) for item in node.items)


def _wrapped(node: Node) -> str:
    return f"({render(node)})" if isinstance(node, All | AnyOf) else render(node)


def _literal_text(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)
