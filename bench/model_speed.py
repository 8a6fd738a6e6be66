"""Speed of the risk model (issue 3 targets).

1. Score + explanation per case, in process, on an enriched one-row frame (target < 0.2 ms).
2. Batch score + explanation on one core (target >= 300,000 cases/s).
3. Training on 1,000,000 reference rows: generation, enrichment, fit (target < 2 minutes).
Run: .venv/bin/python bench/model_speed.py [TRAINING_ROWS]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the targets are stated

from api.settings import Settings
from engine.registry import AgencyRegistry
from engine.rule_pack import load_rule_pack
from models import training


def main() -> int:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    settings = Settings()
    pack = load_rule_pack(settings.rule_pack)
    registry = AgencyRegistry.from_csv(settings.registry)

    started = time.perf_counter()
    data = training.reference_data(rows, training.REFERENCE_SEED, pack, registry)
    prepared = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        trained = training.train_and_save(
            data, Path(folder), capacity=training.Capacity(), pack=pack, source={"data": "bench"}
        )
        fitted = time.perf_counter() - started

    batch = {name: column[:200_000] for name, column in data.facts.items()}
    started = time.perf_counter()
    scored = trained.score_frame(batch)
    batch_seconds = time.perf_counter() - started
    assert scored.contributions.shape == (200_000, len(trained.features))

    one_rows = [
        {name: column[i : i + 1] for name, column in data.facts.items()} for i in range(2_000)
    ]
    timings = []
    for facts in one_rows:
        started = time.perf_counter()
        trained.score_frame(facts)
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()

    total = prepared + fitted
    print(
        f"training on {rows:,} rows: generate + enrich {prepared:.1f} s, fit + save "
        f"{fitted:.1f} s, {total:.1f} s in all (target < 120 s)"
    )
    print(
        f"batch score + explanation: {200_000 / batch_seconds:,.0f} cases/s on one core "
        f"(target >= 300,000)"
    )
    print(
        f"one case, score + explanation: p50 {statistics.median(timings):.3f} ms, "
        f"p99 {timings[int(len(timings) * 0.99)]:.3f} ms (target < 0.2 ms)"
    )
    ok = total < 120 and 200_000 / batch_seconds >= 300_000 and statistics.median(timings) < 0.2
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
