from __future__ import annotations

from typing import Any

from hypothesis import given

from engine.condition import parse
from engine.logic import assess, evaluate, negation_normal_form, undecided_fields
from tests.engine.test_condition import LISTS, conditions, facts


def test_three_valued_logic() -> None:
    unknown_flag = {"other": True}
    assert evaluate(parse("flag", LISTS), unknown_flag) is None
    assert evaluate(parse("not flag", LISTS), unknown_flag) is None
    assert evaluate(parse("flag or other", LISTS), unknown_flag) is True
    assert evaluate(parse("flag and not other", LISTS), unknown_flag) is False
    assert evaluate(parse("flag and other", LISTS), unknown_flag) is None
    assert evaluate(parse("flag is unknown", LISTS), unknown_flag) is True
    assert evaluate(parse("count != 3", LISTS), {}) is None


def test_undecided_fields_are_only_those_that_could_decide() -> None:
    node = parse("(flag or other) and count > 2 and kind == 'x'", LISTS)
    # `other` is already true, so `flag` cannot change the outcome; `kind` is false -> decided
    assert undecided_fields(node, {"other": True, "kind": "y"}) == []
    assert undecided_fields(node, {"other": True, "kind": "x"}) == ["count"]
    assert undecided_fields(node, {"kind": "x"}) == ["flag", "other", "count"]


@given(conditions, facts)
def test_negation_normal_form_keeps_three_valued_truth(node: Any, known: dict[str, Any]) -> None:
    assert evaluate(negation_normal_form(node), known) == evaluate(node, known)


@given(conditions, facts)
def test_assessment_agrees_with_evaluation(node: Any, known: dict[str, Any]) -> None:
    truth, fields = assess(node, known)
    assert truth == evaluate(node, known)
    assert (truth is None) == bool(fields)
    assert all(field not in known for field in fields)
