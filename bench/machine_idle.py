"""What a pause costs this machine, with no Lindung code: the same small piece of Python timed
right after the last one and after an idle pause, asleep or spinning.

At 200 requests/s over two workers each worker idles about 10 ms between requests, and a desk
screening after such a pause costs about 2.3 times what it costs right after another
(bench/request_cost.py). This bench tells whether that is the machine or the service. Two
workloads take turns with every pause:

- arithmetic: a loop over a few numbers, which needs almost nothing from memory;
- a walk: reading one item of each of a few thousand objects spread over a heap of
  --megabytes (a screening reads Python objects, the rule engine's tables and SQLite's pages
  spread over a heap of a few hundred MB).

If the arithmetic takes as long after a pause as right after the last run while the walk takes
longer, the pause cost the processor's caches, not time spent running something else: what the
process had in its caches and address translations was gone when it woke. Spinning instead of
sleeping keeps this core busy with a loop that touches almost nothing, so whatever the walk
loses then is evicted by others (the host's other work), not by the core's own sleep.

The pauses take turns run by run, so that a drift in the machine's speed falls on all alike.
Each figure is the median of --runs runs.

Run: .venv/bin/python bench/machine_idle.py [--pauses 0,1,2,5,10,20] [--runs 300]
     [--megabytes 64] [--touches 4000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable


def arithmetic(rounds: int = 20_000) -> int:
    total = 0
    for number in range(rounds):
        total += number * number % 7
    return total


def heap(megabytes: int, touches: int, seed: int = 7) -> Callable[[], int]:
    """A walk over `touches` objects chosen at random from a heap of about `megabytes` MB."""
    # a list of 8 small ints takes about 120 bytes with its header and pointers
    objects = [list(range(8)) for _ in range(megabytes * 1_000_000 // 120)]
    chosen = random.Random(seed).sample(objects, touches)

    def walk() -> int:
        return sum(item[3] for item in chosen)

    return walk


def pause(seconds: float, spin: bool) -> None:
    if not seconds:
        return
    if not spin:
        time.sleep(seconds)
        return
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pauses", default="0,1,2,5,10,20", help="milliseconds")
    parser.add_argument("--runs", type=int, default=300, help="at each pause")
    parser.add_argument("--megabytes", type=int, default=64, help="of the walk's heap")
    parser.add_argument("--touches", type=int, default=4_000, help="objects read by a walk")
    args = parser.parse_args()
    pauses = [float(ms) / 1e3 for ms in args.pauses.split(",")]
    workloads = {"arithmetic": arithmetic, "walk": heap(args.megabytes, args.touches)}
    print(
        f"{args.runs} runs at each pause, pauses taking turns; the walk reads {args.touches:,} "
        f"objects of a {args.megabytes} MB heap"
    )
    # every pause asleep and spinning, all taking turns within each round
    conditions = [(gap, spin) for spin in (False, True) for gap in pauses if gap or not spin]
    taken: dict[tuple[str, float, bool], list[float]] = {
        (name, gap, spin): [] for name in workloads for gap, spin in conditions
    }
    for name, work in workloads.items():
        for _ in range(20):  # warm up
            work()
        for _ in range(args.runs):
            for gap, spin in conditions:
                pause(gap, spin)
                started = time.perf_counter()
                work()
                taken[name, gap, spin].append(time.perf_counter() - started)
    for name in workloads:
        first = statistics.median(taken[name, pauses[0], False])
        print(f"{name}: {first * 1e6:,.0f} us right after the last run; after a pause")
        for spin in (False, True):
            figures = ", ".join(
                f"{gap * 1e3:g} ms {statistics.median(taken[name, gap, spin]) / first:.2f}x"
                for gap in pauses
                if gap
            )
            print(f"  {'spinning' if spin else 'asleep':8s} of {figures}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
