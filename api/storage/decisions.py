"""Decisions as stored: one audit entry each (the full decision, its pseudonymised input and who
asked), indexed for the analysts' queries, with a referral opened for each urgent one."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, exists, or_, select

from api.problems import Invalid, NotFound
from api.storage import audit, audit_body, keys, tables
from api.storage.database import pipelined
from api.storage.keys import Caller
from api.storage.rows import RowInsert
from engine.decision import Decision, Flag, Referral

MAX_PAGE = 500


@dataclass(frozen=True)
class Screened:
    """A decision, the pseudonymised input it was made on, who asked, and the audit entry's
    body (written by `screened`, before the transaction: the less a writer does while it holds
    the write lock, the less the others wait)."""

    decision: Decision
    record: Mapping[str, Any]
    caller: Caller
    audit_body: str
    packed_body: bytes  # as stored (`audit_body.pack`)


def screened(decision: Decision, record: Mapping[str, Any], caller: Caller) -> Screened:
    body = {**decision.as_dict(), "input": dict(record), "asked_by": caller.as_dict()}
    if decision.escort_traveller is not None:  # what verify checks the escort link against
        body["escort_traveller"] = decision.escort_traveller
    text = audit.canonical(body)
    return Screened(decision, record, caller, text, audit_body.pack(text))


def store(
    connection: Connection,
    screened: Sequence[Screened],
    at: datetime,
    *,
    head: audit.Head | None = None,
    commit: bool = False,
) -> None:
    """Store decisions inside the caller's transaction (all of them, or none if it rolls back).

    `head`: the audit head, if the transaction already locked it (`activation.generation_and_
    head`). `commit`: these writes end the transaction (`database.pipelined`): nothing may
    follow them in it."""
    entries = [
        audit.Entry(
            "decision",
            item.decision.decision_id,
            item.caller.key_id,
            {},
            item.audit_body,
            item.packed_body,
        )
        for item in screened
    ]
    chained = audit.chain(connection, entries, at, head)
    # on PostgreSQL: one round trip for every write of the group (and the commit)
    with pipelined(connection, commit=commit):
        audit.write(connection, chained)
        _write(connection, screened, chained.numbers, at)


def _write(
    connection: Connection, screened: Sequence[Screened], numbers: list[int], at: datetime
) -> None:
    rows, flags, referrals = [], [], []
    for seq, item in zip(numbers, screened, strict=True):
        decision = item.decision
        rows.append(
            {
                "decision_id": decision.decision_id,
                "audit_seq": seq,
                "case_id": decision.case_id,
                "channel": item.record["channel"],
                "tier": decision.tier,
                "risk_score": decision.risk_score,
                "screened_at": decision.screened_at,
                "recorded_at": at,
                "key_id": item.caller.key_id,
                "holder": item.caller.holder,
                "rule_pack": decision.versions["rule_pack"],
                "model": decision.versions["model"],
            }
        )
        flags += [
            {"decision_id": decision.decision_id, "rule_id": f.rule_id} for f in decision.flags
        ]
        if referral := decision.referral:
            referrals.append(
                {
                    "decision_id": decision.decision_id,
                    "agency": referral.agency,
                    "also_notify": json.dumps(list(referral.also_notify)),
                    "reasons": json.dumps(_why_referred(decision.flags, referral)),
                    "deadline": referral.deadline,
                    "status": "open",
                    "opened_at": at,
                }
            )
    _INSERT_DECISIONS(connection, rows)
    _INSERT_FLAGS(connection, flags)
    _INSERT_REFERRALS(connection, referrals)


# Every group of screenings runs them: through the driver (`rows`).
_INSERT_DECISIONS = RowInsert(tables.decisions)
_INSERT_FLAGS = RowInsert(tables.decision_flags)
_INSERT_REFERRALS = RowInsert(
    tables.referrals,
    ("decision_id", "agency", "also_notify", "reasons", "deadline", "status", "opened_at"),
)


def _why_referred(flags: Sequence[Flag], referral: Referral) -> list[dict[str, Any]]:
    """The referring flags' titles and reasons, for whichever desk works the referral: it may
    not read the decision (another desk's). Reasons quote facts, never an identifier."""
    return [
        {"rule_id": flag.rule_id, "title": flag.title.as_dict(), "reason": flag.reason.as_dict()}
        for flag in flags
        if flag.rule_id in referral.rule_ids
    ]


# A desk's case, once: its keys' holder, case_id and screening time (in UTC).
SentOnce = tuple[str, str, datetime]


def sent_once(case_id: str, screened_at: datetime, caller: Caller) -> SentOnce:
    return caller.holder, case_id, as_utc(screened_at, "screened_at")


def stored_before(
    connection: Connection, sent: Sequence[SentOnce]
) -> dict[SentOnce, dict[str, Any]]:
    """The stored audit bodies (decision, input and who asked) of those of `sent` stored
    before, by their desk, case_id and screening time."""
    d, log = tables.decisions.c, tables.audit_log.c
    found: dict[SentOnce, dict[str, Any]] = {}
    wanted = set(sent)
    holders = sorted({holder for holder, _case_id, _at in wanted})
    case_ids = sorted({case_id for _holder, case_id, _at in wanted})
    for start in range(0, len(case_ids), 500):
        rows = connection.execute(  # with their bodies: one query, not one a case
            select(d.holder, d.case_id, d.screened_at, log.body)
            .join_from(tables.decisions, tables.audit_log, log.seq == d.audit_seq)
            .where(d.case_id.in_(case_ids[start : start + 500]), d.holder.in_(holders))
        )
        for row in rows:
            key = (row.holder, row.case_id, row.screened_at)
            if key in wanted:
                found[key] = orjson.loads(row.body)
    return found


def find(connection: Connection, decision_id: str, caller: Caller) -> dict[str, Any]:
    """The stored decision (as the client received it, plus who asked); desks see their own."""
    query = select(tables.decisions.c.audit_seq).where(
        tables.decisions.c.decision_id == decision_id
    )
    if caller.role == "desk":
        query = query.where(_asked_by_holder(connection, caller))
    seq = connection.execute(query).scalar_one_or_none()
    if seq is None:
        raise NotFound(f"no decision {decision_id} that this key may read", "decision_id")
    body = audit.body_of(connection, seq)
    body.pop("input", None)  # pseudonymised, but only analysts' exports need it
    body.pop("escort_traveller", None)  # the audit trail's, not part of decision v1
    return body


def _asked_by_holder(connection: Connection, caller: Caller) -> ColumnElement[bool]:
    """Decisions asked for with any key the caller's holder has held (a desk keeps its decisions
    when its key is rotated). The ids are read first and named in the query: one key (most
    desks) is then the same query as before, an index range on (key_id, screened_at)."""
    held = keys.holders_keys(connection, caller.holder)
    key_id = tables.decisions.c.key_id
    return key_id == held[0] if len(held) == 1 else key_id.in_(held)


@dataclass(frozen=True)
class Filters:
    tiers: tuple[str, ...] = ()  # any of these; none: every tier
    rule_id: str | None = None
    channels: tuple[str, ...] = ()
    screened_from: datetime | None = None
    screened_to: datetime | None = None
    limit: int = 100
    after: str | None = None  # the `next` cursor of the previous page


def ever_fired(connection: Connection, rule_id: str) -> bool:
    """Whether any stored decision carries this rule (under whichever pack it was made)."""
    flags = tables.decision_flags.c
    return connection.execute(select(exists().where(flags.rule_id == rule_id))).scalar_one()


def listing(connection: Connection, filters: Filters, caller: Caller) -> dict[str, Any]:
    """A page of decision summaries, newest screening first, and the cursor of the next page."""
    d = tables.decisions.c
    query = select(d.decision_id, d.case_id, d.channel, d.tier, d.risk_score, d.screened_at)
    query = query.add_columns(d.key_id, d.rule_pack, d.model)
    conditions = []
    if caller.role == "desk":
        conditions.append(_asked_by_holder(connection, caller))
    if filters.tiers:
        conditions.append(d.tier.in_(filters.tiers))
    if filters.channels:
        conditions.append(d.channel.in_(filters.channels))
    start = filters.screened_from and as_utc(filters.screened_from, "screened_from")
    end = filters.screened_to and as_utc(filters.screened_to, "screened_to")
    if start and end and end <= start:
        raise Invalid(
            f"{end.isoformat()} is not after screened_from {start.isoformat()} (from is"
            " inclusive, to exclusive)",
            "screened_to",
        )
    if start:
        conditions.append(d.screened_at >= start)
    if end:
        conditions.append(d.screened_at < end)
    if filters.rule_id:
        flags = tables.decision_flags.c
        conditions.append(
            exists().where(flags.decision_id == d.decision_id, flags.rule_id == filters.rule_id)
        )
    if filters.after:
        at, decision_id = cursor(filters.after)
        conditions.append(
            or_(d.screened_at < at, and_(d.screened_at == at, d.decision_id < decision_id))
        )
    rows = connection.execute(
        query.where(*conditions)
        .order_by(d.screened_at.desc(), d.decision_id.desc())
        .limit(filters.limit + 1)
    ).all()
    page = rows[: filters.limit]
    fired = _rule_ids(connection, [row.decision_id for row in page])
    items = [
        {
            "decision_id": row.decision_id,
            "case_id": row.case_id,
            "channel": row.channel,
            "tier": row.tier,
            "risk_score": row.risk_score,
            "screened_at": row.screened_at.isoformat(),
            "rule_ids": fired.get(row.decision_id, []),
            "key_id": row.key_id,
            "versions": {"rule_pack": row.rule_pack, "model": row.model},
        }
        for row in page
    ]
    last = page[-1] if page and len(rows) > filters.limit else None
    return {
        "decisions": items,
        "next": next_cursor(last.screened_at, last.decision_id) if last else None,
    }


def as_utc(at: datetime, field: str) -> datetime:
    """The time in UTC; one without a zone is taken as UTC, as in a case record's
    `screened_at`. A time UTC cannot hold (year 1 at +14:00) is refused, naming `field`."""
    try:
        return at.astimezone(UTC) if at.tzinfo is not None else at.replace(tzinfo=UTC)
    except OverflowError:
        raise Invalid(f"{at.isoformat()} is out of range", field) from None


_CURSOR_TIME = "%Y%m%dT%H%M%S.%fZ"


def next_cursor(at: datetime, decision_id: str) -> str:
    """A page cursor: the last item's time (in UTC) and decision id, in characters that pass
    through a URL as they are (an ISO time's `+` reads back as a space)."""
    return f"{as_utc(at, 'after').strftime(_CURSOR_TIME)}_{decision_id}"


def cursor(value: str) -> tuple[datetime, str]:
    """A page cursor, as `next_cursor` gives it, read back."""
    try:
        at, decision_id = value.split("_", 1)
        when = datetime.strptime(at, _CURSOR_TIME).replace(tzinfo=UTC)
    except ValueError:
        raise Invalid("not a cursor this service gave out", "after") from None
    return when, decision_id


def _rule_ids(connection: Connection, decision_ids: list[str]) -> dict[str, list[str]]:
    if not decision_ids:
        return {}
    flags = tables.decision_flags.c
    fired: dict[str, list[str]] = {}
    for row in connection.execute(
        select(flags.decision_id, flags.rule_id).where(flags.decision_id.in_(decision_ids))
    ):
        fired.setdefault(row.decision_id, []).append(row.rule_id)
    return fired


def stored_input(connection: Connection, decision_id: str) -> dict[str, Any]:
    """The pseudonymised case a decision was made on."""
    seq = connection.execute(
        select(tables.decisions.c.audit_seq).where(tables.decisions.c.decision_id == decision_id)
    ).scalar_one()
    record: dict[str, Any] = json.loads(
        connection.execute(
            select(tables.audit_log.c.body).where(tables.audit_log.c.seq == seq)
        ).scalar_one()
    )["input"]
    return record
