"""Desks' latency while another desk syncs after an outage: `lindung serve --workers 2`, eight
desks sending one case at a time (each waits a random, exponential time after each answer:
--rate requests/s in all while answers are quick) while one more desk posts 1,000-case bulks to
/v1/screenings/bulk, one after another with --bulk-pause between.

A bulk is screened in a worker thread and stored in one transaction (all or nothing). Meanwhile
the desks on the same worker share the interpreter lock with it, and every desk's commit waits
for the bulk's write lock. This prints the desks' p50/p99/max, the bulks' time, and checks that
the decisions stored match the answers (every 201 stored, nothing else). On PostgreSQL it works
in a schema of its own, dropped at the end.

Run: .venv/bin/python bench/bulk_sync.py [--model-dir /tmp/md] [--seconds 30] [--rate 100]
     [--database-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from desk_cases import desk_cases, sent_once
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.api.servers import Server, create_key, postgres_schema, server_env  # noqa: E402

BULK = 1_000
DESKS = 8  # connections sharing --rate


class Load:
    def __init__(self, port: int, key: str, seconds: float) -> None:
        self.port, self.seconds = port, seconds
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        cases = list(desk_cases(BULK + 2_000))
        self.bulk = json.dumps({"cases": cases[:BULK]}).encode()
        self.bodies = [json.dumps(case).encode() for case in cases[BULK:]]
        self.latencies: list[float] = []
        self.bulks: list[float] = []
        self.failures: list[str] = []

    def post(self, connection: http.client.HTTPConnection, path: str, body: bytes) -> float:
        started = time.perf_counter()
        connection.request("POST", path, body, self.headers)
        answer = connection.getresponse()
        answer.read()
        if answer.status != 201:
            self.failures.append(f"{path}: {answer.status}")
        return time.perf_counter() - started

    def syncing_desk(self, pause: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            bulk = sent_once(self.bulk, uuid.uuid4().hex[:12])  # cases of its own
            self.bulks.append(self.post(connection, "/v1/screenings/bulk", bulk))
            time.sleep(pause)

    def desk(self, seed: int, rate: float) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        deadline = time.monotonic() + self.seconds
        while True:
            time.sleep(rng.expovariate(rate))
            if time.monotonic() >= deadline:
                return
            body = sent_once(rng.choice(self.bodies), uuid.uuid4().hex[:12])
            self.latencies.append(self.post(connection, "/v1/screenings", body))


def stored(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM decisions")).scalar_one())
    finally:
        engine.dispose()


@contextmanager
def fresh_database(url: str | None, place: Path) -> Iterator[str]:
    """A new SQLite file in `place` (no URL), or a new schema on the PostgreSQL server of `url`,
    dropped at the end."""
    if url is None:
        yield f"sqlite:///{place / 'lindung.db'}"
        return
    with postgres_schema(url, "bench_bulk") as schema_url:
        yield schema_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, required=True, help="a trained model")
    parser.add_argument("--database-url", help="a PostgreSQL server (default: a new SQLite file)")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--rate", type=float, default=100, help="desk requests/s in all")
    parser.add_argument("--bulk-pause", type=float, default=0.5, help="seconds between bulks")
    args = parser.parse_args()
    if args.seconds <= 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be more than 0")
    if args.database_url and not args.database_url.startswith("postgresql"):
        parser.error("--database-url must name a PostgreSQL server (SQLite is the default)")
    with (
        tempfile.TemporaryDirectory(prefix="lindung-bulk-sync-") as folder,
        fresh_database(args.database_url, Path(folder)) as url,
    ):
        place = Path(folder)
        env = server_env(url, args.model_dir, place)
        server = Server(env, place / "server.log", "--workers", "2")
        try:
            server.wait_ready()
            before = stored(url)
            load = Load(server.port, create_key(env, "desk", "bench-bulk-sync"), args.seconds)
            threads = [threading.Thread(target=load.syncing_desk, args=(args.bulk_pause,))]
            threads += [
                threading.Thread(target=load.desk, args=(seed, args.rate / DESKS))
                for seed in range(DESKS)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            added = stored(url) - before
        finally:
            server.stop()
    times = sorted(load.latencies)
    count = len(times)
    print(
        f"desks: {count:,} screenings ({count / args.seconds:,.1f}/s), latency p50 "
        f"{times[count // 2] * 1e3:.1f} ms, p99 {times[int(count * 0.99)] * 1e3:.1f} ms, "
        f"max {times[-1] * 1e3:.1f} ms"
    )
    mean = sum(load.bulks) / len(load.bulks)
    print(f"bulks: {len(load.bulks)} of {BULK:,} cases, {mean:.2f} s each on average")
    expected = count + BULK * len(load.bulks)
    check = "ok" if added == expected and not load.failures else "MISMATCH"
    print(f"stored: {added:,} decisions for {expected:,} answered ({check})")
    for failure in load.failures[:10]:
        print(f"  not 201: {failure}")
    return 0 if check == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
