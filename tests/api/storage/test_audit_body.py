from __future__ import annotations

import struct
import threading
import zlib

import zstandard
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.storage import audit, database
from api.storage.audit_body import (
    DICTIONARY_1,
    LEVEL,
    MOST_TEXT_BYTES,
    UNREADABLE,
    ZSTD_1,
    dictionary,
    pack,
    unpack,
)
from tests.factories import tourist

# Deflated with dictionary 1 when it was made: what was written must read in every release.
WRITTEN_2026 = (
    b"\x01\x03\xc6\x0f\xd6\x93\xf9\x8c\xf4L\x81\xfd\\4g!\r\x8b\x84\xf8\xea\x1a*\xd5\x02\x00"
)
ITS_TEXT = '{"explanation":{"base":-2.5},"tier":"clear","case_id":"BTM-1"}'


def fresh(body: str) -> bytes:
    """`body` packed by a compressor of its own, made for it alone."""
    raw = zstandard.ZstdCompressionDict(
        dictionary(DICTIONARY_1), dict_type=zstandard.DICT_TYPE_RAWCONTENT
    )
    compressor = zstandard.ZstdCompressor(
        level=LEVEL, dict_data=raw, write_checksum=False, write_dict_id=False
    )
    return bytes([ZSTD_1]) + compressor.compress(body.encode())


def test_a_body_reads_back_as_it_was_written() -> None:
    body = '{"case_id":"BTM-2026-0001","reason":{"id":"Paspor dipegang pihak ketiga","en":"é"}}'
    assert pack(body)[0] == ZSTD_1
    assert unpack(pack(body)) == body
    assert unpack(WRITTEN_2026) == ITS_TEXT  # deflated before zstd


def test_each_body_packs_to_the_bytes_it_packs_to_alone_in_any_thread() -> None:
    # every body from the thread's one compressor: what one body leaves must not reach the next
    bodies = [ITS_TEXT, '{"case_id":"A"}', ITS_TEXT.replace("clear", "urgent"), ITS_TEXT]
    packed = [pack(body) for body in bodies]
    assert packed[0] == packed[3]
    assert packed == [fresh(body) for body in bodies]
    in_threads: list[list[bytes]] = [[] for _ in range(4)]
    threads = [
        threading.Thread(target=lambda mine=mine: mine.extend(pack(body) for body in bodies))
        for mine in in_threads
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert in_threads == [packed] * 4


def test_a_body_stored_before_packing_reads_as_it_is() -> None:
    assert unpack(ITS_TEXT.encode()) == ITS_TEXT


def test_bytes_that_are_no_body_read_as_unreadable() -> None:
    packed = pack(ITS_TEXT)
    for stored in (
        b"",
        b"\x02abc",
        b"\x03" + packed[1:],
        packed[:-3],
        packed + b"\x00",
        packed + packed[1:],
        WRITTEN_2026[:-3],
        WRITTEN_2026 + b"\x00",
        b"\x01\xff\xff",
    ):
        assert unpack(stored) == UNREADABLE, stored


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(database.MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def verified(engine: Engine) -> tuple[audit.Verification, list[bytes]]:
    """The log's verification, and each entry's first stored byte (which format), in order."""
    with engine.connect() as connection:
        result = audit.verify(connection)
        stored = connection.execute(text("SELECT body FROM audit_log ORDER BY seq")).scalars()
        return result, [bytes(body)[:1] for body in stored]


def test_a_log_goes_back_to_text_and_forward_again_and_verifies_intact(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    for n in range(3):
        answer = client.post("/v1/screenings", json=tourist(case_id=f"T-{n}"), headers=desk)
        assert answer.status_code == 201
    migrate(engine, "0003", down=True)
    with engine.connect() as connection:
        bodies = connection.execute(text("SELECT body FROM audit_log")).scalars().all()
    assert len(bodies) == 5  # the pack pinned at start, the key and three decisions
    assert all(isinstance(body, str) and body.startswith("{") for body in bodies)

    migrate(engine, "head")  # as a database of release 0003 upgrades: its entries stay text
    answer = client.post("/v1/screenings", json=tourist(case_id="T-after"), headers=desk)
    assert answer.status_code == 201
    result, firsts = verified(engine)
    assert result.ok, result.problems
    assert result.entries == 6
    assert firsts == [b"{"] * 5 + [bytes([ZSTD_1])]


def test_a_log_goes_back_to_deflate_for_earlier_releases_and_forward_again_intact(
    client: TestClient, desk: dict[str, str], engine: Engine
) -> None:
    for n in range(2):
        answer = client.post("/v1/screenings", json=tourist(case_id=f"T-{n}"), headers=desk)
        assert answer.status_code == 201
    migrate(engine, "0011", down=True)  # as a release before zstd reads bodies: deflated
    result, firsts = verified(engine)
    assert result.ok, result.problems
    assert firsts == [bytes([DICTIONARY_1])] * 4

    migrate(engine, "head")
    answer = client.post("/v1/screenings", json=tourist(case_id="T-after"), headers=desk)
    assert answer.status_code == 201
    result, firsts = verified(engine)
    assert result.ok, result.problems
    assert firsts == [bytes([DICTIONARY_1])] * 4 + [bytes([ZSTD_1])]


def header(size: int) -> bytes:
    """A Zstandard frame's header saying it holds `size` bytes (one segment, 8-byte size)."""
    return b"\x28\xb5\x2f\xfd\xe0" + struct.pack("<Q", size)


def runs(size: int) -> bytes:
    """A Zstandard frame of `size` spaces in run-length blocks: 4 bytes a 128 kB block."""
    frame = header(size)
    block, left = 128 * 1024, size
    while left:
        part = min(block, left)
        left -= part
        frame += ((1 if not left else 0) | (1 << 1) | (part << 3)).to_bytes(3, "little") + b" "
    return frame


def test_a_body_edited_to_unpack_to_more_than_any_body_reads_as_unreadable() -> None:
    # a header claiming 32 TB, then runs of spaces: 16 MB and 4 kB of runs past it
    assert unpack(bytes([ZSTD_1]) + header(2**45)) == UNREADABLE
    assert unpack(bytes([ZSTD_1]) + runs(MOST_TEXT_BYTES)) == " " * MOST_TEXT_BYTES
    assert unpack(bytes([ZSTD_1]) + runs(MOST_TEXT_BYTES + 4096)) == UNREADABLE
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=dictionary(DICTIONARY_1))
    deflated = deflate.compress(b" " * (MOST_TEXT_BYTES + 1)) + deflate.flush()
    assert unpack(bytes([DICTIONARY_1]) + deflated) == UNREADABLE
