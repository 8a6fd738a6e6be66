"""The lock file next to a SQLite file, on which writers of every process queue."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine


@contextmanager
def held(engine: Engine) -> Iterator[None]:
    """On a SQLite file, writers of every process queue on a lock file next to it: SQLite's own
    wait for its write lock sleeps and retries (up to 100 ms a try), which a desk would notice;
    the kernel wakes the next writer as soon as the lock is free. Elsewhere, nothing."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    lock = _lock_file(f"{path}.lock")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)


_lock_files = threading.local()


def _lock_file(path: str) -> int:
    """The lock file, opened once per thread (a lock is held by an open file, so threads of one
    process exclude each other only with files of their own)."""
    opened: dict[str, int] | None = getattr(_lock_files, "opened", None)
    if opened is None:
        opened = _lock_files.opened = {}
    descriptor = opened.get(path)
    if descriptor is None:
        descriptor = opened[path] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    return descriptor
