"""The case history in the database: escort links seen by every desk and every server process.

A link is recorded and counted inside the screening's transaction, so a decision and the link it
counted are stored together or not at all. On PostgreSQL an advisory lock per escort makes two
processes screening travellers of the same escort take turns, so each counts the other; SQLite's
write lock, held from the start of the transaction, does the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, select, text

from api.storage import tables
from api.storage.database import is_postgres

_links = tables.escort_links.c
_TRAVELLERS = select(func.count(func.distinct(_links.traveller))).where(  # built once
    _links.escort == bindparam("escort"),
    _links.at > bindparam("since", type_=tables.UtcDateTime()),
    _links.at <= bindparam("until", type_=tables.UtcDateTime()),
)


def escort_lock(escort: str) -> int:
    """A signed 64-bit advisory lock key for one escort pseudonym (its hash's hex digits)."""
    value = int(escort.rsplit(":", 1)[-1][:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value


class DatabaseCaseHistory:
    """`engine.history.CaseHistory` on the caller's open transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._postgres = is_postgres(connection)
        self._locked: set[str] = set()

    def lock(self, escorts: Iterable[str]) -> None:
        """Take the escorts' locks up front, in one order, so bulk requests cannot deadlock."""
        for escort in sorted(set(escorts) - self._locked):
            if self._postgres:
                self.connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": escort_lock(escort)}
                )
            self._locked.add(escort)

    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        self.lock([escort])
        self.connection.execute(
            tables.escort_links.insert(), {"escort": escort, "traveller": traveller, "at": at}
        )
        return int(
            self.connection.execute(
                _TRAVELLERS, {"escort": escort, "since": at - window, "until": at}
            ).scalar_one()
        )
