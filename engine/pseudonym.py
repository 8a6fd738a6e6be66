"""Keyed hashing of identifiers (names, NIK, passport numbers, escort and group references).

An identifier is replaced by HMAC-SHA256 under a secret key before it is stored or compared
across cases, so the same person or escort links cases without anyone reading who they are.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date, datetime
from operator import attrgetter
from typing import Any

from engine.case import CASE_FIELDS, IDENTIFIER_FIELDS, Case


class Pseudonymiser:
    """Turns identifiers into stable keyed hashes; the key never leaves this object."""

    __slots__ = ("_inner", "_key", "_outer")

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("a pseudonymisation key is required")
        self._key = key.encode()
        # HMAC (RFC 2104) with its two keyed states hashed once: each token then costs two
        # copies and two short updates, where hmac.digest set the key up again each time
        block = self._key if len(self._key) <= _BLOCK else hashlib.sha256(self._key).digest()
        block = block.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))

    def __repr__(self) -> str:
        return "Pseudonymiser(key=***)"

    def __reduce__(self) -> tuple[type[Pseudonymiser], tuple[str]]:
        return Pseudonymiser, (self._key.decode(),)  # to worker processes, as the key

    def token(self, kind: str, identifier: str) -> str:
        """A stable pseudonym for one identifier of one kind (e.g. 'escort', 'passport'):
        HMAC-SHA256 of the kind and the identifier, its case and spacing normalised (and for a
        document number or an escort's phone or ID, its separators dropped: `C 123-4567` is
        `c1234567`; an escort's Indonesian mobile number is one however it is written:
        `+62 812-3509-4989` is `081235094989`)."""
        normal = " ".join(unicodedata.normalize("NFKC", identifier).casefold().split())
        if kind in DOCUMENT_NUMBERS or kind == ESCORT:
            normal = _SEPARATORS.sub("", normal)
        if kind == ESCORT:
            normal = _INDONESIAN_MOBILE.sub("0", normal)
        inner = self._inner.copy()
        inner.update(f"{kind}\x1f{normal}".encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return f"{kind}:{outer.digest()[:16].hex()}"


_BLOCK = 64  # SHA-256's block size in bytes
DOCUMENT_NUMBERS = frozenset({"nik", "passport_no"})  # letters and digits; the rest is typing
ESCORT = "escort_ref"  # a phone number or an ID: its separators are typing too
_SEPARATORS = re.compile(r"[\s\-./()]+")
_INDONESIAN_MOBILE = re.compile(r"^\+?62(?=8\d{7,11}$)")  # +62 812... is 0812...
_GETTERS = {path: attrgetter(path) for path in CASE_FIELDS}  # every group of a case is present


def pseudonymised_record(case: Case, pseudonymiser: Pseudonymiser) -> dict[str, Any]:
    """The known fields of a case as flat dotted keys, ready to store: identifiers (names, NIK,
    passport numbers, escort and group references) are replaced by their keyed hashes."""
    record: dict[str, Any] = {}
    for path, get in _GETTERS.items():
        value = get(case)
        if value is None:
            continue
        if path in IDENTIFIER_FIELDS:
            value = pseudonymiser.token(path.rsplit(".", 1)[1], str(value))
        elif isinstance(value, date | datetime):
            value = value.isoformat()
        elif isinstance(value, list):
            value = list(value)
        record[path] = value
    return record
