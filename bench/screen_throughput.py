"""Throughput and latency of screening with the full default pack.

1. `lindung screen` as a desk or script runs it (a separate process): cases/s with start-up
   excluded, by timing N cases and 1 case and dividing the difference.
2. In process: latency per case (validate + enrich + rules + decision), p50 / p99 / max.
3. In process again, one case every 5 ms (as each of two server workers sees them at 200
   requests/s): the same work on cold caches. On a shared 2-core VM this took twice the CPU
   of back-to-back cases, which is why a server's latency is not the in-process figure.

Targets (issue 2): >= 1,000 cases/s through `lindung screen`; p99 < 5 ms per case in process.
Run: .venv/bin/python bench/screen_throughput.py [N]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from desk_cases import desk_cases

from api import components
from api.settings import Settings
from engine.case_input import parse_case

LINDUNG = str(Path(sys.executable).parent / "lindung")


def cli_seconds(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run([LINDUNG, "screen", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    cases = list(desk_cases(count))
    with tempfile.TemporaryDirectory() as folder:
        many, one = Path(folder, "many.jsonl"), Path(folder, "one.jsonl")
        many.write_text("\n".join(json.dumps(c) for c in cases) + "\n", encoding="utf-8")
        one.write_text(json.dumps(cases[0]) + "\n", encoding="utf-8")
        startup = min(cli_seconds(one) for _ in range(3))
        total = cli_seconds(many)
    cli_rate = (count - 1) / (total - startup)

    screener = components.build(Settings()).screener  # rules and the risk model, as served
    latencies, _cpu = timed(screener, cases)
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    spaced, spaced_cpu = timed(screener, cases[:SPACED_CASES], gap=SPACED_GAP)

    print(
        f"cases: {count} (full default pack, {len(screener.pack.rules)} rules on durable-rules, "
        f"risk model {screener.scorer.version if screener.scorer else None})"
    )
    print(
        f"lindung screen: start-up {startup:.2f} s, {total:.2f} s in all, "
        f"{cli_rate:,.0f} cases/s with start-up excluded (target >= 1,000)"
    )
    print(
        f"in process: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {latencies[-1]:.3f} ms "
        f"per case (target p99 < 5 ms); {1000 / statistics.fmean(latencies):,.0f} cases/s"
    )
    print(
        f"in process, one case every {SPACED_GAP * 1000:g} ms: p50 {statistics.median(spaced):.3f}"
        f" ms, p99 {spaced[int(len(spaced) * 0.99) - 1]:.3f} ms, CPU {spaced_cpu:.3f} ms per case"
        f" (back to back: {statistics.fmean(latencies):.3f} ms)"
    )
    return 0 if cli_rate >= 1_000 and p99 < 5 else 1


SPACED_CASES = 1_000
SPACED_GAP = 0.005  # seconds


def timed(
    screener: Any, records: list[dict[str, Any]], gap: float = 0
) -> tuple[list[float], float]:
    """Sorted milliseconds to validate and screen each record, and CPU milliseconds per record
    (sleeping `gap` seconds between records, which takes no CPU)."""
    latencies, cpu = [], time.process_time()
    for record in records:
        started = time.perf_counter()
        screener.screen(parse_case(record))
        latencies.append((time.perf_counter() - started) * 1000)
        if gap:
            time.sleep(gap)
    return sorted(latencies), (time.process_time() - cpu) / len(records) * 1000


if __name__ == "__main__":
    raise SystemExit(main())
