"""How large SQLite's write-ahead log grows under steady commits, with the server's
checkpoints (`WalCheckpoints`) copying it into the database meanwhile.

A writer commits 16 kB every 2 ms or so (a desk's screening, and more) until 12 MB were
written; the checkpoints run every 50 ms. The log file never shrinks, so its size at the end is
the most it held at once. Target: under a quarter of what was written (without the repeated
passes it grew with every commit). It depends on how much CPU the checkpoints' thread gets:
run it on a quiet machine, and again beside a load to see how it degrades.

Run: .venv/bin/python bench/sqlite_wal.py [--runs 5] [--megabytes 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.storage import database  # noqa: E402

NOTE = 16_000


def one_run(folder: Path, megabytes: float) -> tuple[float, float, float]:
    """(bytes written, the log's size at the end, seconds)."""
    engine = database.connect(f"sqlite:///{folder / 'wal.db'}", serving=True)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)"))
    checkpoints = database.WalCheckpoints(engine, seconds=0.05)
    checkpoints.start()
    written, started = 0, time.perf_counter()
    try:
        while written < megabytes * 1e6:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": b"x" * NOTE})
            written += NOTE
            time.sleep(0.002)
    finally:
        checkpoints.stop()
    seconds = time.perf_counter() - started
    log = (folder / "wal.db-wal").stat().st_size  # before the last connection closes it
    engine.dispose()
    return written, log, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--megabytes", type=float, default=12)
    args = parser.parse_args()
    shares = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as folder:
            written, log, seconds = one_run(Path(folder), args.megabytes)
        shares.append(log / written)
        print(
            f"run {run}: {written / 1e6:.1f} MB committed in {seconds:.2f} s, "
            f"log at most {log / 1e6:.2f} MB ({log / written:.1%} of it)"
        )
    print(
        f"log's most, as a share of what was written: median {statistics.median(shares):.1%}, "
        f"worst {max(shares):.1%} (target: under 25%)"
    )


if __name__ == "__main__":
    main()
