"""Rescore jobs: what an analyst asked for, how far it got, and what it produced."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from api.storage import tables
from api.storage.database import is_postgres

STATUSES = ("queued", "running", "done", "failed", "cancelled")
HELD = ("queued", "running")  # a server process holds the job (and may read its upload)
_JOBS = tables.rescore_jobs


def create(
    connection: Connection,
    job_id: str,
    key_id: str,
    source_name: str,
    options: dict[str, Any],
    at: datetime,
    runner: str,
) -> None:
    """A queued job, held by the server process `runner` (api/runners.py) until it starts it."""
    connection.execute(
        _JOBS.insert().values(
            job_id=job_id,
            runner=runner,
            beat_at=clock(connection),
            key_id=key_id,
            created_at=at,
            status="queued",
            source_name=source_name,
            options=json.dumps(options),
        )
    )


def get(connection: Connection, job_id: str) -> dict[str, Any] | None:
    row = connection.execute(select(_JOBS).where(_JOBS.c.job_id == job_id)).mappings().first()
    return _plain(row) if row else None


def listing(connection: Connection, limit: int = 100) -> list[dict[str, Any]]:
    query = select(_JOBS).order_by(_JOBS.c.created_at.desc(), _JOBS.c.job_id).limit(limit)
    return [_plain(row) for row in connection.execute(query).mappings()]


def held(connection: Connection) -> list[dict[str, Any]]:
    """The jobs queued or running."""
    query = select(_JOBS).where(_JOBS.c.status.in_(HELD)).order_by(_JOBS.c.job_id)
    return [_plain(row) for row in connection.execute(query).mappings()]


def started(connection: Connection, job_id: str, runner: str, at: datetime) -> bool:
    """Mark the job running, unless it was cancelled while queued; whether it was."""
    marked = connection.execute(
        update(_JOBS)
        .where(_JOBS.c.job_id == job_id, _JOBS.c.status == "queued")
        .values(status="running", started_at=at, runner=runner, beat_at=clock(connection))
    )
    return marked.rowcount == 1


def beat(connection: Connection, runner: str) -> None:
    """The heartbeat of the jobs `runner` holds: it still runs."""
    connection.execute(
        update(_JOBS)
        .where(_JOBS.c.runner == runner, _JOBS.c.status.in_(HELD))
        .values(beat_at=clock(connection))
    )


def clock(connection: Connection) -> datetime:
    """Now by the database's clock, which every server sharing it reads; a SQLite file is shared
    by the processes of one machine, whose clock it is."""
    if is_postgres(connection):
        at: datetime = connection.execute(select(func.now())).scalar_one()
        return at.astimezone(UTC)
    return datetime.now(UTC)


def progressed(connection: Connection, job_id: str, progress: dict[str, Any]) -> None:
    _set(connection, job_id, progress=json.dumps(progress))


def finished(connection: Connection, job_id: str, summary: dict[str, Any], at: datetime) -> None:
    _end(connection, job_id, status="done", summary=json.dumps(summary), finished_at=at)


def failed(connection: Connection, job_id: str, error: str, at: datetime) -> None:
    _end(connection, job_id, status="failed", error=error, finished_at=at)


def cancel(connection: Connection, job_id: str, by: str, at: datetime) -> bool:
    """Cancel the job for the key `by` if it is queued or running; whether it was. Its runner,
    in whichever server process, stops it (`api.jobs`)."""
    error = f"cancelled by key {by}"
    return _end(connection, job_id, status="cancelled", error=error, finished_at=at)


def cancelled(connection: Connection, job_ids: Iterable[str]) -> set[str]:
    """Which of `job_ids` were cancelled."""
    query = select(_JOBS.c.job_id).where(
        _JOBS.c.job_id.in_(list(job_ids)), _JOBS.c.status == "cancelled"
    )
    return set(connection.execute(query).scalars())


def interrupted(connection: Connection, job: dict[str, Any], error: str, at: datetime) -> bool:
    """Mark the job failed if it is still as it was read: held by the same runner, which has
    not beaten since; whether it was."""
    beat = job["beat_at"]
    marked = connection.execute(
        update(_JOBS)
        .where(
            _JOBS.c.job_id == job["job_id"],
            _JOBS.c.status.in_(HELD),
            _JOBS.c.runner == job["runner"],
            _JOBS.c.beat_at.is_(None) if beat is None else _JOBS.c.beat_at == beat,
        )
        .values(status="failed", error=error, finished_at=at)
    )
    return marked.rowcount == 1


def _set(connection: Connection, job_id: str, **values: Any) -> None:
    connection.execute(update(_JOBS).where(_JOBS.c.job_id == job_id).values(**values))


def _end(connection: Connection, job_id: str, **values: Any) -> bool:
    """End the job as `values` say if it has not ended (a cancelled job stays cancelled when its
    command stops, and a job marked interrupted stays so); whether it was."""
    marked = connection.execute(
        update(_JOBS).where(_JOBS.c.job_id == job_id, _JOBS.c.status.in_(HELD)).values(**values)
    )
    return marked.rowcount == 1


def _plain(row: Any) -> dict[str, Any]:
    found = dict(row)
    for name in ("options", "progress", "summary"):
        found[name] = json.loads(found[name]) if found[name] else None
    for name in ("created_at", "started_at", "finished_at"):
        found[name] = found[name].isoformat() if found[name] else None
    return found
