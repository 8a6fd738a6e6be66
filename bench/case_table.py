"""Synthetic desk cases as flat columns, drawn with numpy: millions of rows in seconds, for the
batch benchmarks (not for training). The mix follows bench/desk_cases.py.

Run: .venv/bin/python bench/case_table.py ROWS OUT.parquet|OUT.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from desk_cases import DESTINATIONS, EXITS, OCCUPATIONS, PURPOSES, VISAS  # the same mix

PROVINCES = ["NTB", "NTT", "Jawa Timur", "Jawa Barat", "Jawa Tengah", "Lampung"]
# A case a minute, the last one at END: a screening time ahead of the clock is refused, so the
# rows of a long table reach back in time (10 million: to 2007) rather than ahead.
END = np.datetime64("2026-11-01T00:00:00")


def case_table(rows: int, seed: int = 7, first: int = 0, total: int | None = None) -> pa.Table:
    """Rows `first` to `first + rows` of a table of `total` rows (default: these are its last)."""
    rng = np.random.default_rng(seed + first)
    n = rows
    start = END - np.timedelta64((first + rows if total is None else total) - 1, "m")

    def pick(values: list[str], known: float = 1.0) -> pa.Array:
        chosen = np.array(values, dtype=object)[rng.integers(0, len(values), n)]
        return pa.array(chosen, pa.string(), mask=rng.random(n) >= known)

    def flag(chance: float, known: float = 0.8) -> pa.Array:
        values = np.where(rng.random(n) < chance, "true", "false").astype(object)
        return pa.array(values, pa.string(), mask=rng.random(n) >= known)

    worker = rng.random(n) < 0.5
    exits = rng.integers(0, len(EXITS), n)
    number = np.arange(first, first + n)
    minutes = start + number.astype("timedelta64[m]")
    purposes = np.array(PURPOSES, dtype=object)[rng.integers(0, len(PURPOSES), n)]
    purposes[worker] = "work"
    only_workers = ~worker

    def for_workers(array: pa.Array) -> pa.Array:
        return pa.array(
            array.to_numpy(zero_copy_only=False),
            pa.string(),
            mask=np.asarray(array.is_null()) | only_workers,
        )

    escorts = np.char.add("+62 812 ", rng.integers(0, 20_000, n).astype(str).astype(object))
    licences = np.array([f"SIP3MI-{number:04d}-2021" for number in range(1, 31)], dtype=object)
    licence_of = licences[rng.integers(0, len(licences), n)]
    columns = {
        "case_id": pa.array(np.char.add("B-", number.astype(str)).astype(object), pa.string()),
        "channel": pick(["immigration_desk", "port_desk", "ltsa_counter"]),
        "screened_at": pa.array(
            np.datetime_as_string(minutes, unit="s").astype(object) + "+07:00", pa.string()
        ),
        "person.passport_no": pa.array(
            np.char.add("C", rng.integers(0, 10**7, n).astype(str)).astype(object), pa.string()
        ),
        "person.age": pa.array(rng.integers(15, 56, n).astype(str).astype(object), pa.string()),
        "person.sex": pick(["F", "M"]),
        "person.origin_province": pick(PROVINCES),
        "person.prior_postponed_departure": flag(0.05),
        "travel.exit_point": pa.array(np.array([e[0] for e in EXITS], object)[exits], pa.string()),
        "travel.exit_point_type": pa.array(
            np.array([e[1] for e in EXITS], object)[exits], pa.string()
        ),
        "travel.mode": pa.array(np.array([e[2] for e in EXITS], object)[exits], pa.string()),
        "travel.destination_country": pick(DESTINATIONS),
        "travel.ticket": pick(["return", "one_way"], 0.8),
        "travel.ticket_paid_by": pick(["self", "family", "agency", "sponsor"], 0.8),
        "travel.declared_purpose": pa.array(purposes, pa.string()),
        "travel.visa_type": pick(VISAS, 0.8),
        "travel.documents_held_by_other": flag(0.03),
        "interview.can_explain_trip": flag(0.9, 0.6),
        "placement.scheme": for_workers(pick(["p3mi", "self_placed", "none"], 0.8)),
        "placement.agency_license_no": for_workers(
            pa.array(licence_of, pa.string(), mask=rng.random(n) >= 0.5)
        ),
        "placement.occupation": for_workers(pick(OCCUPATIONS)),
        "placement.offered_monthly_salary_usd": for_workers(
            pick(["400", "700", "1500", "3000"], 0.8)
        ),
        "placement.documents.work_contract": for_workers(flag(0.7)),
        "placement.documents.bpjs": for_workers(flag(0.7)),
        "recruitment.channel": for_workers(
            pick(["licensed_agency", "individual_broker", "social_media"], 0.8)
        ),
        "recruitment.fee_paid_idr": for_workers(pick(["0", "0", "5000000", "15000000"], 0.8)),
        "links.escort_ref": pa.array(escorts, pa.string(), mask=rng.random(n) >= 0.1),
    }
    return pa.table(columns)


def write_cases(path: Path, rows: int, seed: int = 7, chunk: int = 500_000) -> None:
    """`rows` cases into a Parquet (row groups of `chunk`) or CSV file, a chunk at a time."""
    writer = None
    for first in range(0, rows, chunk):
        table = case_table(min(chunk, rows - first), seed, first, total=rows)
        if writer is None:
            writer = (
                pq.ParquetWriter(path, table.schema)
                if path.suffix == ".parquet"
                else pacsv.CSVWriter(path, table.schema)
            )
        writer.write_table(table)
    if writer is not None:
        writer.close()


if __name__ == "__main__":
    write_cases(Path(sys.argv[2]), int(sys.argv[1]))
