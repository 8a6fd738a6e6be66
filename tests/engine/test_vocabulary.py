from __future__ import annotations

import pytest

from engine.condition import ConditionError, parse
from engine.vocabulary import check
from tests.engine.test_condition import LISTS, VOCABULARY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("knid == 'x'", "unknown fact knid, did you mean kind?"),
        ("kind == 'w'", "kind cannot be 'w': expected one of x, y, z"),
        ("kind < 3", "kind is one of a list of values: '<' needs a number"),
        ("flag == 1", "flag cannot be 1: expected true or false"),
        ("count == 'many'", "count cannot be 'many': expected a number"),
        ("country == 'Malaysia'", "expected an ISO 3166 alpha-2 code"),
        ("links.escort_ref == 'x'", "may only be tested with 'is known' or 'is unknown'"),
    ],
)
def test_type_errors_name_the_fact(text: str, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        check(parse(text, LISTS), VOCABULARY)
    assert message in str(caught.value)
