"""What one desk screening costs inside the server, with no HTTP and no load generator: the
whole ASGI app (middleware, key check, parsing, screening, storing, the answer) called in process,
one request at a time, back to back and then after a pause before each request.

At a fixed rate a worker idles between requests, and on this machine a request that follows an
idle gap costs far more than one that follows another request. Most likely its code and data are
no longer in the processor's caches: the cost grows with the gap even while the core is kept
busy, so something else on the host evicts them. That cold cost, not the back-to-back one, is
what latency at 200 requests/s is built on. The pause is spent asleep (as a worker waits on its
sockets) or, with --spin, busy on this core (nothing of this process runs meanwhile, so a slower
request afterwards is not the process's own doing).

The pauses take turns request by request, so that a drift in the machine's speed (its
neighbours' load) falls on all of them alike. For each pause it prints the CPU time per
request (the process's from the end of the pause to the answer, so the SQLite checkpoints'
thread counts while a request runs) and latency percentiles (time inside the app only, the
pause excluded). With --web-layer-only, every request is answered with one decision made
beforehand: the figures are then the web layer's alone (middleware, key, reading the case,
the answer), without screening or storing.

Run: .venv/bin/python bench/request_cost.py [--model-dir /tmp/md] [--requests 1000]
     [--pauses 0,2,5,10,20] [--spin] [--database-url URL] [--web-layer-only]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import uvloop
from desk_cases import desk_cases, sent_once
from fastapi import FastAPI
from pausing import pause_for
from starlette.types import ASGIApp, Message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import create_app  # noqa: E402
from api.service import Service  # noqa: E402
from api.settings import Settings  # noqa: E402
from api.storage import database, keys  # noqa: E402
from api.storage.keys import Caller  # noqa: E402
from engine.case import Case  # noqa: E402
from engine.case_input import parse_case  # noqa: E402
from engine.decision import Decision  # noqa: E402

WARM_UP = 300  # requests before any figure is taken


def scope_for(body: bytes, key: str) -> dict[str, Any]:
    headers = [
        (b"host", b"bench"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/screenings",
        "raw_path": b"/v1/screenings",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def screen_once(app: ASGIApp, body: bytes, key: str) -> int:
    """POST one case to the app; the answer's status."""
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope_for(body, key), receive, send)
    return status


async def answer_without_screening(service: Service, caller: Caller, body: bytes) -> None:
    """From now on, every request is answered with one decision screened here, and nothing
    more is screened or stored: what remains is the web layer's work (middleware, the key,
    reading and validating the case, the answer)."""
    decisions = await service.screen_together([parse_case(orjson.loads(body))], caller)

    async def the_same(cases: Sequence[Case], caller: Caller) -> list[Decision]:
        return decisions

    service.screen_together = the_same  # type: ignore[method-assign]


def desk_key(app: FastAPI, bench: str) -> tuple[Caller, str]:
    """A new desk key of the started app's database, and its secret."""
    with database.transaction(app.state.service.engine) as connection:
        # a name of its own: live keys' names differ, and --database-url may be used again
        name = f"bench-{bench} {uuid.uuid4().hex[:8]}"
        return keys.create(connection, "desk", name, datetime.now(UTC))


def new_cases() -> Iterator[bytes]:
    """Desk cases' JSON without end, each a case of its own: a case sent again would be a
    retry, answered from storage."""
    bodies = [orjson.dumps(case) for case in desk_cases(2_000)]
    return (sent_once(body, serial) for serial, body in enumerate(itertools.cycle(bodies)))


def bench_settings(args: argparse.Namespace, place: Path) -> Settings:
    """--database-url (default: a new SQLite file in `place`) and --model-dir (default: one
    trained in `place` on first use)."""
    return Settings(
        database_url=args.database_url or f"sqlite:///{place / 'lindung.db'}",
        model_dir=args.model_dir or place / "model",
        pack_library=place / "packs",
        model_library=place / "models",
        job_dir=place / "jobs",
    )


async def measure(args: argparse.Namespace, settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        caller, key = desk_key(app, "request-cost")
        cycle = new_cases()
        if args.web_layer_only:
            await answer_without_screening(app.state.service, caller, next(cycle))

        async def screen_next() -> None:
            status = await screen_once(app, next(cycle), key)
            if status != 201:
                raise SystemExit(f"a screening answered {status}")

        for _ in range(WARM_UP):
            await screen_next()
        # The pauses take turns, request by request: this machine's speed drifts by half
        # within a minute (its neighbours' load), and a block of requests per pause would
        # compare one minute with another.
        latencies: dict[float, list[float]] = {pause: [] for pause in args.pauses}
        cpu: dict[float, float] = dict.fromkeys(args.pauses, 0.0)
        print(
            f"{args.requests:,} requests at each pause, the pauses taking turns, "
            f"{'spinning' if args.spin else 'asleep'}:"
        )
        gc.collect()
        for _ in range(args.requests):
            for pause_ms in args.pauses:
                pause_for(pause_ms / 1e3, args.spin)
                started, started_cpu = time.perf_counter(), time.process_time()
                await screen_next()
                cpu[pause_ms] += time.process_time() - started_cpu
                latencies[pause_ms].append(time.perf_counter() - started)
        first = None  # the first pause's p50, which the others are compared with
        for pause_ms in args.pauses:
            taken = sorted(latencies[pause_ms])
            p50 = taken[len(taken) // 2]
            p99 = taken[int(len(taken) * 0.99)]
            first = first or p50
            print(
                f"  pause {pause_ms:5.1f} ms: CPU {cpu[pause_ms] / args.requests * 1e6:6,.0f} "
                f"us/request; latency p50 {p50 * 1e3:5.2f} ms, p99 {p99 * 1e3:5.2f} ms "
                f"({p50 / first:.2f} x the first pause's p50)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, help="a trained model (default: train one)")
    parser.add_argument("--database-url", help="default: a new SQLite file")
    parser.add_argument("--requests", type=int, default=1_000, help="at each pause")
    parser.add_argument(
        "--pauses",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[0.0, 2.0, 5.0, 10.0, 20.0],
        help="milliseconds before each request, comma-separated (default 0,2,5,10,20)",
    )
    parser.add_argument("--spin", action="store_true", help="pause busy rather than asleep")
    parser.add_argument(
        "--web-layer-only",
        action="store_true",
        help="answer every request with one decision: the web layer's cost alone",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lindung-request-cost-") as folder:
        uvloop.run(measure(args, bench_settings(args, Path(folder))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
