"""How a case file is cut into parts for the workers of a batch run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from api import batch_files
from api.batch_files import Part, RowGroupPart, TablePart, read_parts
from engine.table_input import cases_from_table


def cases_parquet(path: Path, rows: int, group_rows: int) -> Path:
    table = pa.table({"case_id": [f"C-{n}" for n in range(rows)], "channel": ["port_desk"] * rows})
    pq.write_table(table, path, row_group_size=group_rows)
    return path


def read_back(parts: Sequence[Part], rows: int) -> list[tuple[int, str]]:
    """(row number, case id) of every row, as the workers read them."""
    found = []
    for part in parts:
        for first, table in part.chunks(rows):
            ids = table.column("case_id").to_pylist()
            found += [(first + offset, case_id) for offset, case_id in enumerate(ids)]
    return found


def test_local_workers_read_small_row_groups_gathered_into_parts(tmp_path: Path) -> None:
    source = cases_parquet(tmp_path / "cases.parquet", 200, 20)
    parts = list(read_parts(source, 50, 2, local=True))
    assert all(isinstance(part, RowGroupPart) for part in parts)
    assert [(part.first, part.rows) for part in parts] == [(1, 60), (61, 60), (121, 60), (181, 20)]
    assert read_back(parts, 50) == [(n + 1, f"C-{n}") for n in range(200)]


def test_a_row_group_is_read_in_chunks_of_the_run(tmp_path: Path) -> None:
    source = cases_parquet(tmp_path / "cases.parquet", 200, 100)
    [first, second] = read_parts(source, 30, 2, local=True)
    assert [len(table) for _, table in first.chunks(30)] == [30, 30, 30, 10]
    assert read_back([first, second], 30) == [(n + 1, f"C-{n}") for n in range(200)]


def test_chunks_are_read_here_when_workers_cannot_share_the_file(tmp_path: Path) -> None:
    one_group = cases_parquet(tmp_path / "one.parquet", 200, 1_000)
    groups = cases_parquet(tmp_path / "groups.parquet", 200, 20)
    for source, local in ((one_group, True), (groups, False)):  # one part for two; a cluster
        parts = list(read_parts(source, 50, 2, local=local))
        assert all(isinstance(part, TablePart) for part in parts)
        assert [(part.first, part.rows) for part in parts] == [
            (1, 50),
            (51, 50),
            (101, 50),
            (151, 50),
        ]
        assert read_back(parts, 50) == [(n + 1, f"C-{n}") for n in range(200)]


def test_chunks_across_row_groups_validate_as_one(tmp_path: Path) -> None:
    """Enumerations are read as one dictionary per row group; a chunk spanning row groups is
    validated as one column all the same."""
    rows = 200
    table = pa.table(
        {
            "case_id": [f"C-{n}" for n in range(rows)],
            "channel": [
                ["port_desk", "ltsa_counter", "immigration_desk"][n // 20 % 3] for n in range(rows)
            ],
            "screened_at": ["2026-03-01T10:00:00+07:00"] * rows,
        }
    )
    pq.write_table(table, tmp_path / "cases.parquet", row_group_size=20)
    [part, *_] = read_parts(tmp_path / "cases.parquet", 50, 2, local=False)
    [(first, chunk)] = list(part.chunks(50))
    assert chunk.column("channel").num_chunks == 3  # parts of three row groups
    cases = cases_from_table(chunk, first)
    assert not cases.rejects
    assert list(cases.frame["channel"]) == table.column("channel").to_pylist()[:50]


def test_row_groups_too_large_to_hold_are_read_in_chunks_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = cases_parquet(tmp_path / "cases.parquet", 200, 100)
    monkeypatch.setattr(batch_files, "MAX_GROUP_ROWS", 99)
    parts = list(read_parts(source, 50, 2, local=True))
    assert all(isinstance(part, TablePart) for part in parts)
    assert read_back(parts, 50) == [(n + 1, f"C-{n}") for n in range(200)]
