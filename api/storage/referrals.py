"""The urgent-referral queue: opened with each urgent decision, worked by desks in deadline
order (acknowledged, then resolved with a note); overdue ones are marked."""

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
    """A page of referrals in the given states, nearest deadline first (overdue ones come
    first); the cursor of the next page; and how many there are in all, and overdue, so that
    a long queue hides neither."""
    r, d = tables.referrals.c, tables.decisions.c
    conditions: list[ColumnElement[bool]] = [r.status.in_(statuses)]
    if after:
        deadline, decision_id = cursor(after)
        conditions.append(
            or_(r.deadline > deadline, and_(r.deadline == deadline, r.decision_id > decision_id))
        )
    rows = connection.execute(
        select(tables.referrals, d.case_id, d.channel, d.tier, d.screened_at)
        .join_from(tables.referrals, tables.decisions, d.decision_id == r.decision_id)
        .where(*conditions)
        .order_by(r.deadline, r.decision_id)
        .limit(limit + 1)
    ).all()
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
        "next": next_cursor(last.deadline, last.decision_id) if last else None,
    }


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
