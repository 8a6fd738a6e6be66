"""Three-valued (Kleene) logic over conditions: true, false, or undecided for lack of facts.

A test on an unknown fact is undecided; `not`, `and` and `or` follow Kleene's tables, so a rule
fires only when its condition is definitely true. The same logic tells which unknown facts to ask
about, and which tests made a condition true (for reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.condition import All, AnyOf, Compare, Known, Member, Node, Not

Truth = bool | None
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}

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
    return assess(node, facts)[1]


Assessment = tuple[Truth, list[str]]
Assessor = Callable[[Mapping[str, Any]], Assessment]


def assess(node: Node, facts: Mapping[str, Any]) -> Assessment:
    """The truth of a condition and, when undecided, the unknown facts that could decide it."""
    return assessor(node)(facts)


def assessor(node: Node) -> Assessor:
    """`assess` compiled once for one condition: closures instead of a walk over the tree."""
    if isinstance(node, Compare | Member | Known):
        return _leaf_assessor(node)
    if isinstance(node, Not):
        inner = assessor(node.item)

        def negate(facts: Mapping[str, Any]) -> Assessment:
            truth, fields = inner(facts)
            return (None if truth is None else not truth), fields

        return negate
    items = [assessor(item) for item in node.items]
    decisive = isinstance(node, AnyOf)  # `or` is decided by a True, `and` by a False

    def combine(facts: Mapping[str, Any]) -> Assessment:
        undecided: list[str] = []
        open_items = False
        for item in items:
            truth, fields = item(facts)
            if truth is decisive:
                return decisive, []
            if truth is None:
                open_items = True
                undecided.extend(fields)
        if not open_items:
            return not decisive, []
        return None, list(dict.fromkeys(undecided))

    return combine


_DECIDED: list[str] = []  # shared by the leaves: callers never change what they are given


def _leaf_assessor(node: Compare | Member | Known) -> Assessor:
    """One test as a closure specialised to its kind (a desk's case runs a few hundred)."""
    field = node.field
    if isinstance(node, Known):
        negated = node.negated

        def known(facts: Mapping[str, Any]) -> Assessment:
            return (facts.get(field) is not None) != negated, _DECIDED

        return known
    undecided = [field]
    if isinstance(node, Member):
        values, negated = node.values, node.negated

        def member(facts: Mapping[str, Any]) -> Assessment:
            value = facts.get(field)
            if value is None:
                return None, undecided
            return (value in values) != negated, _DECIDED

        return member
    compare, operand = _COMPARE[node.op], node.value

    def test(facts: Mapping[str, Any]) -> Assessment:
        value = facts.get(field)
        if value is None:
            return None, undecided
        return compare(value, operand), _DECIDED

    return test


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
