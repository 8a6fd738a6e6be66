"""One server worker's latency at a fixed rate, in process: where the p99 comes from.

Desk screenings arrive at the whole ASGI app (no HTTP, no load generator) as a Poisson process
at --rate a second, one worker's share of the target (200 a second over two workers: 100). Each
request's latency is timed from the moment it was due to arrive, not from when the event loop
got round to it: a loop busy with other requests delays the arrivals too, and timing from
there would hide the queueing (coordinated omission).

For the median requests and for the slowest 1% it prints the wall time and the CPU time the
process used meanwhile. Where the slow ones' CPU time falls well short of their wall time, the
process was not running for the rest: it waited on the machine (other processes, the host's
other tenants), not on its own work. Over HTTP (bench/http_load.py) one worker at 100 a second
has about the same tail, so this reproduces it without wrk, uvicorn or the network.

Run: .venv/bin/python bench/poisson_trace.py [--model-dir /tmp/md] [--rate 100]
     [--requests 3000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from request_cost import WARM_UP, bench_settings, desk_key, new_cases, screen_once

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from api.settings import Settings  # noqa: E402


async def trace(args: argparse.Namespace, settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        _caller, key = desk_key(app, "poisson-trace")
        cycle = new_cases()
        for _ in range(WARM_UP):
            await screen_once(app, next(cycle), key)
        gc.collect()
        taken: list[tuple[float, float]] = []  # (wall from the due time, process CPU) each

        async def screen(body: bytes, due: float) -> None:
            cpu = time.process_time()
            if await screen_once(app, body, key) != 201:
                raise SystemExit("a screening was not stored")
            taken.append((time.perf_counter() - due, time.process_time() - cpu))

        arrivals = random.Random(args.seed)
        due = time.perf_counter()
        requests = []
        for _ in range(args.requests):
            due += arrivals.expovariate(args.rate)
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            requests.append(asyncio.ensure_future(screen(next(cycle), due)))
        await asyncio.gather(*requests)

    taken.sort()
    count = len(taken)
    walls = [wall for wall, _cpu in taken]
    print(
        f"{count:,} screenings arriving at {args.rate:g}/s (Poisson), one worker in process:\n"
        f"  latency from arrival: p50 {walls[count // 2] * 1e3:.2f} ms, "
        f"p90 {walls[int(count * 0.9)] * 1e3:.2f} ms, p99 {walls[int(count * 0.99)] * 1e3:.2f} "
        f"ms, max {walls[-1] * 1e3:.2f} ms"
    )
    for label, part in (
        ("middle 10%", taken[int(count * 0.45) : int(count * 0.55)]),
        ("slowest 1%", taken[int(count * 0.99) :]),
    ):
        wall = sum(w for w, _ in part) / len(part)
        cpu = sum(c for _, c in part) / len(part)
        print(
            f"  {label}: {wall * 1e3:.2f} ms on average, of which the process ran "
            f"{cpu * 1e3:.2f} ms ({cpu / wall:.0%}); off the CPU {(wall - cpu) * 1e3:.2f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a trained model (default: train one)")
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--rate", type=float, default=100.0, help="arrivals a second")
    parser.add_argument("--requests", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=7, help="of the arrival times")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lindung-poisson-trace-") as folder:
        uvloop.run(trace(args, bench_settings(args, Path(folder))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
