"""What an idle pause costs this machine, with no Lindung code: the same small piece of Python
timed right after the last run of it and after an idle pause, asleep or spinning.

At 200 requests/s over two workers, requests reach each worker about 10 ms apart, and a desk
screening after such a gap costs about 2.3 times what it costs right after another
(bench/request_cost.py). This bench tells whether the machine alone slows such work. Two
workloads of about the same length, each run right after an untimed run of itself, then the
pause, then timed:

- arithmetic: a loop on a few numbers, which reads almost nothing from memory;
- a walk: one item of each of --touches lists, scattered among the lists of a heap of
  --megabytes that stays alive; a list is a header and an array of items apart, so a walk
  reads about 2 x --touches cache lines (a screening reads Python objects, the rule engine's
  tables and SQLite's pages, scattered in the same way).

If the arithmetic takes as long after a pause while the walk takes longer, the processor runs
as fast as before, and what the walk had in the caches was lost while the process was idle.
Spinning instead of sleeping keeps the thread running a loop that reads almost nothing (unless
the scheduler runs something else on its core meanwhile: the involuntary switches say how
often): what the walk loses then, something other than its own sleep took.

Each condition (workload, pause, asleep or spinning) takes its turn in every round, so that a
drift in the machine's speed falls on all alike. For each it prints the median wall time, the
median time the thread ran (thread_time: what was not spent preempted), the time added by the
pause and, for the walk, per list read; and the share of timed runs during which the thread
was switched out involuntarily.

Run: .venv/bin/python bench/machine_idle.py [--pauses 1,2,5,10,20] [--runs 300]
     [--megabytes 64] [--touches 4000]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pausing import pause_for

WARM_UP = 20  # runs of each workload before any is timed
LIST_BYTES = 128  # a list of 8 small ints: its header and its item array, in pymalloc blocks


def arithmetic(rounds: int) -> Callable[[], int]:
    def loop() -> int:
        total = 0
        for number in range(rounds):
            total += number * number % 7
        return total

    return loop


def walk_over(
    megabytes: int, touches: int, seed: int = 7
) -> tuple[Callable[[], int], list[list[int]]]:
    """A walk reading one item of each of `touches` lists chosen at random among the lists of a
    heap of about `megabytes` MB; and the heap, which the caller keeps alive."""
    lists = [list(range(8)) for _ in range(megabytes * 1_000_000 // LIST_BYTES)]
    chosen = random.Random(seed).sample(lists, touches)

    def walk() -> int:
        return sum(item[3] for item in chosen)

    return walk, lists


@dataclass
class Taken:
    wall: list[float] = field(default_factory=list)
    ran: list[float] = field(default_factory=list)  # the thread's CPU time
    switched_out: int = 0  # timed runs with an involuntary context switch


def timed(work: Callable[[], int], gap: float, spin: bool, taken: Taken) -> None:
    work()  # right after a run of itself, whatever ran before
    pause_for(gap, spin)
    switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
    started, ran = time.perf_counter(), time.thread_time()
    work()
    taken.wall.append(time.perf_counter() - started)
    taken.ran.append(time.thread_time() - ran)
    taken.switched_out += resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw > switches


def seconds(work: Callable[[], int]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def milliseconds(text: str) -> list[float]:
    return [float(ms) / 1e3 for ms in text.split(",") if float(ms) > 0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pauses", type=milliseconds, default="1,2,5,10,20", help="ms, comma-separated"
    )
    parser.add_argument("--runs", type=int, default=300, help="of each condition")
    parser.add_argument("--megabytes", type=int, default=64, help="of the walk's heap")
    parser.add_argument("--touches", type=int, default=4_000, help="lists read by a walk")
    args = parser.parse_args()
    walk, heap = walk_over(args.megabytes, args.touches)
    workloads = {"walk": walk, "arithmetic": arithmetic(20_000)}
    for work in workloads.values():
        for _ in range(WARM_UP):
            work()
    # the arithmetic sized to the walk's time, so that a fixed cost of waking weighs alike
    ratio = statistics.median(seconds(walk) / seconds(workloads["arithmetic"]) for _ in range(9))
    rounds = max(100, round(20_000 * ratio))
    workloads["arithmetic"] = arithmetic(rounds)

    conditions = [(0.0, False)] + [(gap, spin) for spin in (False, True) for gap in args.pauses]
    taken = {(name, gap, spin): Taken() for name in workloads for gap, spin in conditions}
    gc.collect()
    for _ in range(args.runs):
        for gap, spin in random.sample(conditions, len(conditions)):
            for name, work in workloads.items():
                timed(work, gap, spin, taken[name, gap, spin])

    print(
        f"{args.runs} runs of each, all taking turns; the walk reads {args.touches:,} lists "
        f"scattered in {len(heap) * LIST_BYTES / 1e6:.0f} MB, the arithmetic {rounds:,} rounds"
    )
    for name in workloads:
        right_after = statistics.median(taken[name, 0.0, False].wall)
        print(f"{name}: {right_after * 1e6:,.0f} us right after the last run")
        for gap, spin in conditions[1:]:
            runs = taken[name, gap, spin]
            wall, ran = statistics.median(runs.wall), statistics.median(runs.ran)
            added = f"{(wall - right_after) * 1e6:+,.0f} us"
            if name == "walk":
                added += f", {(wall - right_after) / args.touches * 1e9:+,.0f} ns a list"
            print(
                f"  after {gap * 1e3:4g} ms {'spinning' if spin else 'asleep  '}: "
                f"{wall / right_after:.2f}x ({added}); ran {ran / right_after:.2f}x; "
                f"switched out in {runs.switched_out / args.runs:.0%} of runs"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
