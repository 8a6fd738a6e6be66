"""The case history in the database: escort links seen by every desk and every server process.

A link is recorded and counted inside the screening's transaction, so a decision and the link it
counted are stored together or not at all. On PostgreSQL an advisory lock per escort makes two
processes screening travellers of the same escort take turns, so each counts the other; SQLite's
write lock, held from the start of the transaction, does the same.

A bulk of cases counts its escorts' travellers beforehand, outside the write lock
(`PreviewHistory`); its transaction then keeps the counts of the escorts nobody linked meanwhile
and counts the others again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, select, text

from api.storage import tables
from api.storage.database import is_postgres
from api.storage.rows import RowInsert
from engine.history import Link, travellers_within

_links = tables.escort_links.c
_NEAR = select(_links.at, _links.traveller).where(  # one escort's links less than a window away
    _links.escort == bindparam("escort"),
    _links.at > bindparam("since", type_=tables.UtcDateTime()),
    _links.at < bindparam("until", type_=tables.UtcDateTime()),
)
_STATES = (
    select(_links.escort, func.count(), func.max(_links.link_id))
    .where(_links.escort.in_(bindparam("escorts", expanding=True)))
    .group_by(_links.escort)
)
_INSERT_LINKS = RowInsert(tables.escort_links, ("escort", "traveller", "at"))

# An escort's links as a transaction sees them: how many, and the newest one's number. Links are
# only ever added, so any link recorded since changes it.
EscortState = tuple[int, int]


def escort_states(connection: Connection, escorts: Iterable[str]) -> dict[str, EscortState]:
    """The state of each of `escorts` (no links: (0, 0))."""
    wanted = sorted(set(escorts))
    states = dict.fromkeys(wanted, (0, 0))
    if wanted:
        for escort, count, newest in connection.execute(_STATES, {"escorts": wanted}):
            states[escort] = (int(count), int(newest))
    return states


def near(connection: Connection, escort: str, at: datetime, window: timedelta) -> list[Link]:
    """The escort's stored links less than a window from `at`, before or after it."""
    found = connection.execute(
        _NEAR, {"escort": escort, "since": at - window, "until": at + window}
    )
    return [(when, str(who)) for when, who in found]


def escort_lock(escort: str) -> int:
    """A signed 64-bit advisory lock key for one escort pseudonym (its hash's hex digits)."""
    value = int(escort.rsplit(":", 1)[-1][:16], 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def escort_locks(escorts: Iterable[str]) -> list[int]:
    """The advisory lock keys of `escorts`, in the order `DatabaseCaseHistory.lock` takes them
    (a wait for them in that order cannot deadlock with a transaction taking them)."""
    return [escort_lock(escort) for escort in sorted(set(escorts))]


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

    def record(self, links: Iterable[Mapping[str, object]]) -> None:
        """Record links counted beforehand (`PreviewHistory.links`) whose escorts are locked."""
        rows = list(links)
        if not {str(row["escort"]) for row in rows} <= self._locked:
            raise RuntimeError("lock an escort before recording its links")
        _INSERT_LINKS(self.connection, rows)

    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        self.lock([escort])
        self.connection.execute(
            tables.escort_links.insert(), {"escort": escort, "traveller": traveller, "at": at}
        )
        return travellers_within(near(self.connection, escort, at, window), at, window)


class PreviewHistory:
    """`engine.history.CaseHistory` for a bulk of cases, read outside the write lock (in a
    `database.reading` transaction): each count is what `DatabaseCaseHistory` would give in the
    same order, if nobody links a traveller of the escort before the bulk's own transaction.
    It records nothing: `links` are the links counted, to record with the decisions, and
    `changed` tells that transaction which escorts' counts no longer hold."""

    def __init__(self, connection: Connection, escorts: Iterable[str]) -> None:
        self.connection = connection
        self.states = escort_states(connection, escorts)
        self.links: list[dict[str, object]] = []
        self._own: dict[str, list[tuple[datetime, str]]] = {}

    def link(self, escort: str, traveller: str, at: datetime, window: timedelta) -> int:
        if escort not in self.states:
            raise RuntimeError(f"{escort} was not read beforehand")
        own = self._own.setdefault(escort, [])
        own.append((at, traveller))
        self.links.append({"escort": escort, "traveller": traveller, "at": at})
        stored = near(self.connection, escort, at, window)
        return travellers_within([*stored, *own], at, window)

    def changed(self, connection: Connection) -> set[str]:
        """The escorts linked to another traveller since the preview read them (read in the
        caller's transaction, once it holds their locks)."""
        now = escort_states(connection, self.states)
        return {escort for escort, state in self.states.items() if now[escort] != state}
