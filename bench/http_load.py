"""The HTTP service under a real load generator (wrk): screenings/s stored, and latency at a
fixed rate.

1. Starts `lindung serve --workers W` on a fresh PostgreSQL schema (default) or a SQLite file,
   waits for GET /readyz, and creates a desk key.
2. Writes a wrk Lua script that cycles through N distinct desk cases (bench/desk_cases.py),
   each request with a case_id of its own (a case sent again would be a desk's retry, answered
   from storage: README, Retries), POSTs each to /v1/screenings, counts the answers by status
   and prints latency percentiles. Every connection stops sending a moment before wrk stops,
   so no request is in flight at the end and each 201 can be matched with a stored decision.
3. Runs a short warm-up; requests one at a time on one connection (a lone request's time: the
   machine's speed that hour sets it, and latency at a fixed rate is built on it), back to back
   and then with the pause each worker has between requests at the fixed rate (a request after
   an idle gap costs more: bench/request_cost.py); a throughput
   run (wrk -t2 -c32, no pause: screenings/s stored); and a fixed-rate run: requests arrive as a
   Poisson process at the target rate (each wrk thread draws exponential gaps; the connection
   that comes free takes the next arrival), so slow answers do not lower the rate offered.
4. After each run, checks that the decisions stored (SELECT count(*) FROM decisions) grew by
   exactly the number of 201 answers; then stops the server and drops the schema or the file.

wrk, the server and (on PostgreSQL) the database share this machine's cores; the CPU each took
during the throughput run is printed, since wrk's share is not available to the service.
With --profile DIR, py-spy (pip install py-spy into the venv) samples every worker during the
throughput run (--profile-run rate: the fixed-rate run) and keeps the raw stacks in DIR:
--profile-mode wall (default) prints the lines where request threads spend their time, waiting
included; gil prints what takes Python's CPU.

On PostgreSQL, each run also says how many write-ahead log segments it began and how many of
them had to be made as new files: each new one stalls every commit for 25-47 ms here, which a
fresh server (as each session's machine starts) does for its first gigabyte of log or so.

Targets (the HTTP service issue): >= 500 screenings/s stored on a 2-core machine; p99 < 10 ms
at 200 requests/s.
Run: .venv/bin/python bench/http_load.py [--workers 2] [--database postgres|sqlite]
     [--model-dir /tmp/md] [--duration 20] [--rate 200] [--profile /tmp/lindung-profile]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from desk_cases import desk_cases
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

ROOT = Path(__file__).resolve().parent.parent
LINDUNG = str(Path(sys.executable).parent / "lindung")
PY_SPY = str(Path(sys.executable).parent / "py-spy")
POSTGRES_URL = "postgresql+psycopg://root@127.0.0.1:5432/test"
THROUGHPUT_TARGET = 500.0  # screenings/s stored
P99_TARGET_MS = 10.0  # at RATE_TARGET requests/s
RATE_TARGET = 200.0
DISTURBED = 0.25  # cores taken by other work during a run that make its figures doubtful
GRACE_SECONDS = 3  # wrk runs this much longer than the connections send, to drain every answer

# wrk runs one copy of this script per thread (init, request, delay, response) and one more for
# setup and done. Arguments after `--`: bodies file, API key, mean pause (ms, 0: none; for
# poisson, between one thread's arrivals), pacing (poisson | exponential | fixed | none), seconds
# to send for, wrk threads, connections per thread, the run's tag for its case_ids.
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } lindung_timeval;
int gettimeofday(lindung_timeval *tv, void *tz);
]]
local tv = ffi.new("lindung_timeval")
local function now()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end

-- the main state: one entry per thread, read back in done()
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

-- each thread's state (globals, so that done() can read them with thread:get)
sent, answered, first_sent, last_answer = 0, 0, 0, 0
statuses = {}
local heads, tails, cursor, mean_pause, pacing, send_until, stagger = {}, {}, 0, 0, "none", 0, 0
local next_due, headers, tag, serial = 0, {}, "", 0

function init(args)
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. args[2],
  }
  -- each request a case of its own (case_id B-<run>-<thread>-<serial>-N): a case sent again
  -- with its case_id and screened_at is a desk's retry, answered from storage, not screened
  local mark = '"case_id":"B-'
  for line in io.lines(args[1]) do
    local at = line:find(mark, 1, true) + #mark - 1
    heads[#heads + 1], tails[#tails + 1] = line:sub(1, at), line:sub(at + 1)
  end
  tag = args[8] .. "-" .. id .. "-"
  mean_pause, pacing = tonumber(args[3]), args[4]
  send_until = now() + tonumber(args[5])
  stagger = tonumber(args[7])  -- the first pause of each connection: a random phase
  math.randomseed(7919 * id)
  cursor = math.floor((id - 1) * #heads / tonumber(args[6]))  -- threads start apart
end

function delay()
  local t = now()
  if t >= send_until then
    return 3600000  -- stop sending; wrk stops a few seconds later, with nothing in flight
  end
  local pause = 0
  if pacing == "poisson" then
    -- one Poisson arrival process per thread: each connection that comes free takes the next
    -- arrival time, so slow answers do not lower the rate offered (as they would if every
    -- connection paused after its own answer); a late arrival is sent at once
    if next_due == 0 then next_due = t end
    next_due = next_due - mean_pause * math.log(1 - math.random()) / 1000
    pause = math.min(math.max(0, 1000 * (next_due - t)), 1000 * (send_until - t))
  elseif pacing == "exponential" then
    pause = math.min(-mean_pause * math.log(1 - math.random()), 1000 * (send_until - t))
  elseif pacing == "fixed" then
    pause = mean_pause
    if stagger > 0 then
      stagger = stagger - 1
      pause = mean_pause * math.random()
    end
  end
  -- counted here rather than in request(), which wrk also calls once to check the script
  sent = sent + 1
  if first_sent == 0 then first_sent = t + pause / 1000 end
  return pause
end

function request()
  cursor, serial = cursor % #heads + 1, serial + 1
  local body = heads[cursor] .. tag .. serial .. "-" .. tails[cursor]
  return wrk.format("POST", "/v1/screenings", headers, body)
end

function response(status, headers, body)
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  last_answer = now()
end

function done(summary, latency, requests)
  local out = {sent = 0, answered = 0}
  local first, last, counts = math.huge, 0, {}
  for _, thread in ipairs(threads) do
    out.sent = out.sent + thread:get("sent")
    out.answered = out.answered + thread:get("answered")
    local f, l = thread:get("first_sent"), thread:get("last_answer")
    if f > 0 and f < first then first = f end
    if l > last then last = l end
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  for key, n in pairs(out) do io.write(string.format("LINDUNG %s %d\n", key, n)) end
  for status, n in pairs(counts) do io.write(string.format("LINDUNG status %d %d\n", status, n)) end
  io.write(string.format("LINDUNG window_s %.6f\n", first < last and last - first or 0))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("LINDUNG p%s_us %d\n", p, latency:percentile(p)))
  end
  io.write(string.format("LINDUNG mean_us %d\nLINDUNG max_us %d\n", latency.mean, latency.max))
  for kind, n in pairs(summary.errors) do
    io.write(string.format("LINDUNG error_%s %d\n", kind, n))
  end
end
"""


@dataclass
class Run:
    name: str
    figures: dict[str, float] = field(default_factory=dict)
    statuses: Counter[int] = field(default_factory=Counter)
    stored: int = 0  # decisions stored during the run
    log_bytes: int | None = None  # SQLite: the write-ahead log file's size after the run
    # PostgreSQL: write-ahead log segments begun during the run, and how many of them had to be
    # made as new files (None: pg_wal could not be listed)
    wal_segments: tuple[int, int] | None = None
    # bytes written for the run's decisions: PostgreSQL's write-ahead log, SQLite's database
    # (as its connections see it, the log's pages included)
    written: int | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, by process group
    # each worker's share of the workers' CPU: uneven when the kernel gave one worker more of
    # the connections (each worker is a queue of its own, and the busier one sets p99)
    worker_shares: list[float] = field(default_factory=list)

    @property
    def created(self) -> int:
        return self.statuses.get(201, 0)

    @property
    def others(self) -> dict[int, int]:
        return {status: n for status, n in sorted(self.statuses.items()) if status != 201}

    @property
    def rate(self) -> float:
        window = self.figures.get("window_s", 0.0)
        return self.figures.get("answered", 0) / window if window else 0.0

    @property
    def stored_rate(self) -> float:
        window = self.figures.get("window_s", 0.0)
        return self.created / window if window else 0.0

    def ms(self, name: str) -> float:
        return self.figures.get(f"{name}_us", math.nan) / 1000

    @property
    def errors(self) -> dict[str, int]:
        found = {k[6:]: int(v) for k, v in self.figures.items() if k.startswith("error_")}
        return {kind: n for kind, n in found.items() if n and kind != "status"}

    @property
    def in_flight(self) -> int:
        return int(self.figures.get("sent", 0) - self.figures.get("answered", 0))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, queue = [], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def workers(pid: int) -> list[int]:
    """uvicorn's worker processes (or the server itself when it runs one worker)."""
    spawned = []
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            spawned.append(child)
    return spawned or [pid]


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) each of `pids` has used so far."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def cpu_since(before: dict[int, float], now: dict[int, float]) -> float:
    """CPU seconds used between two snapshots; a process started since counts from zero (one
    that ended in between is missed)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in now.items())


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (it shares the cores when it runs here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def background_load(seconds: float = 2.0) -> float:
    """Cores' worth of CPU the machine spends on other work right now."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def wait_until_quiet(limit: float, most_seconds: float) -> float:
    """Wait (up to `most_seconds`) until other work takes under `limit` of a core."""
    started = time.monotonic()
    load = background_load()
    while load > limit and time.monotonic() - started < most_seconds:
        print(f"  the machine is busy with other work ({load:.0%} of a core); waiting", flush=True)
        time.sleep(8)
        load = background_load()
    return load


class Bench:
    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args, self.folder = args, folder
        self.port = args.port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.schema: str | None = None
        if args.database == "postgres":
            self.schema = f"bench_http_{os.getpid()}_{secrets.token_hex(3)}"
            self.url = with_search_path(args.postgres_url, self.schema)
            self.label = f"PostgreSQL (schema {self.schema})"
        else:
            self.url = f"sqlite:///{folder / 'lindung.db'}"
            self.label = f"SQLite ({folder / 'lindung.db'})"
        self.env = dict(os.environ)
        self.env["LINDUNG_DATABASE_URL"] = self.url
        self.env["LINDUNG_MODEL_DIR"] = str(args.model_dir or folder / "model")
        self.env["PROMETHEUS_MULTIPROC_DIR"] = str(folder / "metrics")
        (folder / "metrics").mkdir()
        self.server: subprocess.Popen[bytes] | None = None
        self.server_log = folder / "server.log"
        self.engine: Engine | None = None
        self.key = ""
        self.inputs = (folder / "bodies.jsonl", folder / "screenings.lua")

    # the database -------------------------------------------------------------------------

    def create_database(self) -> None:
        if self.schema:
            admin = create_engine(self.args.postgres_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))
            admin.dispose()

    def drop_database(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
        if self.schema and not self.args.keep:
            admin = create_engine(self.args.postgres_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            admin.dispose()

    def stored(self) -> int:
        if self.engine is None:
            self.engine = create_engine(self.url)
        with self.engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM decisions")).scalar_one())

    def log_bytes(self) -> int | None:
        """SQLite: the size of the write-ahead log file (as large as the log ever grew: it
        starts again from the beginning once checkpointed, over the same space)."""
        if self.schema:
            return None
        log = self.folder / "lindung.db-wal"
        return log.stat().st_size if log.exists() else 0

    def written(self) -> int:
        """Bytes so far: PostgreSQL's write-ahead log position; SQLite's database size."""
        if self.engine is None:
            self.engine = create_engine(self.url)
        with self.engine.connect() as connection:
            if self.schema:
                query = "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
                return int(connection.execute(text(query)).scalar_one())
            pages = connection.execute(text("PRAGMA page_count")).scalar_one()
            return int(pages) * int(connection.execute(text("PRAGMA page_size")).scalar_one())

    def wal_position(self) -> tuple[int, int] | None:
        """PostgreSQL: the number of the write-ahead log segment being written, and how many
        segment files wait ready ahead of it (recycled by checkpoints). A segment with no file
        ready is made as a new file and filled with zeros, and every commit waits meanwhile:
        25-47 ms a segment on this machine's disk, against a commit's usual 0.4 ms. A server
        that has run a while recycles; a fresh one (as each session's machine starts) makes
        new files for its first gigabyte or so. None without the right to list pg_wal
        (superuser or pg_monitor)."""
        if not self.schema:
            return None
        if self.engine is None:
            self.engine = create_engine(self.url)
        with self.engine.connect() as connection:
            now = connection.execute(
                text("SELECT pg_walfile_name(pg_current_wal_lsn())")
            ).scalar_one()
            size = connection.execute(
                text("SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'")
            ).scalar_one()
            try:
                names = connection.execute(text("SELECT name FROM pg_ls_waldir()")).scalars().all()
            except DBAPIError:
                return None

        def number(name: str) -> int:  # timeline (8 hex digits), log (8), segment (8)
            return int(name[8:16], 16) * (0x100000000 // int(size)) + int(name[16:24], 16)

        segments = [name for name in names if len(name) == 24 and name[:8] == now[:8]]
        return number(now), sum(number(name) > number(now) for name in segments)

    # the server ---------------------------------------------------------------------------

    def start_server(self) -> None:
        command = [LINDUNG, "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", str(self.args.workers)]
        print(f"$ {' '.join(command)}   (log: {self.server_log})", flush=True)
        with self.server_log.open("wb") as log:
            self.server = subprocess.Popen(
                command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so that it can be stopped whole
            )
        started = time.monotonic()
        while time.monotonic() - started < self.args.start_timeout:
            if self.server.poll() is not None:
                raise SystemExit(f"the server exited:\n{self.server_log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=5) as answer:
                    if answer.status == 200:
                        ready = json.load(answer)
                        print(
                            f"ready after {time.monotonic() - started:.1f} s: "
                            f"rule pack {ready.get('rule_pack')}, model {ready.get('model')}",
                            flush=True,
                        )
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise SystemExit(f"the server was not ready in {self.args.start_timeout} s")

    def stop_server(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        self.server.send_signal(signal.SIGINT)
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)  # the group this bench started
            self.server.wait()

    def create_key(self) -> str:
        made = subprocess.run(
            [LINDUNG, "keys", "create", "--role", "desk", "--name", "bench-http-load"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return made.stdout.strip().splitlines()[-1]

    # wrk ----------------------------------------------------------------------------------

    def write_inputs(self) -> tuple[Path, Path]:
        bodies = self.folder / "bodies.jsonl"
        lines = (json.dumps(case, separators=(",", ":")) for case in desk_cases(self.args.cases))
        bodies.write_text("\n".join(lines) + "\n", encoding="utf-8")
        script = self.folder / "screenings.lua"
        script.write_text(WRK_SCRIPT.lstrip(), encoding="utf-8")
        return bodies, script

    def wrk(
        self,
        name: str,
        threads: int,
        connections: int,
        seconds: float,
        pause_ms: float,
        pacing: str,
        profile: Path | None = None,
    ) -> Run:
        bodies, script = self.inputs
        per_thread = math.ceil(connections / threads)
        command = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{math.ceil(seconds) + GRACE_SECONDS}s",
            "--timeout",
            "30s",
            "-s",
            str(script),
            f"{self.base}/v1/screenings",
            "--",
            str(bodies),
            self.key,
            f"{pause_ms:g}",
            pacing,
            f"{seconds:g}",
            str(threads),
            str(per_thread if pacing == "fixed" else 0),
            uuid.uuid4().hex[:8],  # this run's cases' own (the database may hold earlier runs')
        ]
        shown = " ".join(command).replace(self.key, "<key>")
        print(f"\n[{name}] $ {shown}", flush=True)
        run = Run(name)
        stored_before = self.stored()
        server = self.server.pid if self.server else 0

        def reaped() -> float:
            """CPU seconds of this bench's finished child processes (wrk, py-spy)."""
            times = os.times()
            return times.children_user + times.children_system

        def snapshot() -> tuple[dict[int, float], dict[int, float], float]:
            return (
                cpu_seconds([server, *children(server)]),
                cpu_seconds(postgres_pids() if self.schema else []),
                machine_busy_seconds(),
            )

        spies = self.start_profiles(profile, seconds) if profile else []
        wal_before, written_before = self.wal_position(), self.written()
        before, reaped_before = snapshot(), reaped()
        started = time.monotonic()
        finished = subprocess.run(command, capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        reaped_wrk = reaped()
        for spy in spies:  # they stopped GRACE_SECONDS before wrk
            spy.wait()
        reaped_spies = reaped()
        after = snapshot()
        (self.folder / f"wrk-{name.split()[0]}.out").write_text(finished.stdout + finished.stderr)
        if finished.returncode != 0 or "LINDUNG answered" not in finished.stdout:
            raise SystemExit(f"wrk failed ({finished.returncode}):\n{finished.stderr[-3000:]}")
        for line in finished.stdout.splitlines():
            parts = line.split()
            if not parts or parts[0] != "LINDUNG":
                continue
            if parts[1] == "status":
                run.statuses[int(parts[2])] += int(parts[3])
            else:
                run.figures[parts[1]] = float(parts[2])
        # CPU seconds over the time the connections were sending (nothing runs in the grace)
        window = run.figures.get("window_s") or elapsed
        run.cpu = {
            "server": cpu_since(before[0], after[0]) / window,
            "database": cpu_since(before[1], after[1]) / window,
            "machine": (after[2] - before[2]) / window,
            "wrk": (reaped_wrk - reaped_before) / window,
            "py-spy": (reaped_spies - reaped_wrk) / window,
        }
        run.cpu["other"] = max(
            0.0,
            run.cpu["machine"]
            - sum(run.cpu[part] for part in ("server", "database", "wrk", "py-spy")),
        )
        used = [after[0].get(pid, 0.0) - before[0].get(pid, 0.0) for pid in workers(server)]
        if len(used) > 1 and sum(used) > 0:
            run.worker_shares = sorted((part / sum(used) for part in used), reverse=True)
        run.stored = self.stored() - stored_before
        run.log_bytes = self.log_bytes()
        run.written = self.written() - written_before
        wal_after = self.wal_position()
        if wal_before and wal_after:
            begun = wal_after[0] - wal_before[0]
            run.wal_segments = (begun, max(0, begun - wal_before[1]))
        self.report(run)
        return run

    def start_profiles(self, folder: Path, seconds: float) -> list[subprocess.Popen[bytes]]:
        if not Path(PY_SPY).exists():
            raise SystemExit(f"--profile needs py-spy: {sys.executable} -m pip install py-spy")
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.txt"):
            old.unlink()
        spies = []
        for pid in workers(self.server.pid if self.server else 0):
            command = [PY_SPY, "record", "--pid", str(pid), "--duration", str(int(seconds))]
            command += ["--rate", str(PROFILE_RATE), "--format", "raw", "--nonblocking"]
            command += [
                "--output",
                str(folder / f"{pid}.txt"),
                PROFILE_MODES[self.args.profile_mode],
            ]
            spies.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        return spies

    def report(self, run: Run) -> None:
        others = ", ".join(f"{n} x {status}" for status, n in run.others.items()) or "none"
        print(
            f"  {run.figures.get('answered', 0):,.0f} answers in {run.figures['window_s']:.1f} s: "
            f"{run.rate:,.1f} requests/s, {run.stored_rate:,.1f} screenings/s stored "
            f"(201: {run.created:,}; other statuses: {others})"
        )
        print(
            f"  latency p50 {run.ms('p50'):.2f} ms, p90 {run.ms('p90'):.2f} ms, "
            f"p99 {run.ms('p99'):.2f} ms, p99.9 {run.ms('p99.9'):.2f} ms, "
            f"max {run.ms('max'):.2f} ms"
        )
        print(f"  CPU: {cpu_line(run)}")
        if run.worker_shares:
            shares = ", ".join(f"{share:.0%}" for share in run.worker_shares)
            print(f"  each worker's share of the workers' CPU: {shares}")
        if run.cpu["other"] > DISTURBED:
            print(f"  WARNING: other work took {run.cpu['other']:.2f} cores: figures disturbed")
        check = "ok" if run.stored == run.created else "MISMATCH"
        print(f"  decisions stored during the run: {run.stored:,} ({check} against the 201s)")
        if run.written is not None and run.stored:
            print(f"  {written_line(run, self.schema)}")
        if run.log_bytes is not None:
            print(f"  SQLite write-ahead log file after the run: {run.log_bytes / 1e6:,.1f} MB")
        if run.wal_segments is not None:
            print(f"  PostgreSQL write-ahead log: {wal_line(run.wal_segments)}")
        if run.errors:
            print(f"  wrk socket errors: {run.errors}")
        if run.in_flight:
            print(f"  {run.in_flight} requests were still unanswered when wrk stopped")

    def run(self) -> int:
        args = self.args
        quiet = wait_until_quiet(args.quiet_below, args.wait_quiet)
        print(f"other work on the machine before starting: {quiet:.2f} cores", flush=True)
        self.create_database()
        try:
            self.start_server()
            self.key = self.create_key()
            self.inputs = self.write_inputs()
            runs = []
            if args.warmup > 0:
                runs.append(self.wrk("warm-up", 1, 4, args.warmup, 0, "none"))
            lone: list[Run] = []
            if args.lone_duration > 0:  # one connection, each request sent once answered
                lone.append(self.wrk("one at a time", 1, 1, args.lone_duration, 0, "none"))
                # and after the pause each worker has between requests at the fixed rate
                pause = lone_pause(args)
                name = f"one at a time, {pause:g} ms apart"
                lone.append(self.wrk(name, 1, 1, args.lone_duration, pause, "fixed"))
                runs += lone
            throughput = self.wrk(
                "throughput",
                args.threads,
                args.connections,
                args.duration,
                0,
                "none",
                profile=args.profile if args.profile_run == "throughput" else None,
            )
            pause = mean_pause(args)
            fixed = self.wrk(
                f"{args.rate:g} req/s",
                args.rate_threads,
                args.rate_connections,
                args.rate_duration,
                pause,
                args.pacing,
                profile=args.profile if args.profile_run == "rate" else None,
            )
            runs += [throughput, fixed]
            total_stored = self.stored()
        finally:
            self.stop_server()
            self.drop_database()
        if args.profile:
            seconds = args.duration if args.profile_run == "throughput" else args.rate_duration
            print_profile(args.profile, args.profile_mode, int(seconds))
        return summary(args, self.label, runs, total_stored, quiet, lone)


def lone_pause(args: argparse.Namespace) -> float:
    """Milliseconds between one worker's requests, on average, at the fixed rate."""
    return round(float(args.workers) * 1000 / float(args.rate), 1)


def cpu_ms(run: Run) -> float:
    """The server's CPU time per answer, in milliseconds."""
    return run.cpu["server"] / run.rate * 1000 if run.rate else math.nan


def mean_pause(args: argparse.Namespace) -> float:
    """Milliseconds between requests: of one wrk thread (poisson), or of one connection."""
    senders = args.rate_threads if args.pacing == "poisson" else args.rate_connections
    return float(senders * 1000 / args.rate)


def summary(
    args: argparse.Namespace,
    label: str,
    runs: list[Run],
    total_stored: int,
    quiet: float,
    lone: list[Run],
) -> int:
    throughput, fixed = runs[-2], runs[-1]
    created = sum(run.created for run in runs)
    others: Counter[int] = Counter()
    for run in runs:
        others.update(run.others)
    matches = total_stored == created and all(run.stored == run.created for run in runs)
    errors = {
        run.name: {**run.errors, **({"unanswered": run.in_flight} if run.in_flight else {})}
        for run in runs
        if run.errors or run.in_flight
    }
    met_throughput = throughput.stored_rate >= THROUGHPUT_TARGET
    kept_up = fixed.rate >= 0.95 * args.rate  # else the latency was not measured at that rate
    met_latency = fixed.ms("p99") < P99_TARGET_MS and kept_up
    print("\n=== summary " + "=" * 68)
    print(
        f"machine:     {os.cpu_count()} cores, shared by wrk, the server and the database "
        f"(other work before the start: {quiet:.2f} cores)"
    )
    print(f"workers:     {args.workers} (lindung serve)")
    print(f"database:    {label}")
    print(f"cases:       {args.cases:,} distinct desk cases, cycled (bench/desk_cases.py)")
    print(
        f"throughput:  {throughput.stored_rate:,.1f} screenings/s stored "
        f"(wrk -t{args.threads} -c{args.connections}, {args.duration:g} s; target >= "
        f"{THROUGHPUT_TARGET:,.0f}: {'met' if met_throughput else 'MISSED'})"
    )
    print(
        f"             latency under that load: p50 {throughput.ms('p50'):.2f} ms, "
        f"p99 {throughput.ms('p99'):.2f} ms"
    )
    print(f"             CPU: {cpu_line(throughput)}")
    print(
        f"fixed rate:  asked {args.rate:g} req/s ({args.rate_connections} connections, "
        f"{args.pacing} arrivals, mean gap {mean_pause(args):g} ms per "
        f"{'thread' if args.pacing == 'poisson' else 'connection'}), "
        f"achieved {fixed.rate:,.1f} req/s for {args.rate_duration:g} s"
        + ("" if kept_up else " (the server did not keep up)")
    )
    print(
        f"             latency p50 {fixed.ms('p50'):.2f} ms, p90 {fixed.ms('p90'):.2f} ms, "
        f"p99 {fixed.ms('p99'):.2f} ms, p99.9 {fixed.ms('p99.9'):.2f} ms, max "
        f"{fixed.ms('max'):.2f} ms (target p99 < {P99_TARGET_MS:g} ms: "
        f"{'met' if met_latency else 'MISSED'})"
    )
    print(f"             CPU: {cpu_line(fixed)}")
    if fixed.wal_segments is not None:
        print(f"             PostgreSQL write-ahead log: {wal_line(fixed.wal_segments)}")
    if fixed.worker_shares:
        shares = ", ".join(f"{share:.0%}" for share in fixed.worker_shares)
        print(f"             each worker's share of the workers' CPU: {shares}")
    if lone:
        # Requests arriving at random queue behind one another: with each worker busy a third
        # of the time or more, p99 is several times a lone request's time. And a request that
        # follows an idle gap costs more than one that follows another (bench/request_cost.py).
        back_to_back, apart = lone
        print(
            f"one at a time: p50 {back_to_back.ms('p50'):.2f} ms, p99 "
            f"{back_to_back.ms('p99'):.2f} ms, server CPU {cpu_ms(back_to_back):.2f} ms a "
            f"request (one connection, {back_to_back.rate:,.0f} requests/s: a lone request's "
            f"time this hour; p99 at {args.rate:g} req/s is "
            f"{fixed.ms('p99') / back_to_back.ms('p50'):.1f} times its p50)"
        )
        print(
            f"             {lone_pause(args):g} ms apart (each worker's mean gap at "
            f"{args.rate:g} req/s): p50 {apart.ms('p50'):.2f} ms, p99 {apart.ms('p99'):.2f} "
            f"ms, server CPU {cpu_ms(apart):.2f} ms a request "
            f"({apart.ms('p50') / back_to_back.ms('p50'):.2f} times the back-to-back p50)"
        )
    print(f"non-201:     {dict(others) or 'none'}" + (f"; wrk errors {errors}" if errors else ""))
    print(
        f"stored:      {total_stored:,} decisions, {created:,} answers 201 "
        f"({'equal' if matches else 'NOT EQUAL'})"
    )
    disturbed = [run.name for run in runs if run.cpu["other"] > DISTURBED]
    if disturbed:
        print(
            f"WARNING:     other work on the machine took over {DISTURBED} cores during: "
            f"{', '.join(disturbed)}; run again on a quiet machine"
        )
    return 0 if matches and not others and met_throughput and met_latency else 1


def written_line(run: Run, postgres: str | None) -> str:
    assert run.written is not None
    where = "PostgreSQL's write-ahead log" if postgres else "the SQLite database"
    return f"{run.written / run.stored / 1000:,.1f} kB a decision written to {where}"


def wal_line(segments: tuple[int, int]) -> str:
    begun, made = segments  # made: more begun than were ready (a checkpoint may add some)
    line = f"{begun} segments begun, {'up to ' if made else ''}{made} of them made as new files"
    if made:
        line += " (every commit waits while one is zero-filled: a fresh server's slow start)"
    return line


def cpu_line(run: Run) -> str:
    """Where the machine's CPU went during a run, in cores (1.00 = one core busy)."""
    cpu = run.cpu
    spy = f", py-spy {cpu['py-spy']:.2f}" if cpu["py-spy"] else ""
    return (
        f"server {cpu['server']:.2f} cores, wrk {cpu['wrk']:.2f}, PostgreSQL "
        f"{cpu['database']:.2f}{spy}, other processes {cpu['other']:.2f}; machine busy "
        f"{cpu['machine']:.2f} of {os.cpu_count()}"
    )


PROFILE_RATE = 100  # samples/s
PROFILE_MODES = {"wall": "--idle", "gil": "--gil"}
PROJECT = (" (api/", " (engine/", " (models/")


def print_profile(folder: Path, mode: str, seconds: int, top: int = 15) -> None:
    """What py-spy saw in the workers' raw stacks ('frame;frame;... count' lines).

    wall: every thread, waiting or not; the project's lines where request threads spend their
    time, in threads (2.0: two threads there on average). gil: the thread holding the GIL only,
    i.e. Python's CPU time; the functions that take it, by themselves and with their callees.
    """
    stacks: Counter[tuple[str, ...]] = Counter()
    files = sorted(folder.glob("*.txt"))
    for path in files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks[tuple(stack.split(";"))] += int(count)
    total = sum(stacks.values())
    if not total:
        print(f"\nprofile: no samples in {folder}")
        return
    ticks = PROFILE_RATE * seconds  # samples per thread and process
    print(f"\n=== profile ({mode}) of {len(files)} workers: raw stacks in {folder}")
    if mode == "wall":
        where: Counter[str] = Counter()
        for frames, samples in stacks.items():
            ours = [frame for frame in frames if any(part in frame for part in PROJECT)]
            if ours:
                where[f"{short_frame(ours[-1], line=True)} -> {short_frame(frames[-1])}"] += samples
        busy = sum(where.values())
        print(
            f"request threads in the project's code: {busy / ticks:.2f} on average; where "
            f"(deepest project line -> function running or waiting), in threads:"
        )
        for place, samples in where.most_common(top):
            print(f"  {samples / ticks:6.2f}  {place}")
        return
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, samples in stacks.items():
        names = [short_frame(frame) for frame in frames]
        own[names[-1]] += samples
        for name in set(names):
            inclusive[name] += samples
    print(
        f"the GIL was held {total / ticks / len(files):.0%} of the time (per worker); "
        f"share of that time, by function itself:"
    )
    for name, samples in own.most_common(top):
        print(f"  {samples / total:6.1%}  {name}")
    print("and including what it calls (the project's functions only):")
    projects = [(n, c) for n, c in inclusive.most_common() if any(p in n for p in PROJECT)]
    for name, samples in projects[:top]:
        print(f"  {samples / total:6.1%}  {name}")


def short_frame(frame: str, line: bool = False) -> str:
    """'name (path/file.py:12)' -> 'name (file path from the package root[:12])'."""
    name, _, where = frame.partition(" (")
    where, _, number = where.rstrip(")").rpartition(":")
    for marker in ("site-packages/", "lib/python3.11/", f"{ROOT}/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    if line and number:
        where = f"{where}:{number}"
    return f"{name} ({where})" if where else name


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Load the HTTP service with wrk: screenings/s stored, and latency at a "
        "fixed rate (see the module docstring)."
    )
    parser.add_argument("--workers", type=int, default=2, help="lindung serve --workers")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--postgres-url", default=POSTGRES_URL, help="a fresh schema is made here")
    parser.add_argument(
        "--model-dir",
        type=Path,
        help="a trained model folder (default: a temporary one, trained first with "
        "LINDUNG_TRAINING_ROWS rows)",
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free one")
    parser.add_argument("--cases", type=int, default=2_000, help="distinct case bodies")
    parser.add_argument("--warmup", type=float, default=3, help="seconds (0: none)")
    parser.add_argument(
        "--lone-duration",
        type=float,
        default=5,
        help="seconds of each one-at-a-time run (0: none)",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads, throughput run")
    parser.add_argument("--connections", type=int, default=32, help="throughput run")
    parser.add_argument("--duration", type=float, default=20, help="seconds, throughput run")
    parser.add_argument("--rate", type=float, default=RATE_TARGET, help="requests/s to offer")
    parser.add_argument("--rate-threads", type=int, default=1)
    parser.add_argument("--rate-connections", type=int, default=20)
    parser.add_argument("--rate-duration", type=float, default=20, help="seconds")
    parser.add_argument(
        "--pacing",
        choices=["poisson", "exponential", "fixed"],
        default="poisson",
        help="arrivals at the fixed rate: poisson (one Poisson process per wrk thread, held "
        "whatever the latency, as independent desks), exponential (each connection pauses a "
        "random time after its answer: slow answers lower the rate) or fixed (equal pauses)",
    )
    parser.add_argument("--profile", type=Path, help="py-spy the workers in one run")
    parser.add_argument(
        "--profile-run",
        choices=["throughput", "rate"],
        default="throughput",
        help="the run --profile samples: the throughput run or the fixed-rate one",
    )
    parser.add_argument(
        "--profile-mode",
        choices=sorted(PROFILE_MODES),
        default="wall",
        help="wall: where request threads spend their time, waiting included; gil: Python's "
        "CPU time",
    )
    parser.add_argument(
        "--quiet-below",
        type=float,
        default=0.2,
        help="wait until other work takes less than this many cores before starting",
    )
    parser.add_argument("--wait-quiet", type=float, default=300, help="seconds at most")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL schema")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with tempfile.TemporaryDirectory(prefix="lindung-http-load-") as folder:
        return Bench(args, Path(folder)).run()


if __name__ == "__main__":
    raise SystemExit(main())
