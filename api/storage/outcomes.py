"""What officers did with a decision, and later what the case turned out to be.

Outcomes are appended, never changed: an action may be followed by another (postponed, then
referred); a confirmed outcome becomes a labelled case for retraining. It is set once: a wrong
one is corrected by a confirmation that names the one it corrects and says why (`corrects`, a
note), which supersedes it; both stay in the trail, and the latest is the label.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from api.problems import Conflict, Invalid
from api.storage import audit, decisions, tables
from api.storage.keys import Caller
from engine.case import CASE_FIELDS

ACTIONS = ("cleared", "postponed", "referred", "counselled")
CONFIRMED = ("procedural", "non_procedural", "trafficking")
_DIGITS = re.compile(r"\S*\d{6,}\S*")
# Numbers in a note: first what is kept though it has six digits or more (a date with its time,
# an amount in thousands such as "Rp 15.000.000", which never starts with 0 as a phone does, nor
# with 62.8 as a mobile does without its +: 62.812.350.949 is one, Rp 62.8 billion none),
# else a number written in groups ("0812-3456-7890", "3201 9999 8888 7777", "+62 (812) 3456
# 7890", "081.234.567.890", "081,234,567,890"; a comma only between digits, not in a list).
_NUMBERS = re.compile(
    r"(?P<kept>\d{4}-\d{2}-\d{2}(?:[ T]\d{1,2}[:.]\d{2})?(?![-.:]?\d)"
    r"|(?!62[.,]8\d\d(?:[.,]\d{3}){2}(?![.,]?\d))"  # a mobile with 62 and no +: not Rp 62.8bn
    r"[1-9]\d{0,2}(?:[.,]\d{3}){1,3}(?:,\d{1,2})?(?![.,]?\d)"
    r"|\d{1,2}[:.]\d{2}(?![.:]?\d))"
    r"|\+?\(?\d(?:[\d \-./()]|,(?=\d))*\d\)?"
)


def _grouped(number: re.Match[str]) -> str:
    text = number.group()
    if number.group("kept") or sum(character.isdigit() for character in text) < 6:
        return text
    return "[redacted]"


def scrub(note: str | None) -> str | None:
    """A free-text note without anything that looks like an ID number (NIK, passport, phone),
    written in one piece or in groups: notes are stored, and identifiers are never stored in
    clear. Dates and amounts in thousands are kept. A note of nothing visible (spaces, a
    zero-width space) is none."""
    if note is None or not any(c.isprintable() and not c.isspace() for c in note):
        return None
    return _DIGITS.sub("[redacted]", _NUMBERS.sub(_grouped, note.strip()))[:2_000] or None


def record(
    connection: Connection,
    decision_id: str,
    *,
    action: str | None,
    confirmed: str | None,
    note: str | None,
    caller: Caller,
    at: datetime,
    corrects: str | None = None,
) -> dict[str, Any]:
    """Append an outcome to a decision the caller may read; returns the decision's outcome.

    `corrects`: the confirmed outcome this confirmation corrects (it must be the one in force:
    a correction sent twice, or after another officer's, is refused rather than applied)."""
    decisions.find(connection, decision_id, caller)  # exists, and is the caller's to act on
    if action is None and confirmed is None:
        raise Invalid("give the action taken, the confirmed outcome, or both", "action")
    note = scrub(note)
    if corrects is not None:
        if confirmed is None:
            raise Invalid(f"give the confirmed outcome that replaces {corrects}", "confirmed")
        if confirmed == corrects:
            raise Invalid(f"a correction of {corrects} confirms another outcome", "confirmed")
        if note is None:
            raise Invalid("say why the confirmed outcome is corrected", "note")
    # Outcomes of one decision are recorded in turn (on PostgreSQL; SQLite's writers already
    # are): a confirmation sees the one committed while it waited, and is refused if it differs.
    d = tables.decisions.c
    connection.execute(select(d.decision_id).where(d.decision_id == decision_id).with_for_update())
    current = summary(connection, decision_id)["confirmed"]
    if corrects is not None and current != corrects:
        raise Conflict(
            f"this decision's outcome is confirmed as {current}, not {corrects}: reload it"
            if current
            else "this decision's outcome is not confirmed yet: there is nothing to correct",
            "corrects",
        )
    if corrects is None and confirmed and current and current != confirmed:
        raise Conflict(
            f"this decision's outcome was already confirmed as {current}; to correct it, send"
            f' "corrects": "{current}" with a note saying why',
            "confirmed",
        )
    body = {"action": action, "confirmed": confirmed, "note": note}
    if corrects is not None:
        body["corrects"] = corrects
    [seq] = audit.append(connection, [audit.Entry("outcome", decision_id, caller.key_id, body)], at)
    connection.execute(
        tables.outcomes.insert().values(
            audit_seq=seq,
            decision_id=decision_id,
            action=action,
            confirmed=confirmed,
            corrects=corrects,
            recorded_at=at,
            key_id=caller.key_id,
        )
    )
    return summary(connection, decision_id)


def summary(connection: Connection, decision_id: str) -> dict[str, Any]:
    """The actions taken, the confirmed outcome in force (the latest confirmation), every
    confirmation with the one it corrects, and the officers' notes (as stored: redacted), oldest
    first."""
    o = tables.outcomes.c
    rows = connection.execute(
        select(o.audit_seq, o.action, o.confirmed, o.corrects, o.recorded_at, o.key_id)
        .where(o.decision_id == decision_id)
        .order_by(o.audit_seq)  # the log's order, which verify holds each row to
    ).all()
    notes = {r.audit_seq: audit.body_of(connection, r.audit_seq).get("note") for r in rows}

    def said(r: Any) -> dict[str, Any]:
        return {"at": r.recorded_at.isoformat(), "key_id": r.key_id}

    confirmations = [
        {"confirmed": r.confirmed, "corrects": r.corrects, "note": notes[r.audit_seq], **said(r)}
        for r in rows
        if r.confirmed
    ]
    return {
        "decision_id": decision_id,
        "actions": [{"action": r.action, **said(r)} for r in rows if r.action],
        "confirmed": confirmations[-1]["confirmed"] if confirmations else None,
        "confirmations": confirmations,
        "notes": [{"note": notes[r.audit_seq], **said(r)} for r in rows if notes[r.audit_seq]],
    }


def labelled(connection: Connection) -> Iterator[dict[str, Any]]:
    """Every decision with a confirmed outcome: its pseudonymised input and the label
    `non_procedural` (trafficking counts as non-procedural) of its latest confirmation (a
    correction supersedes what it corrects), for `lindung model train`. In the order they
    were first confirmed."""
    o = tables.outcomes.c
    latest: dict[str, str] = {}
    for row in connection.execute(
        select(o.decision_id, o.confirmed).where(o.confirmed.is_not(None)).order_by(o.audit_seq)
    ):
        latest[row.decision_id] = row.confirmed
    for decision_id, confirmed in latest.items():
        yield {
            **decisions.stored_input(connection, decision_id),
            "non_procedural": confirmed != "procedural",
        }


def labelled_csv(rows: list[dict[str, Any]]) -> str:
    """Confirmed cases as a labelled CSV that `lindung model train --data` reads."""
    columns = [path for path in CASE_FIELDS if any(path in row for row in rows)]
    out = io.StringIO()
    writer = csv.DictWriter(out, [*columns, "non_procedural"], extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ";".join(v) if isinstance(v, list) else v for k, v in row.items()})
    return out.getvalue()
