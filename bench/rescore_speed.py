"""Speed of batch rescoring (issue 5 targets), in one run:

1. the online path: cases one by one through `Screener.screen` (durable-rules and the model);
2. batch in process, one core: validate + enrich + rules + score + top reasons on one chunk;
3. `lindung rescore`'s engine on every core, end to end: read Parquet, two passes (escorts,
   then decisions), write Parquet.
Targets: batch >= 300,000 cases/s on this 2-core machine, and >= 50 times the online path.

Run: .venv/bin/python bench/rescore_speed.py [ROWS] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from case_table import case_table, write_cases

from api import components
from api.cli_common import settings_from_env
from api.rescore import LocalEngine, Rescorers, RunFiles, rescore_file
from engine.case_input import parse_case
from engine.pseudonym import Pseudonymiser
from engine.rescoring import Rescorer
from engine.table_input import cases_from_table

ONLINE_CASES = 2_000
CHUNK = 100_000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rows", nargs="?", type=int, default=2_000_000)
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    settings = settings_from_env(model_dir=args.model_dir)
    parts = components.build(settings)
    rescorer = Rescorer(
        parts.pack,
        pseudonymiser=Pseudonymiser(settings.pseudonym_key.get_secret_value()),
        registry=parts.registry,
        scorer=parts.model,
    )

    sample = case_table(ONLINE_CASES, seed=11)
    records = [{k: v for k, v in row.items() if v is not None} for row in sample.to_pylist()]
    cases = [parse_case(record) for record in records]
    started = time.perf_counter()
    for case in cases:
        parts.screener.screen(case)
    online = ONLINE_CASES / (time.perf_counter() - started)

    chunk = case_table(CHUNK, seed=12)
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        checked = cases_from_table(chunk, 1)
        rescorer.rescore(checked.frame, np.full(len(checked.rows), np.nan))
        timings.append(time.perf_counter() - started)
    one_core = CHUNK / min(timings)

    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "cases.parquet", Path(folder) / "decisions.parquet"
        write_cases(source, args.rows)
        work = Rescorers(rescorer)
        engine = LocalEngine(work, args.workers)
        try:
            summary = rescore_file(RunFiles(source, out), engine, work)
        finally:
            engine.close()
    batch = summary.rescored / summary.seconds
    print(f"online, one case at a time: {online:,.0f} cases/s ({ONLINE_CASES:,} cases)")
    print(
        f"batch in process, one core, {CHUNK:,}-row chunk (validate + decide + reasons): "
        f"{one_core:,.0f} cases/s"
    )
    print(
        f"lindung rescore, {args.rows:,} rows Parquet to Parquet, {engine.workers} workers: "
        f"{summary.seconds:.1f} s, {batch:,.0f} cases/s (target >= 300,000); "
        f"{batch / online:,.0f} times the online path (target >= 50)"
    )
    return 0 if batch >= 300_000 and batch >= 50 * online else 1


if __name__ == "__main__":
    raise SystemExit(main())
