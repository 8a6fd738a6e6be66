"""The reference backend: three-valued evaluation of each condition in plain Python."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.logic import evaluate
from engine.rule_pack import RulePack


class ReferenceBackend:
    name = "reference"

    def __init__(self, pack: RulePack) -> None:
        self._rules = tuple((rule.id, rule.condition) for rule in pack.rules)

    def fired(self, facts: Mapping[str, Any]) -> frozenset[str]:
        return frozenset(rid for rid, node in self._rules if evaluate(node, facts) is True)
