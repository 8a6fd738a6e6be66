from __future__ import annotations

import threading

import zstandard
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from api.storage import audit, database
from api.storage.audit_body import (
    DICTIONARY_1,
    LEVEL,
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
    with engine.connect() as connection:
        result = audit.verify(connection)
        stored = connection.execute(text("SELECT body FROM audit_log ORDER BY seq")).scalars()
        firsts = [bytes(body)[:1] for body in stored]
    assert result.ok, result.problems
    assert result.entries == 6
    assert firsts == [b"{"] * 5 + [bytes([ZSTD_1])]
