from __future__ import annotations

import pytest

from engine.pseudonym import Pseudonymiser


def test_tokens_are_stable_keyed_and_hide_the_identifier() -> None:
    one, other = Pseudonymiser("key-one"), Pseudonymiser("key-two")
    token = one.token("passport", "C1234567")
    assert token == one.token("passport", " c1234567 ")  # case and spacing do not matter
    assert token != other.token("passport", "C1234567")  # a different key, a different token
    assert token != one.token("nik", "C1234567")  # kinds never collide
    assert "1234567" not in token
    assert "key-one" not in repr(one)


def test_a_key_is_required() -> None:
    with pytest.raises(ValueError, match="key is required"):
        Pseudonymiser("")
