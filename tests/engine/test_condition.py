from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.backends.durable import DurableBackend
from engine.condition import (
    All,
    AnyOf,
    Compare,
    ConditionError,
    Known,
    Member,
    Not,
    parse,
    render,
)
from engine.logic import evaluate
from engine.vocabulary import FactType

LISTS = {"hotspots": ("KH", "MM")}
VOCABULARY = {
    "kind": FactType("enum", ("x", "y", "z")),
    "count": FactType("int"),
    "flag": FactType("bool"),
    "other": FactType("bool"),
    "country": FactType("country"),
    "links.escort_ref": FactType("text", presence_only=True),
}


def test_precedence_is_not_then_and_then_or() -> None:
    node = parse("flag or not other and count >= 3", LISTS)
    assert node == AnyOf(
        (
            Compare("flag", "==", True),
            All((Not(Compare("other", "==", True)), Compare("count", ">=", 3))),
        )
    )


def test_lists_tests_and_reference_lists() -> None:
    node = parse(
        'kind not in ["x", "y"] and country in @hotspots and links.escort_ref is known', LISTS
    )
    assert node == All(
        (
            Member("kind", ("x", "y"), True),
            Member("country", ("KH", "MM"), False, "hotspots"),
            Known("links.escort_ref"),
        )
    )
    assert render(node) == (
        'kind not in ["x", "y"] and country in @hotspots and links.escort_ref is known'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("count >", "the condition ends early; expected a value"),
        ("count => 3", "cannot read"),
        ("(flag or other", "the condition ends early; expected ')'"),
        ("country in @hotspot", "unknown reference list @hotspot, did you mean @hotspots?"),
        ("flag other", "unexpected 'other' at character 6"),
        ("", "the condition is empty"),
    ],
)
def test_syntax_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(ConditionError, match=None) as caught:
        parse(text, LISTS)
    assert message in str(caught.value)


# --- properties --------------------------------------------------------------------------------

_leaves = st.one_of(
    st.builds(Compare, st.just("kind"), st.sampled_from(["==", "!="]), st.sampled_from("xyz")),
    st.builds(
        Compare,
        st.just("count"),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        st.integers(0, 4),
    ),
    st.builds(Compare, st.sampled_from(["flag", "other"]), st.just("=="), st.booleans()),
    st.builds(
        Member,
        st.just("kind"),
        st.lists(st.sampled_from("xyz"), min_size=1, max_size=3, unique=True).map(tuple),
        st.booleans(),
    ),
    st.builds(Known, st.sampled_from(["kind", "count", "flag"]), st.booleans()),
)
conditions = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(All, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(AnyOf, st.lists(inner, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=8,
)
facts = st.fixed_dictionaries(
    {},
    optional={
        "kind": st.sampled_from("xyz"),
        "count": st.integers(0, 4),
        "flag": st.booleans(),
        "other": st.booleans(),
    },
)


@given(conditions)
def test_rendered_conditions_parse_back_to_the_same_truth(node: Any) -> None:
    again = parse(render(node), LISTS)
    for known in ({}, {"kind": "x", "count": 2, "flag": True}, {"count": 0, "other": False}):
        assert evaluate(again, known) == evaluate(node, known)


@settings(max_examples=60, deadline=None)
@given(st.lists(conditions, min_size=1, max_size=4), st.lists(facts, min_size=1, max_size=6))
def test_durable_rules_fire_exactly_when_the_condition_is_true(
    nodes: list[Any], cases: list[dict[str, Any]]
) -> None:
    rules = [SimpleNamespace(id=f"r{i}", condition=node) for i, node in enumerate(nodes)]
    backend = DurableBackend(SimpleNamespace(rules=rules, folder="(generated)"))  # type: ignore[arg-type]
    for known in cases:
        expected = {rule.id for rule in rules if evaluate(rule.condition, known) is True}
        assert backend.fired(known) == expected
