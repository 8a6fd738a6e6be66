"""Audit bodies as stored: compressed against a fixed dictionary of what decisions repeat.

A decision's body is about 23 kB of JSON, two thirds of it the same in every decision: the
explanation's 67 features with their labels in Bahasa Indonesia and English, the rules' and
questions' wording. Compressed against a dictionary holding two typical decisions, it is stored
in about 2.4 kB; PostgreSQL's lz4, which sees one body at a time, in 9.9 kB (and SQLite keeps it
whole). Every byte written is written to PostgreSQL's WAL too, and fsynced before a screening is
answered.

The hash of an entry covers the body's JSON text, not these bytes: `lindung audit verify`
unpacks each body and checks the text. A stored body is one of:
- `{...`: the JSON text in UTF-8 (entries written before revision 0004);
- `\\x01` and the text deflated against dictionary 1 (`audit_body_1.zdict`; entries written
  before zstd, which packs a body in less time and fewer bytes);
- `\\x02` and a Zstandard frame of the text, compressed against dictionary 1 as raw content.

A dictionary is never changed once entries are written with it: it is checked against its
SHA-256 when loaded. A better one would be dictionary 2, with its own first byte.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from functools import cache
from pathlib import Path
from typing import Any

import zstandard
from sqlalchemy import Dialect, LargeBinary, TypeDecorator

PLAIN = ord("{")
DEFLATED_1 = 1  # deflate, dictionary 1 (read only)
ZSTD_1 = 2  # Zstandard, dictionary 1 (written)
DICTIONARY_1 = 1
DICTIONARY_1_SHA256 = "c2a6a754f3e0e3a72528632f6884520f8d9c974695d8ff7c9312c572ee9eec3f"
# A 23 kB decision in 2.4 kB and 67 us, where deflate (at its level 3) took 2.7 kB and 106 us;
# levels 1 and 2 take 42 us but store more than deflate did for two bodies in three
LEVEL = 3
UNREADABLE = "\x00unreadable body"  # what a body that does not unpack reads as (no JSON)
# Far more than any body (a decision is about 25 kB): a row edited to unpack to more (a frame
# saying it holds terabytes, a few kB of runs that expand 30,000 times) reads as UNREADABLE
# rather than taking the reader's memory
MOST_TEXT_BYTES = 16 * 2**20


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
    """The body as stored: its JSON text compressed with Zstandard against dictionary 1."""
    return bytes([ZSTD_1]) + _zstd().compressor.compress(text.encode())


def unpack(stored: bytes) -> str:
    """The body's JSON text, or UNREADABLE (whose hash is no entry's) if it was tampered with."""
    if not stored:
        return UNREADABLE
    try:
        if stored[0] == PLAIN:
            return stored.decode(errors="replace")
        if stored[0] == ZSTD_1:
            if not 0 <= zstandard.frame_content_size(stored[1:]) <= MOST_TEXT_BYTES:
                return UNREADABLE  # written with its size always: none given is an edit
            return _zstd().decompressor.decompress(stored[1:], allow_extra_data=False).decode()
        if stored[0] == DEFLATED_1:
            inflate = zlib.decompressobj(-15, zdict=dictionary(DICTIONARY_1))
            text = inflate.decompress(stored[1:], MOST_TEXT_BYTES)
            if not inflate.eof or inflate.unused_data or inflate.unconsumed_tail:
                return UNREADABLE
            return text.decode()
    except (zlib.error, zstandard.ZstdError, UnicodeDecodeError, MemoryError):
        pass
    return UNREADABLE


@cache
def _prepared() -> zstandard.ZstdCompressionDict:
    """Dictionary 1 with its tables made once for LEVEL (made again for each body, they would
    cost more than the body's compression)."""
    prepared = zstandard.ZstdCompressionDict(
        dictionary(DICTIONARY_1), dict_type=zstandard.DICT_TYPE_RAWCONTENT
    )
    prepared.precompute_compress(level=LEVEL)
    return prepared


class _Codec(threading.local):
    """A compressor and a decompressor for each thread (neither may be shared between threads):
    the event loop's, each worker thread's. Neither keeps anything of one body for the next."""

    def __init__(self) -> None:
        self.compressor = zstandard.ZstdCompressor(
            level=LEVEL,
            dict_data=_prepared(),
            write_checksum=False,  # the entry's hash covers the text
            write_content_size=True,
            write_dict_id=False,  # a raw dictionary has no id: the first byte names it
        )
        self.decompressor = zstandard.ZstdDecompressor(dict_data=_prepared())


@cache
def _zstd() -> _Codec:
    return _Codec()


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
