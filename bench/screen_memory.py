"""Memory while screening 100,000 cases in one process (target: flat, no state leak).

Screens the cases one by one with the full default pack and the in-memory case history, and
prints the resident set size every 10,000 cases. "Flat" here means: after the first 10,000 cases
(warm-up: imports, compiled pack, caches), RSS grows by less than 10 MB over the next 90,000.
Run: .venv/bin/python bench/screen_memory.py [N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from desk_cases import desk_cases

from api import components
from api.settings import Settings
from engine.case_input import parse_case

ALLOWED_GROWTH_MB = 10.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    screener = components.build(Settings()).screener  # rules and the risk model, as served
    started, samples = time.perf_counter(), []
    for number, record in enumerate(desk_cases(count), start=1):
        screener.screen(parse_case(record))
        if number % 10_000 == 0:
            samples.append(rss_mb())
            print(f"{number:>7} cases  RSS {samples[-1]:7.1f} MB", flush=True)
    growth = samples[-1] - samples[0]
    seconds = time.perf_counter() - started
    print(
        f"{count} cases in {seconds:.1f} s; RSS growth after warm-up: {growth:+.1f} MB "
        f"(target < {ALLOWED_GROWTH_MB:.0f} MB)"
    )
    return 0 if growth < ALLOWED_GROWTH_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
