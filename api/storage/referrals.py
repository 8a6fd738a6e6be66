"""The urgent-referral queue: opened with each urgent decision, worked by desks in deadline
order (acknowledged, then resolved with a note); overdue ones are marked. Listed with resolved
ones, those still to work come first, and the resolved after them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, update

from api.problems import Conflict, Invalid, NotFound
from api.storage import audit, tables
from api.storage.decisions import cursor, next_cursor
from api.storage.keys import Caller
from api.storage.outcomes import scrub

STATUSES = ("open", "acknowledged", "resolved")
NEXT = {"acknowledge": ("open",), "resolve": ("open", "acknowledged")}


def queue(
    connection: Connection,
    now: datetime,
    statuses: tuple[str, ...],
    limit: int,
    after: str | None = None,
) -> dict[str, Any]:
    """A page of referrals in the given states: those still to work (open or acknowledged),
    nearest deadline first (so overdue ones come first), then the resolved ones, most recently
    resolved first; the cursor of the next page; and how many there are in all, and overdue,
    so that a long queue hides neither."""
    r = tables.referrals.c
    working = [status for status in statuses if status != "resolved"]
    among_resolved, at, decision_id = _position(after)
    rows: list[Any] = []
    if working and not among_resolved:
        conditions: list[ColumnElement[bool]] = [r.status.in_(working)]
        if after:
            conditions.append(
                or_(r.deadline > at, and_(r.deadline == at, r.decision_id > decision_id))
            )
        rows += _rows(connection, conditions, (r.deadline, r.decision_id), limit + 1)
    if "resolved" in statuses and len(rows) <= limit:
        conditions = [r.status == "resolved"]
        if among_resolved:
            conditions.append(
                or_(r.resolved_at < at, and_(r.resolved_at == at, r.decision_id > decision_id))
            )
        order = (r.resolved_at.desc(), r.decision_id)
        rows += _rows(connection, conditions, order, limit + 1 - len(rows))
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    total, overdue = connection.execute(
        select(
            func.count(),
            func.count().filter(and_(r.status != "resolved", r.deadline < now)),
        ).where(r.status.in_(statuses))
    ).one()
    return {
        "referrals": [_item(row, now) for row in page],
        "total": int(total),
        "overdue": int(overdue),
        "next": _next(last) if last else None,
    }


# The cursor of a page that ends among the resolved referrals, which are in another order.
_RESOLVED = "resolved-"


def _next(row: Any) -> str:
    if row.status == "resolved":
        return _RESOLVED + next_cursor(row.resolved_at, row.decision_id)
    return next_cursor(row.deadline, row.decision_id)


def _position(after: str | None) -> tuple[bool, datetime, str]:
    """Where a cursor left off: among the resolved referrals or not, and the last one's time
    (its resolution, or its deadline) and decision id."""
    if after is None:
        return False, datetime.min, ""
    among_resolved = after.startswith(_RESOLVED)
    at, decision_id = cursor(after.removeprefix(_RESOLVED))
    return among_resolved, at, decision_id


def _rows(
    connection: Connection,
    conditions: list[ColumnElement[bool]],
    order: tuple[Any, ...],
    limit: int,
) -> list[Any]:
    r, d = tables.referrals.c, tables.decisions.c
    return list(
        connection.execute(
            select(tables.referrals, d.case_id, d.channel, d.tier, d.screened_at)
            .join_from(tables.referrals, tables.decisions, d.decision_id == r.decision_id)
            .where(*conditions)
            .order_by(*order)
            .limit(limit)
        ).all()
    )


def _item(row: Any, now: datetime) -> dict[str, Any]:
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    active = row.status != "resolved"
    reasons = json.loads(row.reasons)
    return {
        "decision_id": row.decision_id,
        "case_id": row.case_id,
        "channel": row.channel,
        "screened_at": row.screened_at.isoformat(),
        "agency": row.agency,
        "also_notify": json.loads(row.also_notify),
        "rule_ids": [reason["rule_id"] for reason in reasons],
        "reasons": reasons,  # the referring flags' titles and reasons, in both languages
        "deadline": row.deadline.isoformat(),
        "status": row.status,
        "overdue": active and row.deadline < now,
        "minutes_left": round((row.deadline - now).total_seconds() / 60) if active else None,
        "opened_at": when(row.opened_at),
        "acknowledged_at": when(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": when(row.resolved_at),
        "resolved_by": row.resolved_by,
        "note": row.note,
    }


def find(connection: Connection, decision_id: str, now: datetime) -> dict[str, Any]:
    r, d = tables.referrals.c, tables.decisions.c
    row = connection.execute(
        select(tables.referrals, d.case_id, d.channel, d.tier, d.screened_at)
        .join_from(tables.referrals, tables.decisions, d.decision_id == r.decision_id)
        .where(r.decision_id == decision_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no referral for decision {decision_id}", "decision_id")
    return _item(row, now)


def acknowledge(
    connection: Connection, decision_id: str, caller: Caller, at: datetime
) -> dict[str, Any]:
    return _advance(connection, decision_id, "acknowledge", caller, at, None)


def resolve(
    connection: Connection, decision_id: str, note: str, caller: Caller, at: datetime
) -> dict[str, Any]:
    cleaned = scrub(note)
    if not cleaned:
        raise Invalid("say how the referral was resolved", "note")
    return _advance(connection, decision_id, "resolve", caller, at, cleaned)


def _advance(
    connection: Connection,
    decision_id: str,
    step: str,
    caller: Caller,
    at: datetime,
    note: str | None,
) -> dict[str, Any]:
    r = tables.referrals.c
    current = find(connection, decision_id, at)
    if current["status"] not in NEXT[step]:
        raise Conflict(f"the referral is already {current['status']}", "status")
    values: dict[str, Any] = (
        {"status": "acknowledged", "acknowledged_at": at, "acknowledged_by": caller.key_id}
        if step == "acknowledge"
        else {"status": "resolved", "resolved_at": at, "resolved_by": caller.key_id, "note": note}
    )
    changed = connection.execute(
        update(tables.referrals)
        .where(r.decision_id == decision_id, r.status.in_(NEXT[step]))
        .values(**values)
    ).rowcount
    if not changed:  # another desk moved it between our read and our write
        raise Conflict("the referral was changed by someone else; reload it", "status")
    body = {"note": note} if note else {}
    audit.append(
        connection,
        [audit.Entry(f"referral_{values['status']}", decision_id, caller.key_id, body)],
        at,
    )
    return find(connection, decision_id, at)
