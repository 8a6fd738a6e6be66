"""Rule-evaluation backends: each compiles a rule pack once and says which rules a case fires.

All backends must agree exactly (the tests check it): `durable` runs the pack on the
durable-rules Rete engine for online screening; `columnar` evaluates whole columns at once for
batch work; `reference` evaluates each condition in plain Python with three-valued logic and is
the yardstick the others are held to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from engine.backends.columnar import ColumnarBackend
from engine.backends.durable import DurableBackend
from engine.backends.reference import ReferenceBackend
from engine.rule_pack import RulePack


class RuleBackend(Protocol):
    name: str

    def fired(self, facts: Mapping[str, Any]) -> frozenset[str]:
        """Ids of the rules whose conditions are true for these facts."""
        ...


BACKENDS: dict[str, Callable[[RulePack], RuleBackend]] = {
    "durable": DurableBackend,
    "columnar": ColumnarBackend,
    "reference": ReferenceBackend,
}
