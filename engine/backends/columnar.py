"""The columnar backend: a rule pack evaluated over whole columns at once, for batch work.

Each condition becomes two masks per case, "definitely true" and "definitely false"; a case that
is in neither is undecided. `not`, `and` and `or` follow Kleene's tables on these masks, so the
rules fire exactly where the durable-rules and reference backends fire (the tests check it).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from engine.condition import All, AnyOf, Compare, Known, Member, Node, Not
from engine.enrichment import vocabulary
from engine.frame import Frame, column_of, compared, known, member
from engine.rule_pack import RulePack

Masks = tuple[np.ndarray, np.ndarray]  # (definitely true, definitely false)
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def truth_masks(
    node: Node, facts: Mapping[str, np.ndarray], knowns: dict[str, np.ndarray] | None = None
) -> Masks:
    """Where a condition is definitely true and definitely false, for every case at once.
    `knowns` keeps where each fact is known, for the next condition that reads it."""
    knowns = {} if knowns is None else knowns
    if isinstance(node, Compare | Member | Known):
        column = facts[node.field]
        if node.field not in knowns:
            knowns[node.field] = known(column)
        present = knowns[node.field]
        if isinstance(node, Known):
            return (~present, present) if node.negated else (present, ~present)
        if isinstance(node, Member):
            inside = member(column, node.values)
            holds = ~inside if node.negated else inside
        else:
            holds = compared(column, _OPS[node.op], node.value)
        return present & holds, present & ~holds
    if isinstance(node, Not):
        true, false = truth_masks(node.item, facts, knowns)
        return false, true
    masks = [truth_masks(item, facts, knowns) for item in node.items]
    trues = np.array([true for true, _ in masks])
    falses = np.array([false for _, false in masks])
    if isinstance(node, All):
        return np.logical_and.reduce(trues), np.logical_or.reduce(falses)
    assert isinstance(node, AnyOf)
    return np.logical_or.reduce(trues), np.logical_and.reduce(falses)


class ColumnarBackend:
    name = "columnar"

    def __init__(self, pack: RulePack) -> None:
        self._rules = tuple((rule.id, rule.condition) for rule in pack.rules)
        self._kinds = {name: fact.kind for name, fact in vocabulary().items()}

    def fired_frame(self, facts: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """For each rule, where it fires."""
        knowns: dict[str, np.ndarray] = {}
        return {rule_id: truth_masks(node, facts, knowns)[0] for rule_id, node in self._rules}

    def fired(self, facts: Mapping[str, Any]) -> frozenset[str]:
        frame: Frame = {
            name: column_of([facts.get(name)], kind) for name, kind in self._kinds.items()
        }
        return frozenset(rule_id for rule_id, mask in self.fired_frame(frame).items() if mask[0])
