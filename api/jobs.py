"""Rescore jobs run by the service for analysts: each one is `lindung rescore` in a process of
its own (all cores, and the server's event loop never waits on it), one job at a time per server
process; its progress, summary or error go to the database, where every process reads them."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from api import in_use, library, runners
from api.runners import runner
from api.settings import Settings
from api.storage import database, jobs

log = logging.getLogger("lindung.jobs")
PROGRESS_EVERY = 0.5  # seconds between progress writes
SWEEP = 60.0  # seconds between looks for jobs whose runner has gone
CUT_OFF = 3600.0  # seconds: an upload this old that no job was made for was cut off by a stop
INTERRUPTED = "interrupted: the server running it stopped"
REGISTRY_FILE = "registry.csv"  # an uploaded registry, as it was when the job was asked for
FILES = {
    "result": "out",
    "rejects": "rejects.csv",
    "report": "report/report.html",
    "report.json": "report/summary.json",
    "moved-cases": "report/moved_cases.csv",
}


def now() -> datetime:
    return datetime.now(UTC)


class JobRunner:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._slot = threading.Semaphore(1)
        self._running: dict[str, subprocess.Popen[str]] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = False
        self._held: set[str] = set()  # jobs this process has taken and not ended
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None

    def folder(self, job_id: str) -> Path:
        return self.settings.job_dir / job_id

    def file(self, job: dict[str, Any], name: str) -> Path:
        relative = FILES[name]
        if name == "result":
            relative = f"out.{job['options']['output']}"
        return self.folder(job["job_id"]) / relative

    def open(self) -> None:
        """Clear what stopped servers left (`sweep`); then, while this process runs, beat for
        the jobs it holds and sweep again now and then (a runner on another machine or in
        another container is known to have gone only once it has been silent a while)."""
        self.sweep()
        self._keeper = threading.Thread(target=self._keep, name="jobs-keeper", daemon=True)
        self._keeper.start()

    def _keep(self) -> None:
        swept = time.monotonic()
        while not self._closing.wait(runners.BEAT):
            try:
                if self._held:
                    self.beat()
                    self.stop_cancelled()
                if time.monotonic() - swept >= SWEEP:
                    swept = time.monotonic()
                    self.sweep()
            except Exception:  # the database away a while: the next round tries again
                log.exception("rescore jobs: heartbeat or sweep failed")

    def beat(self) -> None:
        """Tell every server process that this one still holds its jobs."""
        with database.transaction(self.engine) as connection:
            jobs.beat(connection, runner())

    def stop_cancelled(self) -> None:
        """Stop the commands of this process's jobs that were cancelled (on any server)."""
        with self._lock:
            running = dict(self._running)
        if not running:
            return
        with database.reading(self.engine) as connection:
            cancelled = jobs.cancelled(connection, running)
        for job_id in cancelled:
            _stop(running[job_id])

    def _clock(self) -> datetime:
        with database.reading(self.engine) as connection:
            return jobs.clock(connection)

    def settled(self, job: dict[str, Any]) -> dict[str, Any]:
        """The job, marked failed if the server process running it has gone, and its upload
        deleted then (a killed runner could not)."""
        if not runners.gone(job, self._clock):
            return job
        with database.transaction(self.engine) as connection:
            marked = jobs.interrupted(connection, job, INTERRUPTED, now())
            job = jobs.get(connection, job["job_id"]) or job
        if marked:
            self._discard(job["job_id"])
        return job

    def _discard(self, job_id: str) -> None:
        for upload in self.folder(job_id).glob("in.*"):
            upload.unlink(missing_ok=True)

    def sweep(self) -> None:
        """Mark failed the jobs whose server process has gone, and delete the uploads no job
        will read: those of ended jobs, and those a stop cut off before their job was made.
        An upload of a job queued or running in a live process (on any machine) stays."""
        with database.reading(self.engine) as connection:
            held = jobs.held(connection)
        for job in held:
            self.settled(job)
        for upload in self.settings.job_dir.glob("*/in.*"):
            with database.reading(self.engine) as connection:
                made = jobs.get(connection, upload.parent.name)
            if made is not None:
                if made["status"] not in jobs.HELD:
                    upload.unlink(missing_ok=True)
                continue
            try:  # an upload still arriving is written to, and its job made once it is in
                cut_off = time.time() - upload.stat().st_mtime > CUT_OFF
            except FileNotFoundError:  # its request failed meanwhile, and deleted it
                continue
            if cut_off:
                upload.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # unless something else is in it
                    upload.parent.rmdir()

    def start(self, job_id: str, source: Path, options: dict[str, Any]) -> None:
        """Run the job in the background (queued until this process's slot is free)."""
        thread = threading.Thread(
            target=self._run, args=(job_id, source, options), name=f"job-{job_id}", daemon=True
        )
        with self._lock:
            self._threads.append(thread)
            self._held.add(job_id)
        thread.start()

    def command(self, job_id: str, source: Path, options: dict[str, Any]) -> list[str]:
        """The `lindung rescore` command a job runs, on the pack, model and registry in use when
        it was asked for (`uses`)."""
        folder = self.folder(job_id)
        settings = self.settings
        uses = options["uses"]
        with database.reading(self.engine) as connection:
            chosen = in_use.choice(connection)

        def pack_and_model(resolved: dict[str, str]) -> tuple[str, str]:
            # refused if changed in place since the job was queued
            pack = in_use.rescoring_pack(settings, chosen, resolved["rule_pack"])
            return pack.folder, str(library.model_folder(settings, resolved["model"]))

        pack, model = pack_and_model(uses)
        registry = settings.registry
        if uses["registry"] != "settings":
            registry = folder / REGISTRY_FILE  # written when the job was asked for
        out = folder / f"out.{options['output']}"
        command = [
            sys.executable,
            "-m",
            "api",
            "rescore",
            str(source),
            "--out",
            str(out),
            "--rule-pack",
            pack,
            "--model",
            model,
            "--registry",
            str(registry),
            "--on-error",
            options["on_error"],
            "--progress-json",
            "--report",
            str(folder / "report"),
        ]
        if options["on_error"] == "skip":
            command += ["--rejects", str(folder / FILES["rejects"])]
        if "baseline" in uses:
            live_pack, live_model = pack_and_model(uses["baseline"])
            command += ["--baseline-rule-pack", live_pack, "--baseline-model", live_model]
        if options["compare_to"]:  # named by its job: where the server keeps it is not shown
            command += ["--compare-to", str(options["compare_to_file"])]
            command += ["--compare-to-name", f"job {options['compare_to']}"]
        return command

    def _run(self, job_id: str, source: Path, options: dict[str, Any]) -> None:
        try:
            with self._slot:
                if self._stopping:
                    with database.transaction(self.engine) as connection:
                        jobs.failed(connection, job_id, "stopped: the server shut down", now())
                    return
                try:
                    command = self.command(job_id, source, options)
                    with database.transaction(self.engine) as connection:
                        if not jobs.started(connection, job_id, runner(), now()):
                            return  # cancelled while queued
                    code, summary, error = self._follow(job_id, command)
                except Exception as problem:  # the job fails; the server goes on
                    code, summary, error = 1, None, f"the job could not start: {problem}"
                with database.transaction(self.engine) as connection:
                    if code == 0 and summary is not None:
                        jobs.finished(connection, job_id, summary, now())
                    else:  # an analyst reads it: the server's folders are not named
                        said = library.public_text(self.settings, error or f"exit status {code}")
                        jobs.failed(connection, job_id, said, now())
        finally:  # the upload holds names and identity numbers in clear: kept only while read
            source.unlink(missing_ok=True)
            with self._lock:
                self._held.discard(job_id)
            self._clear_if_cancelled(job_id)

    def _clear_if_cancelled(self, job_id: str) -> None:
        """A cancelled job keeps no file: what its command wrote before it stopped is partial."""
        try:
            with database.reading(self.engine) as connection:
                if not jobs.cancelled(connection, [job_id]):
                    return
        except Exception:  # the database away: the files stay, as any ended job's do
            log.exception("rescore job %s: could not read whether it was cancelled", job_id)
            return
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def cancel(self, job_id: str) -> None:
        """Stop a cancelled job's command now if this process runs it (a job queued here never
        starts; another server process stops its own at its next heartbeat)."""
        with self._lock:
            process = self._running.get(job_id)
        if process is not None:
            _stop(process)

    def _follow(self, job_id: str, command: list[str]) -> tuple[int, dict[str, Any] | None, str]:
        environment = {**os.environ, **self._environment()}
        said: deque[str] = deque(maxlen=20)
        with subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            start_new_session=True,  # a group of its own, its worker processes with it: `_stop`
        ) as process:
            with self._lock:
                self._running[job_id] = process
            with database.reading(self.engine) as connection:
                if jobs.cancelled(connection, [job_id]):  # before this process could be stopped
                    _stop(process)
            assert process.stderr is not None
            assert process.stdout is not None
            written = 0.0
            for line in process.stderr:
                try:
                    progress = json.loads(line)
                except ValueError:
                    progress = None
                if not isinstance(progress, dict) or set(progress) != {"stage", "done", "total"}:
                    said.append(line.rstrip())  # what the command says: its error, if it fails
                    continue
                finished = progress["done"] == progress["total"]
                if finished or time.monotonic() - written >= PROGRESS_EVERY:
                    written = time.monotonic()
                    with database.transaction(self.engine) as connection:
                        jobs.progressed(connection, job_id, progress)
            output = process.stdout.read()
            code = process.wait()
        with self._lock:
            self._running.pop(job_id, None)
        summary = _without_paths(json.loads(output)) if code == 0 and output.strip() else None
        error = "\n".join(line for line in said if line).removeprefix("Error: ")
        return code, summary, error or ("stopped: the server shut down" if self._stopping else "")

    def _environment(self) -> dict[str, str]:
        settings = self.settings
        found = {
            "LINDUNG_ENVIRONMENT": settings.environment,
            "LINDUNG_PSEUDONYM_KEY": settings.pseudonym_key.get_secret_value(),
            "LINDUNG_RULE_PACK": str(settings.rule_pack),  # the pack LINDUNG_MODEL_DIR's is for
            "LINDUNG_MODEL_DIR": str(settings.model_dir),
            "LINDUNG_TRAINING_ROWS": str(settings.training_rows),
        }
        if settings.model_sha256:
            found["LINDUNG_MODEL_SHA256"] = settings.model_sha256
        return found

    def stop(self, wait: float = 30.0) -> None:
        """Stop the jobs this process runs or holds (each is marked failed), and wait for their
        threads to record it while the database is still there."""
        self._stopping = True
        with self._lock:
            running = list(self._running.values())
            threads = list(self._threads)
        for process in running:
            _stop(process)
        deadline = time.monotonic() + wait
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._closing.set()
        if self._keeper is not None:
            self._keeper.join(max(0.0, deadline - time.monotonic()))


def _stop(process: subprocess.Popen[str]) -> None:
    """Stop a job's command and the worker processes it started (they would live on, idle,
    holding a model each, if only the command were stopped)."""
    with contextlib.suppress(ProcessLookupError):  # it has ended, and its group with it
        os.killpg(process.pid, signal.SIGTERM)


def _without_paths(summary: dict[str, Any]) -> dict[str, Any]:
    """The command's summary less where it wrote on the server: a job's files are its links."""
    summary.pop("out", None)
    if isinstance(summary.get("report"), dict):
        summary["report"].pop("folder", None)
    return summary
