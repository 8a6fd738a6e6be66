"""A decision read back from what the audit trail keeps is the decision that was given."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings

from engine.case_input import parse_case
from engine.decision import Decision
from engine.screening import Screener
from tests.factories import cases, tourist

RESCUE = tourist(
    travel={"destination_country": "KH", "documents_held_by_other": True},
    interview={"reports_coercion": True, "wants_to_go_home": True, "can_explain_trip": False},
)


def read_back(decision: Decision) -> Decision:
    return Decision.from_dict(json.loads(json.dumps(decision.as_dict())), replayed=True)


def test_an_urgent_decision_read_back_from_its_json_is_the_same_decision(
    scored_screener: Screener,
) -> None:
    decision = scored_screener.screen(parse_case(RESCUE))
    assert decision.referral is not None
    assert decision.flags
    assert decision.explanation
    again = read_back(decision)
    assert again == decision
    assert again.as_dict() == decision.as_dict()
    assert again.replayed
    assert not decision.replayed


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(record=cases())
def test_any_decision_reads_back_as_it_was_given(
    screener: Screener, record: dict[str, Any]
) -> None:
    decision = screener.screen(parse_case(record))
    assert read_back(decision).as_dict() == decision.as_dict()
