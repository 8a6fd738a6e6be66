from __future__ import annotations

import hmac
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@given(key=st.text(min_size=1, max_size=100), identifier=st.text(max_size=40))
def test_a_token_is_hmac_sha256_of_the_kind_and_the_normalised_identifier(
    key: str, identifier: str
) -> None:
    pseudonymiser = Pseudonymiser(key)
    normal = " ".join(identifier.casefold().split()) if identifier.isascii() else None
    token = pseudonymiser.token("full_name", identifier)
    if normal is not None:  # keys longer than SHA-256's block are hashed first, as HMAC's are
        expected = hmac.digest(key.encode(), f"full_name\x1f{normal}".encode(), "sha256")
        assert token == f"full_name:{expected[:16].hex()}"
    assert pickle.loads(pickle.dumps(pseudonymiser)).token("full_name", identifier) == token


def test_a_document_number_typed_with_separators_is_the_same_number() -> None:
    one = Pseudonymiser("key-one")
    passport = one.token("passport_no", "C1234567")
    for typed in ("c1234567", " C 123 4567 ", "C-123-4567", "C.1234567", "C/1234567"):
        assert one.token("passport_no", typed) == passport, typed
    nik = one.token("nik", "3201999988887777")
    assert one.token("nik", "3201 9999 8888 7777") == nik
    assert one.token("nik", "3201-9999-8888-7777") == nik
    assert one.token("passport_no", "C1234568") != passport
    # a name keeps its spaces and hyphens: "Siti Nur-Aini" is not "SitiNurAini"
    assert one.token("full_name", "Siti Nur-Aini") != one.token("full_name", "SitiNurAini")


def test_an_escorts_phone_is_the_same_phone_however_it_is_typed() -> None:
    """Three travellers naming one broker's phone, each desk writing it its own way, are one
    escort's three (escort_network)."""
    one = Pseudonymiser("key-one")
    phone = one.token("escort_ref", "081235094989")
    for typed in (
        "0812-3509-4989",
        "0812 3509 4989",
        "0812.3509.4989",
        "(0812) 3509-4989",
        "+62 812-3509-4989",
        "+6281235094989",
        "6281235094989",
    ):
        assert one.token("escort_ref", typed) == phone, typed
    assert one.token("escort_ref", "081235094988") != phone
    assert one.token("escort_ref", "KTP 3201-9999") == one.token("escort_ref", "ktp32019999")
    # only an Indonesian mobile loses its country code: 62 followed by a 2 is not 0
    assert one.token("escort_ref", "+62 21 555 0101") != one.token("escort_ref", "0215550101")
