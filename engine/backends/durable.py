"""The durable-rules backend: a rule pack compiled once into one Rete ruleset.

durable-rules 2.0.28 has sharp edges (shared/durable-rules.md and our own probes); each is
handled here, in one place:
- `post()` consumes an event at the first matching rule, so cases are asserted as facts and every
  matching rule fires;
- the host's two background dispatch threads could run a case's actions after `assert_fact`
  returned, so the host here starts none and all actions run inside the call, under a lock;
- a rule that can match without reading a case field (`is unknown` alone) also matches the
  engine's own state record and fires forever, so every rule also requires a case marker;
- `delete_state` after an assertion that no rule handled crashes the process (segfault), so a
  catch-all rule handles every case;
- a state costs about 0.2 MB of tables zeroed when it is made and freed when it is deleted (a
  third of a case's evaluation, and a desk's caches flushed), so cases are asserted into one
  kept state, each with an id of its own, and retracted once evaluated; it is deleted and made
  anew every `STATE_CASES` cases and after any failure, since a fact whose actions failed part
  way stays in it (at most 1,024 live states per ruleset);
- exceptions in actions are swallowed into the state, so the state is read and checked;
- a registered ruleset cannot be changed, so each backend object has its own host and a fresh
  ruleset name: a new pack version is a new backend;
- its host writes and reads a JSON document through the standard library for the case, for its
  state and for each action (eight to ten a case, half of its time for one case), so its engine
  module is given orjson's, which do the same several times faster (`_Json`).
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

import orjson
from durable import engine as durable_engine

from engine.condition import (
    All,
    AnyOf,
    Compare,
    Known,
    Member,
    Node,
    fields,
)
from engine.errors import EvaluationError, RulePackError
from engine.logic import negation_normal_form
from engine.rule_pack import RulePack

_MARK = "lindung$case"
_SEEN = "lindung$seen"
STATE_CASES = 4_096  # cases evaluated in one state before it is made anew
_OPERATORS = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_names = itertools.count(1)


class _Json:
    """The two calls durable-rules' engine makes of the `json` module, through orjson. What it
    writes is read by the engine's C parser, which takes what the standard library writes of
    our facts (`_plain` keeps exponents and non-finite numbers out of them)."""

    @staticmethod
    def dumps(value: Any, ensure_ascii: bool = True) -> str:
        return orjson.dumps(value).decode()

    loads = staticmethod(orjson.loads)


durable_engine.json = _Json


class _QuietHost(durable_engine.Host):  # type: ignore[misc]
    def _run(self) -> None:
        """Start no dispatch threads: actions run synchronously inside assert_fact."""


def _key(name: str) -> str:
    return name.replace(".", "__")


def compile_condition(node: Node) -> dict[str, Any]:
    """A condition (already in negation normal form) as a durable-rules JSON expression."""
    if isinstance(node, Compare):
        if node.op == "==":
            return {_key(node.field): node.value}
        return {_OPERATORS[node.op]: {_key(node.field): node.value}}
    if isinstance(node, Member):
        key = _key(node.field)
        if node.negated:
            return {"$and": [{"$neq": {key: value}} for value in node.values]}
        return {"$or": [{key: value} for value in node.values]}
    if isinstance(node, Known):
        return {"$nex" if node.negated else "$ex": {_key(node.field): 1}}
    if isinstance(node, AnyOf):
        return {"$or": [compile_condition(item) for item in node.items]}
    if isinstance(node, All):
        return {"$and": [compile_condition(item) for item in node.items]}
    raise TypeError(f"not in negation normal form: {node!r}")


def _plain(name: str, value: Any) -> Any:
    """A fact value as durable-rules' JSON reader takes it: it cannot read exponents (1e+16)."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
        if not math.isfinite(value) or "e" in repr(value):
            raise EvaluationError(f"{name}: {value!r} cannot be evaluated by durable-rules")
    return value


class DurableBackend:
    name = "durable"

    def __init__(self, pack: RulePack) -> None:
        self._ruleset = f"lindung_{next(_names)}"
        self._lock = threading.Lock()
        self._fired: list[str] = []
        self._cases = itertools.count()  # each case's fact id
        self._state = 0  # the kept state's number (its sid)
        self._in_state = 0  # cases evaluated in it
        names: dict[str, None] = {}
        definition: dict[str, Any] = {
            _SEEN: {"all": [{"m": {_MARK: 1}}], "run": self._action(_SEEN)}
        }
        for rule in pack.rules:
            names.update(dict.fromkeys(fields(rule.condition)))
            expression = compile_condition(negation_normal_form(rule.condition))
            definition[rule.id] = {
                "all": [{"m": {"$and": [{_MARK: 1}, expression]}}],
                "run": self._action(rule.id),
            }
        self._facts = tuple((name, _key(name)) for name in names)
        self._host = _QuietHost()
        try:
            self._host.set_rulesets({self._ruleset: definition})
        except Exception as error:  # the engine reports bad rules as plain exceptions
            raise RulePackError(
                f"durable-rules refused the pack: {error}", file=pack.folder
            ) from None

    def _action(self, rule_id: str) -> Callable[[Any], None]:
        def fire(_closure: Any) -> None:
            self._fired.append(rule_id)

        return fire

    def fired(self, facts: Mapping[str, Any]) -> frozenset[str]:
        message = {key: _plain(name, facts[name]) for name, key in self._facts if name in facts}
        message[_MARK] = 1
        with self._lock:
            message["sid"] = f"s{self._state}"
            message["id"] = str(next(self._cases))
            self._fired = []
            try:
                self._host.assert_fact(self._ruleset, message)
            except durable_engine.MessageNotHandledException:
                # no rule took the fact (the catch-all always does): the state cannot be
                # deleted (a segfault), so it is left behind and the next case begins another
                self._abandon_state()
                raise EvaluationError("durable-rules did not evaluate the case") from None
            except durable_engine.MessageObservedException as error:  # refused, nothing kept
                raise EvaluationError(f"durable-rules refused the case: {error}") from None
            except BaseException as error:
                # refused up front, or failed while its actions ran with the fact kept: the
                # next case must not meet it, so the state is begun anew either way
                self._begin_state(message["sid"])
                if isinstance(error, Exception):
                    raise EvaluationError(f"durable-rules refused the case: {error}") from None
                raise
            fired, self._fired = self._fired, []
            try:
                self._host.retract_fact(self._ruleset, message)
                state = self._host.get_state(self._ruleset, message["sid"])
                if "exception" in state:
                    raise EvaluationError(str(state["exception"])[:500])
                if _SEEN not in fired:
                    raise EvaluationError("durable-rules did not evaluate the case")
                if self._fired:
                    raise EvaluationError(f"durable-rules fired {self._fired} on a retraction")
            except BaseException:
                self._begin_state(message["sid"])
                raise
            self._in_state += 1
            if self._in_state == STATE_CASES:
                self._begin_state(message["sid"])
        return frozenset(fired) - {_SEEN}

    def _begin_state(self, sid: str) -> None:
        """Delete the kept state: the next case begins a new one."""
        try:
            self._host.delete_state(self._ruleset, sid)
        finally:
            self._abandon_state()

    def _abandon_state(self) -> None:
        """The next case begins a new state; the kept one is left as it is."""
        self._state += 1
        self._in_state = 0
