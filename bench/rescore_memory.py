"""Peak memory of `lindung rescore` on 10 million rows (issue 5 target: under 2 GB).

Writes the rows to a Parquet file, runs the real command, and samples the resident memory of
the command and all its worker processes together every 0.1 s; the peak of that sum is the
figure (each process alone would understate it).

Run: .venv/bin/python bench/rescore_memory.py [ROWS] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from case_table import write_cases

LINDUNG = str(Path(sys.executable).parent / "lindung")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/statm") as stream:
                total += int(stream.read().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as stream:
                    pending += [int(child) for child in stream.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="?", type=int, default=10_000_000)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--chunk-rows", type=int)
    args = parser.parse_args()
    environment = dict(os.environ)
    if args.model_dir:
        environment["LINDUNG_MODEL_DIR"] = str(args.model_dir)
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "cases.parquet", Path(folder) / "decisions.parquet"
        started = time.perf_counter()
        write_cases(source, args.rows)
        print(
            f"wrote {args.rows:,} rows ({source.stat().st_size / 1e6:,.0f} MB Parquet) in "
            f"{time.perf_counter() - started:.0f} s"
        )
        command = [LINDUNG, "rescore", str(source), "--out", str(out)]
        if args.chunk_rows:
            command += ["--chunk-rows", str(args.chunk_rows)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, env=environment, text=True)
        peak = 0
        while process.poll() is None:
            peak = max(peak, tree_rss(process.pid))
            time.sleep(0.1)
        output = process.stdout.read() if process.stdout else ""
        if process.returncode:
            print(f"lindung rescore failed with status {process.returncode}")
            return 1
        summary = json.loads(output)
        written = out.stat().st_size / 1e6
    print(
        f"lindung rescore: {summary['rescored']:,} rows in {summary['seconds']:.0f} s "
        f"({summary['cases_per_second']:,} cases/s, {summary['workers']} workers), "
        f"{written:,.0f} MB written"
    )
    print(
        f"peak resident memory, command and workers together: {peak / 2**30:.2f} GB (target < 2 GB)"
    )
    return 0 if peak < 2 * 2**30 else 1


if __name__ == "__main__":
    raise SystemExit(main())
