"""durable-rules evaluates each case in a kept state: every case as if it were the only one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backends import durable
from engine.backends.durable import DurableBackend
from engine.backends.reference import ReferenceBackend
from engine.case_input import parse_case
from engine.errors import EvaluationError
from engine.pseudonym import Pseudonymiser
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack
from engine.screening import Screener
from tests.factories import cases, documented_worker, tourist


def facts_of(pack: RulePack, registry: AgencyRegistry, record: dict[str, Any]) -> dict[str, Any]:
    screener = Screener(pack, pseudonymiser=Pseudonymiser("k"), registry=registry)
    return dict(screener.enricher.enrich(parse_case(record)).facts)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(cases(), min_size=2, max_size=12))
def test_a_run_of_cases_across_several_states_fires_what_each_fires_alone(
    pack: RulePack,
    registry: AgencyRegistry,
    monkeypatch: pytest.MonkeyPatch,
    records: list[dict[str, Any]],
) -> None:
    monkeypatch.setattr(durable, "STATE_CASES", 3)  # a new state after every third case
    backend, alone = DurableBackend(pack), ReferenceBackend(pack)
    for record in records + records:  # each case again, in later states
        facts = facts_of(pack, registry, record)
        assert backend.fired(facts) == alone.fired(facts)


def test_the_same_case_twice_in_a_row_fires_twice(pack: RulePack, registry: AgencyRegistry) -> None:
    facts = facts_of(pack, registry, documented_worker(recruitment={"fee_paid_idr": 40_000_000}))
    backend = DurableBackend(pack)
    first = backend.fired(facts)
    assert first  # a worker charged a fee the law forbids
    assert backend.fired(facts) == first
    assert backend.fired(facts_of(pack, registry, tourist())) == set()


def test_a_case_after_one_that_failed_is_evaluated_afresh(
    pack: RulePack, registry: AgencyRegistry
) -> None:
    failing: set[str] = set()

    class Failing(DurableBackend):
        def _action(self, rule_id: str) -> Callable[[Any], None]:
            fire = super()._action(rule_id)

            def maybe_fail(closure: Any) -> None:
                if rule_id in failing:
                    raise RuntimeError(f"{rule_id} failed")
                fire(closure)

            return maybe_fail

    worker = facts_of(pack, registry, documented_worker(recruitment={"fee_paid_idr": 40_000_000}))
    backend = Failing(pack)
    fired = backend.fired(worker)
    failing.update(fired)
    with pytest.raises(EvaluationError, match="failed"):
        backend.fired(worker)
    failing.clear()
    assert backend.fired(worker) == fired  # not the failure left in the state before
    assert backend.fired(facts_of(pack, registry, tourist())) == set()


def test_a_case_after_one_whose_evaluation_failed_midway_does_not_meet_its_facts(
    pack: RulePack, registry: AgencyRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = durable.durable_engine.durable_rules_engine
    next_action = engine.complete_and_start_action
    calls = 0

    def failing_once(*args: Any) -> Any:  # the engine failing between two of a case's actions
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the engine failed")
        return next_action(*args)

    worker = facts_of(pack, registry, documented_worker(recruitment={"fee_paid_idr": 40_000_000}))
    backend = DurableBackend(pack)
    assert len(backend.fired(worker)) >= 1
    calls = 0
    monkeypatch.setattr(engine, "complete_and_start_action", failing_once)
    with pytest.raises(EvaluationError, match="the engine failed"):
        backend.fired(worker)
    monkeypatch.setattr(engine, "complete_and_start_action", next_action)
    assert backend.fired(facts_of(pack, registry, tourist())) == set()
