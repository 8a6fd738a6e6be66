"""The server processes that hold rescore jobs: how each is named, and whether it still runs.

A job is held (queued or running) by the server process that took it, its runner, and is
interrupted when that process stops without ending it (killed, its machine down). A PID alone
does not tell: a server started again in a container is PID 1 again, another process may take a
stopped one's PID, and a process on another machine sharing the database cannot be looked up.
So a runner is named by its kernel's boot, its PID namespace, its PID and its start time
(`host:pid:boot.namespace.start`), a name no other process has. A process on the same kernel
and in the same PID namespace sees at once in /proc whether the runner still runs. Any other
judges by the job's heartbeat, which its runner writes every BEAT seconds: a job silent for
STALE seconds, by the database's clock (machines' clocks may differ), has lost its runner.
"""

from __future__ import annotations

import functools
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from api.storage.jobs import HELD

BEAT = 5.0  # seconds between a runner's heartbeats
STALE = 60.0  # seconds without one after which a job's runner has gone (a busy database waits 30)

_names: dict[int, str] = {}  # by PID: a forked worker names itself anew


def runner() -> str:
    """This server process's name, which no other process shares."""
    pid = os.getpid()
    if pid not in _names:
        place, started = _place(), _started(pid)
        identity = f"{place}.{started}" if place and started else secrets.token_hex(16)
        _names[pid] = f"{socket.gethostname()[:100]}:{pid}:{identity}"
    return _names[pid]


def gone(job: dict[str, Any], clock: Callable[[], datetime]) -> bool:
    """Whether the job is held by a runner that has stopped; `clock` tells the database's time
    (asked only if the heartbeat must judge)."""
    if job["status"] not in HELD or not job.get("runner"):
        return False
    name = str(job["runner"])
    if name == runner():
        return False
    parts = name.split(":")  # host:pid:identity (before, host:pid)
    if len(parts) == 3 and parts[1].isdigit():
        place, _, started = parts[2].rpartition(".")
        if place and place == _place():
            return _started(int(parts[1])) != started
    beat: datetime | None = job.get("beat_at")
    if beat is None:  # taken by a server of an earlier version, which does not beat
        return _gone_before(name)
    return clock() - beat > timedelta(seconds=STALE)


def _gone_before(name: str) -> bool:
    """As an earlier version judged its own runners (host:pid): by the PID, on the same host."""
    host, _, pid = name.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@functools.cache
def _place() -> str | None:
    """This kernel's boot and this process's PID namespace: where a PID names one process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")  # pid:[4026531836]
        own = os.readlink("/proc/self") == str(os.getpid())  # not another namespace's /proc
    except OSError:
        return None
    if not own:
        return None
    return f"{boot}.{namespace.removeprefix('pid:[').removesuffix(']')}"


def _started(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot), or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # the 22nd field; the 2nd, (name), may hold ) too
