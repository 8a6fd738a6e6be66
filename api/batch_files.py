"""Files of a batch run: cases in (CSV or Parquet, flat dotted columns), read in chunks so that
memory stays bounded whatever the input's size; decisions and rejects out."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from engine.errors import LindungError
from engine.rescoring import OUTPUT_COLUMNS
from engine.table_input import CODED_FIELDS, Reject

CODED = pa.dictionary(pa.int32(), pa.string())  # repeated texts: stored once per row group
OUTPUT_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("tier", CODED),
        ("risk_score", pa.float64()),
        ("flags", CODED),
        ("reasons_id", CODED),
        ("reasons_en", CODED),
    ]
)
TEXT_SCHEMA = pa.schema(
    [(f.name, pa.string() if f.type == CODED else f.type) for f in OUTPUT_SCHEMA]
)
assert tuple(OUTPUT_SCHEMA.names) == OUTPUT_COLUMNS
PARQUET_SUFFIXES = {".parquet", ".pq"}
# min and max per row group, for readers that skip row groups; reasons are prose, not filtered on
_WITH_STATISTICS = ["case_id", "tier", "risk_score", "flags"]
MADE_WITH = b"lindung.made_with"  # a Parquet output's metadata: its run's pack, model, severities


class BatchFileError(LindungError):
    """An input or output file that cannot be used."""


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise BatchFileError(f"{path.name}: expected a .csv or .parquet file")


def column_names(path: Path) -> list[str]:
    if file_format(path) == "parquet":
        return list(_parquet(path).schema_arrow.names)
    try:
        # utf-8-sig: Excel's "CSV UTF-8" starts with a byte order mark, not part of the first name
        with path.open(newline="", encoding="utf-8-sig") as stream:
            header = next(csv.reader(stream), None)
    except UnicodeDecodeError:
        raise BatchFileError(f"{path.name}: not UTF-8 text (save the CSV as UTF-8)") from None
    except csv.Error as error:
        raise BatchFileError(f"{path.name}: not a readable CSV file ({error})") from None
    if not header:
        raise BatchFileError(f"{path.name}: empty file (expected a header row)")
    return header


def count_rows(path: Path) -> int:
    """The number of data rows (for CSV, lines: a value holding a line break counts twice)."""
    if file_format(path) == "parquet":
        return int(_parquet(path).metadata.num_rows)
    lines, last = 0, b"\n"
    with path.open("rb") as stream:
        while block := stream.read(1 << 22):
            lines += block.count(b"\n")
            last = block[-1:]
    return max(0, lines + (last != b"\n") - 1)


def read_chunks(
    path: Path, rows: int, columns: Sequence[str] | None = None
) -> Iterator[tuple[int, pa.Table]]:
    """(number of the chunk's first row, chunk) for chunks of about `rows` rows, in order.

    CSV cells are read as text, as a JSON client would send them (a NIK keeps its leading
    zeros); only an empty cell is unknown. Parquet keeps its column types.
    """
    first = 1
    for table in (
        _parquet_chunks(path, rows, columns)
        if file_format(path) == "parquet"
        else (_csv_chunks(path, rows, columns))
    ):
        yield first, table
        first += table.num_rows


@dataclass(frozen=True)
class TablePart:
    """Rows read by the process that runs the job, sent whole to a worker."""

    first: int  # input row number of the first row
    table: pa.Table

    @property
    def rows(self) -> int:
        return int(self.table.num_rows)

    def chunks(self, rows: int) -> Iterator[tuple[int, pa.Table]]:
        yield self.first, self.table


@dataclass(frozen=True)
class RowGroupPart:
    """Consecutive row groups of a Parquet file that a worker on this machine reads itself, in
    chunks of a bounded size: nothing is decoded twice or copied between processes."""

    path: Path
    groups: tuple[int, ...]
    first: int
    rows: int

    def chunks(self, rows: int) -> Iterator[tuple[int, pa.Table]]:
        first = self.first
        batches = _case_file(self.path).iter_batches(batch_size=rows, row_groups=self.groups)
        for table in _in_chunks(batches, rows):
            yield first, table
            first += table.num_rows


Part = TablePart | RowGroupPart


# A worker holds the decisions of a whole part until it is done: parts of row groups up to
# pyarrow's default size (2**20 rows, some 40 MB of decisions) keep memory bounded
MAX_GROUP_ROWS = 1 << 20


def read_parts(path: Path, rows: int, workers: int, *, local: bool) -> Iterator[Part]:
    """The input in parts, in order. Workers on this machine (`local`) read a Parquet file's
    row groups themselves, gathered into parts of at least `rows` rows, when the file has a
    part for each of them and no row group over MAX_GROUP_ROWS; otherwise the parts are chunks
    of about `rows` rows read here."""
    if local and file_format(path) == "parquet":
        parts = _row_group_parts(path, rows)
        if len(parts) >= workers:
            yield from parts
            return
    for first, table in read_chunks(path, rows):
        yield TablePart(first, table)


def _row_group_parts(path: Path, rows: int) -> list[RowGroupPart]:
    metadata = _parquet(path).metadata
    parts: list[RowGroupPart] = []
    groups: list[int] = []
    first, held = 1, 0
    for group in range(metadata.num_row_groups):
        if metadata.row_group(group).num_rows > MAX_GROUP_ROWS:
            return []
        groups.append(group)
        held += metadata.row_group(group).num_rows
        if held >= rows or group == metadata.num_row_groups - 1:
            parts.append(RowGroupPart(path, tuple(groups), first, held))
            first, groups, held = first + held, [], 0
    return parts


def _parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise BatchFileError(f"{path.name}: not a readable Parquet file ({error})") from None


def _case_file(path: Path) -> pq.ParquetFile:
    """A case file whose enumeration columns are read as their dictionaries: a few distinct
    values and a code per row, which is how validation and the rules take them."""
    schema = _parquet(path).schema_arrow
    coded = [
        field.name
        for field in schema
        if field.name in CODED_FIELDS
        and (pa.types.is_string(field.type) or pa.types.is_large_string(field.type))
    ]
    return pq.ParquetFile(path, read_dictionary=coded)


def _parquet_chunks(path: Path, rows: int, columns: Sequence[str] | None) -> Iterator[pa.Table]:
    source = _case_file(path)
    wanted = None if columns is None else [c for c in columns if c in source.schema_arrow.names]
    yield from _in_chunks(source.iter_batches(batch_size=rows, columns=wanted), rows)


def _in_chunks(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Batches gathered into chunks of `rows` rows (the last one shorter). A Parquet reader
    ends a batch at each row group when it reads dictionaries; CSV blocks end anywhere."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        while held >= rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, rows)
            rest = table.slice(rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending)


def _csv_chunks(path: Path, rows: int, columns: Sequence[str] | None) -> Iterator[pa.Table]:
    header = column_names(path)
    wanted = header if columns is None else [c for c in columns if c in header]
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                strings_can_be_null=True,
                null_values=[""],
                include_columns=wanted,
            ),
        )
        yield from _in_chunks(reader, rows)
    except pa.ArrowInvalid as error:
        raise BatchFileError(f"{path.name}: not a readable CSV file ({_unquoted(error)})") from None


# Arrow quotes the row it could not split ("Expected 8 columns, got 10: <the row>"): a row may
# hold names and identity numbers, and this message is logged and stored as a job's error.
_QUOTED_ROW = re.compile(r"(Expected \d+ columns, got \d+): .*", re.DOTALL)


def _unquoted(error: Exception) -> str:
    return _QUOTED_ROW.sub(r"\1 in a row", str(error))


class DecisionWriter:
    """Writes decision chunks to a file that appears under its name only once complete."""

    def __init__(self, path: Path, made_with: Mapping[str, Any] | None = None) -> None:
        """`made_with` (the run's pack, model and rule severities) is recorded in a Parquet
        file; a CSV file has no place for it."""
        self.path = path
        self.format = file_format(path)
        self.partial = path.with_name(path.name + ".partial")
        if self.format == "parquet":
            self._schema = OUTPUT_SCHEMA
            if made_with is not None:
                self._schema = OUTPUT_SCHEMA.with_metadata({MADE_WITH: json.dumps(made_with)})
            self._writer: Any = pq.ParquetWriter(
                self.partial, self._schema, write_statistics=_WITH_STATISTICS
            )
        else:
            self._schema = TEXT_SCHEMA
            self._writer = pacsv.CSVWriter(self.partial, TEXT_SCHEMA)

    def write(self, columns: dict[str, pa.Array]) -> None:
        table = pa.table({name: columns[name] for name in OUTPUT_COLUMNS})
        self._writer.write_table(table.cast(self._schema))

    def finish(self) -> None:
        self._writer.close()
        self.partial.replace(self.path)

    def abandon(self) -> None:
        self._writer.close()
        self.partial.unlink(missing_ok=True)


def made_with(path: Path) -> dict[str, Any] | None:
    """What a Parquet output of `lindung rescore` records it was made with (None: a CSV file,
    or one written before outputs recorded it)."""
    if file_format(path) != "parquet":
        return None
    try:
        found = json.loads((pq.read_schema(path).metadata or {})[MADE_WITH])
    except (OSError, pa.ArrowInvalid, KeyError, ValueError):
        return None
    return found if isinstance(found, dict) else None


class RejectWriter:
    """Rejected rows as CSV: row (1-based, the header not counted), column, problem."""

    HEADER = ("row", "column", "problem")

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self._stream: IO[str] = path.open("w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._stream)
        self._csv.writerow(self.HEADER)

    def write(self, rejects: Sequence[Reject]) -> None:
        self._csv.writerows((r.row, r.field, r.problem) for r in rejects)
        self.count += len({r.row for r in rejects})

    def close(self) -> None:
        self._stream.close()
