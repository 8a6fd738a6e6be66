"""Audit bodies as stored: deflated against a fixed dictionary of what decisions repeat.

A decision's body is about 23 kB of JSON, two thirds of it the same in every decision: the
explanation's 67 features with their labels in Bahasa Indonesia and English, the rules' and
questions' wording. Deflate, primed with a dictionary holding two typical decisions, stores it
in about 1.7 kB; PostgreSQL's lz4, which sees one body at a time, in 9.9 kB (and SQLite keeps it
whole). Every byte written is written to PostgreSQL's WAL too, and fsynced before a screening is
answered.

The hash of an entry covers the body's JSON text, not these bytes: `lindung audit verify`
inflates each body and checks the text. A stored body is one of:
- `{...`: the JSON text in UTF-8 (entries written before revision 0004);
- `\\x01` and the text deflated against dictionary 1 (`audit_body_1.zdict`).

A dictionary is never changed once entries are written with it: it is checked against its
SHA-256 when loaded. A better one would be dictionary 2, with its own first byte.
"""

from __future__ import annotations

import hashlib
import zlib
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect, LargeBinary, TypeDecorator

PLAIN = ord("{")
DICTIONARY_1 = 1
DICTIONARY_1_SHA256 = "c2a6a754f3e0e3a72528632f6884520f8d9c974695d8ff7c9312c572ee9eec3f"
LEVEL = 3  # 1.7 kB in 0.2 ms; level 6 saves 0.2 kB more for twice the time
UNREADABLE = "\x00unreadable body"  # what a body that does not inflate reads as (no JSON)


@cache
def dictionary(number: int) -> bytes:
    path = Path(__file__).with_name(f"audit_body_{number}.zdict")
    content = path.read_bytes()
    if number != DICTIONARY_1 or hashlib.sha256(content).hexdigest() != DICTIONARY_1_SHA256:
        raise RuntimeError(
            f"{path.name} is not the dictionary audit entries were written with: "
            "restore it (a new dictionary needs a new number)"
        )
    return content


def pack(text: str) -> bytes:
    """The body as stored: its JSON text deflated against dictionary 1."""
    deflate = _primed(DICTIONARY_1).copy()  # the same bytes as a new deflater gives
    return bytes([DICTIONARY_1]) + deflate.compress(text.encode()) + deflate.flush()


@cache
def _primed(number: int) -> zlib._Compress:
    """A deflater with dictionary `number` loaded and nothing compressed, to copy: loading the
    dictionary again for each body took a third of the time (a 23 kB body: 171 us, now 114)."""
    return zlib.compressobj(LEVEL, zlib.DEFLATED, -15, zdict=dictionary(number))


def unpack(stored: bytes) -> str:
    """The body's JSON text, or UNREADABLE (whose hash is no entry's) if it was tampered with."""
    if not stored:
        return UNREADABLE
    if stored[0] == PLAIN:
        return stored.decode(errors="replace")
    if stored[0] != DICTIONARY_1:
        return UNREADABLE
    try:
        inflate = zlib.decompressobj(-15, zdict=dictionary(DICTIONARY_1))
        text = inflate.decompress(stored[1:]) + inflate.flush()
        if not inflate.eof or inflate.unused_data:
            return UNREADABLE
        return text.decode()
    except (zlib.error, UnicodeDecodeError):
        return UNREADABLE


class AuditBody(TypeDecorator[str]):
    """A body's JSON text in Python, packed in the database. A writer may pack it beforehand
    (outside the write lock) and bind the bytes."""

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: str | bytes | None, dialect: Dialect) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        return pack(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return unpack(bytes(value))
