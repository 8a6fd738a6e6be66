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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Union

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
