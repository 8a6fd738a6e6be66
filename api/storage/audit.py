"""The audit trail: an append-only log, each entry chained to the one before by a SHA-256.

An entry's hash covers its sequence number, time, actor, kind, subject, body and the previous
entry's hash, so editing or deleting any entry breaks the chain from there on; the head row
(the newest sequence number and hash) catches a deleted last entry. The tables that index the
log for queries (decisions, outcomes, keys, registries, activations) are checked against it too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Table, bindparam, func, select, update

from api.storage import tables
from api.storage.database import pipelined
from api.storage.rows import DriverStatement, RowInsert

GENESIS = "0" * tables.DIGEST


def canonical(body: Mapping[str, Any]) -> str:
    """One spelling of a JSON body (keys sorted, no spaces, UTF-8), kept as the entry's text so
    that its hash can be recomputed from what is stored."""
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


def entry_hash(
    prev_hash: str, seq: int, recorded_at: datetime, actor: str, kind: str, subject: str, body: str
) -> str:
    parts = (prev_hash, str(seq), recorded_at.isoformat(), actor, kind, subject, body)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    kind: str  # decision | outcome | referral_acknowledged | referral_resolved | key_created ...
    subject: str  # what it is about: a decision id, a key id
    actor: str
    body: Mapping[str, Any]
    text: str = ""  # the body's canonical JSON, when written beforehand (outside the write lock)


# Built once (every group of screenings runs them): building a statement costs more than a
# SQLite write of it.
_HEAD = DriverStatement(
    select(tables.audit_head.c.seq, tables.audit_head.c.hash)
    .where(tables.audit_head.c.id == 1)
    .with_for_update()
)
_INSERT_ENTRIES = RowInsert(tables.audit_log)
_MOVE_HEAD = DriverStatement(
    update(tables.audit_head)
    .where(tables.audit_head.c.id == 1)
    .values(seq=bindparam("new_seq"), hash=bindparam("new_hash"))
)


def append(connection: Connection, entries: list[Entry], at: datetime) -> list[int]:
    """Chain `entries` onto the log inside the caller's transaction; returns their numbers."""
    chained = chain(connection, entries, at)
    with pipelined(connection):
        write(connection, chained)
    return chained.numbers


@dataclass(frozen=True)
class Chained:
    """Entries numbered and hashed onto the head, ready to be written."""

    rows: list[dict[str, Any]]
    numbers: list[int]
    head: dict[str, Any]


Head = tuple[int, str]  # the newest entry's number and hash


def head(connection: Connection) -> Head:
    """The head, locked until the transaction ends (FOR UPDATE on PostgreSQL; SQLite's write
    lock is already held), so that concurrent writers from any process chain one after
    another."""
    [(seq, previous)] = _HEAD.rows(connection)
    return int(seq), str(previous)


def chain(
    connection: Connection, entries: list[Entry], at: datetime, locked: Head | None = None
) -> Chained:
    """Number and hash `entries` after the head (`locked`, if the transaction already read and
    locked it; else read and locked now)."""
    seq, previous = locked if locked is not None else head(connection)
    at = at.astimezone(UTC)
    rows, numbers = [], []
    for entry in entries:
        seq += 1
        body = entry.text or canonical(entry.body)
        digest = entry_hash(previous, seq, at, entry.actor, entry.kind, entry.subject, body)
        rows.append(
            {
                "seq": seq,
                "recorded_at": at,
                "actor": entry.actor,
                "kind": entry.kind,
                "subject": entry.subject,
                "body": body,
                "prev_hash": previous,
                "hash": digest,
            }
        )
        numbers.append(seq)
        previous = digest
    return Chained(rows, numbers, {"new_seq": seq, "new_hash": previous})


def write(connection: Connection, chained: Chained) -> None:
    """Write chained entries and move the head (statements whose answers nobody reads, so
    that on PostgreSQL they can share one round trip in `pipelined`)."""
    if chained.rows:
        _INSERT_ENTRIES(connection, chained.rows)
        _MOVE_HEAD.run(connection, chained.head)


def body_of(connection: Connection, seq: int) -> dict[str, Any]:
    text = connection.execute(
        select(tables.audit_log.c.body).where(tables.audit_log.c.seq == seq)
    ).scalar_one()
    body: dict[str, Any] = json.loads(text)
    return body


@dataclass
class Verification:
    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


MAX_PROBLEMS = 50


def verify(connection: Connection) -> Verification:
    """Walk the chain from the first entry, then check each index table against it."""
    result = Verification()
    previous, expected_seq = GENESIS, 1
    log = tables.audit_log.c
    counts: dict[str, int] = {}
    for row in connection.execution_options(yield_per=2_000).execute(
        select(log.seq, log.recorded_at, log.actor, log.kind, log.subject, log.body)
        .add_columns(log.prev_hash, log.hash)
        .order_by(log.seq)
    ):
        if row.seq != expected_seq:
            result.problems.append(
                f"entry {expected_seq}"
                + (f" to {row.seq - 1} are missing" if row.seq > expected_seq else " is repeated")
            )
        if row.prev_hash != previous:
            result.problems.append(f"entry {row.seq}: does not follow from the entry before it")
        digest = entry_hash(
            row.prev_hash, row.seq, row.recorded_at, row.actor, row.kind, row.subject, row.body
        )
        if digest != row.hash:
            result.problems.append(f"entry {row.seq}: its content was changed after recording")
        counts[row.kind] = counts.get(row.kind, 0) + 1
        previous, expected_seq = row.hash, row.seq + 1
        result.entries += 1
    head = connection.execute(select(tables.audit_head)).one()
    result.head_seq, result.head_hash = int(head.seq), str(head.hash)
    if head.seq != expected_seq - 1 or head.hash != previous:
        result.problems.append(
            f"the log ends at entry {expected_seq - 1}, but its head says {head.seq}: "
            "entries were deleted from the end, or the head was changed"
        )
    for check in INDEX_CHECKS:
        result.problems.extend(islice(check(connection, counts), MAX_PROBLEMS))
    del result.problems[MAX_PROBLEMS:]  # the first problems say enough; the rest would flood
    return result


# What each index table must agree with: its row's columns against the audited body.
Projection = Callable[[str, Mapping[str, Any]], dict[str, Any]]


def _decision_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "decision_id": subject,
        "case_id": body["case_id"],
        "channel": body["input"]["channel"],
        "tier": body["tier"],
        "risk_score": body["risk_score"],
        "screened_at": datetime.fromisoformat(body["screened_at"]),
        "key_id": body["asked_by"]["key_id"],
        "rule_pack": body["versions"]["rule_pack"],
        "model": body["versions"]["model"],
        "flags": sorted(flag["rule_id"] for flag in body["flags"]),
        "referral_agency": referral["agency"] if (referral := body["referral"]) else None,
        "referral_deadline": datetime.fromisoformat(referral["deadline"]) if referral else None,
    }


def _outcome_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"decision_id": subject, "action": body["action"], "confirmed": body["confirmed"]}


def _key_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"key_id": subject, "name": body["name"], "role": body["role"], "key_hash": body["hash"]}


def _registry_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"sha256": body["sha256"], "licences": body["licences"], "content": body["sha256"]}


def _activation_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"rule_pack": body["rule_pack"], "model": body["model"]}


INDEXED: dict[str, tuple[Table, Projection, str]] = {
    "decision": (tables.decisions, _decision_row, "decision"),
    "outcome": (tables.outcomes, _outcome_row, "outcome"),
    "key_created": (tables.api_keys, _key_row, "key"),
    "registry_uploaded": (tables.registries, _registry_row, "registry"),
    "activated": (tables.activations, _activation_row, "activation"),
}


# What is checked beyond the index table's own columns: a decision's flags and its referral
# (their rows name the decision), as SQL that reads them beside the decision's row.
_flags, _referrals, _decisions = tables.decision_flags.c, tables.referrals.c, tables.decisions.c
_JOINED: dict[str, ColumnElement[Any]] = {
    "flags": select(func.aggregate_strings(_flags.rule_id, ","))
    .where(_flags.decision_id == _decisions.decision_id)
    .scalar_subquery(),
    "referral_agency": select(_referrals.agency)
    .where(_referrals.decision_id == _decisions.decision_id)
    .scalar_subquery(),
    "referral_deadline": select(_referrals.deadline)
    .where(_referrals.decision_id == _decisions.decision_id)
    .scalar_subquery(),
}
# Stored values as the audited ones read: the flags in order, a registry's content by its hash.
_AS_AUDITED: dict[str, Callable[[Any], Any]] = {
    "flags": lambda joined: sorted(joined.split(",")) if joined else [],
    "content": lambda content: hashlib.sha256(str(content).encode()).hexdigest(),
}


def _index_check(kind: str) -> Callable[[Connection, Mapping[str, int]], Iterator[str]]:
    table, project, noun = INDEXED[kind]
    names = list(project("", _PROBE[kind]))
    columns = [table.c[name] if name in table.c else _JOINED[name].label(name) for name in names]

    def check(connection: Connection, counts: Mapping[str, int]) -> Iterator[str]:
        log = tables.audit_log.c
        query = select(table.c.audit_seq, *columns, log.kind, log.subject, log.body).join_from(
            table, tables.audit_log, log.seq == table.c.audit_seq, isouter=True
        )
        rows = 0
        for row in connection.execution_options(yield_per=2_000).execute(query):
            rows += 1
            if row.kind != kind:
                yield f"{noun} row for entry {row.audit_seq} has no {kind} entry in the log"
                continue
            audited = project(row.subject, json.loads(row.body))
            for name in names:
                stored = getattr(row, name)
                if name in _AS_AUDITED:
                    stored = _AS_AUDITED[name](stored)
                if not _same(stored, audited[name]):
                    yield f"{noun} of entry {row.audit_seq}: {name} differs from the audit log"
        if rows < counts.get(kind, 0):
            yield f"{counts[kind] - rows} {noun} row(s) recorded in the log are missing"

    return check


def _same(stored: Any, audited: Any) -> bool:
    if isinstance(stored, float) and isinstance(audited, float):
        return abs(stored - audited) <= 1e-12 * max(1.0, abs(audited))
    return bool(stored == audited)


_PROBE: dict[str, Mapping[str, Any]] = {  # bodies shaped like the real ones, to list columns
    "decision": {
        "case_id": "",
        "input": {"channel": ""},
        "tier": "",
        "risk_score": None,
        "screened_at": "2000-01-01T00:00:00+00:00",
        "asked_by": {"key_id": ""},
        "versions": {"rule_pack": "", "model": None},
        "flags": [],
        "referral": None,
    },
    "outcome": {"action": None, "confirmed": None},
    "key_created": {"name": "", "role": "", "hash": ""},
    "registry_uploaded": {"sha256": "", "licences": 0},
    "activated": {"rule_pack": "", "model": ""},
}


def _actions_check(connection: Connection, counts: Mapping[str, int]) -> Iterator[str]:
    """What was done to a key or a referral after it was recorded (revoked; acknowledged,
    resolved with a note), replayed from the log against the rows that hold it."""
    log = tables.audit_log.c
    revoked: dict[str, datetime] = {}
    steps: dict[str, dict[str, Any]] = {}
    for entry in connection.execute(
        select(log.kind, log.subject, log.actor, log.recorded_at, log.body)
        .where(log.kind.in_(["key_revoked", "referral_acknowledged", "referral_resolved"]))
        .order_by(log.seq)
    ):
        if entry.kind == "key_revoked":
            revoked[entry.subject] = entry.recorded_at
            continue
        step = entry.kind.removeprefix("referral_")
        expected = steps.setdefault(entry.subject, {"status": "open"})
        expected.update({"status": step, f"{step}_at": entry.recorded_at})
        expected[f"{step}_by"] = entry.actor
        if step == "resolved":
            expected["note"] = json.loads(entry.body).get("note")
    keys = tables.api_keys.c
    for key in connection.execute(select(keys.key_id, keys.revoked_at)):
        if key.revoked_at != revoked.get(key.key_id):
            yield f"key {key.key_id}: revoked_at differs from the audit log"
    fields = ("status", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "note")
    r = tables.referrals.c
    for referral in connection.execute(select(r.decision_id, *(r[name] for name in fields))):
        expected = steps.get(referral.decision_id, {"status": "open"})
        for name in fields:
            if (getattr(referral, name) or None) != expected.get(name):
                yield f"referral of {referral.decision_id}: {name} differs from the audit log"


def _escort_links_check(connection: Connection, counts: Mapping[str, int]) -> Iterator[str]:
    """Each decision on a case with an escort linked its traveller to the escort when it was
    screened, and the links are counted for later cases: one deleted would lower an escort's
    count and could keep `escort_network` from firing. The links must be exactly those the
    decisions' pseudonymised inputs give (the traveller too, where the input names it by
    passport or NIK, as the enrichment does first)."""
    log = tables.audit_log.c
    expected: dict[tuple[str, datetime], list[str | None]] = {}
    for body in (
        connection.execution_options(yield_per=2_000)
        .execute(
            select(log.body).where(log.kind == "decision", log.body.contains('"links.escort_ref"'))
        )
        .scalars()
    ):
        decision = json.loads(body)
        record = decision["input"]
        at = datetime.fromisoformat(decision["screened_at"]).astimezone(UTC)
        traveller = record.get("person.passport_no") or record.get("person.nik")
        key = (record["links.escort_ref"], at.replace(microsecond=0))
        expected.setdefault(key, []).append(traveller)
    links = tables.escort_links.c
    stored: dict[tuple[str, datetime], list[str]] = {}
    for link in connection.execution_options(yield_per=2_000).execute(
        select(links.escort, links.traveller, links.at)
    ):
        key = (link.escort, link.at.astimezone(UTC).replace(microsecond=0))
        stored.setdefault(key, []).append(link.traveller)
    for key in sorted(expected.keys() | stored.keys()):
        wanted, found = expected.get(key, []), stored.get(key, [])
        named = [traveller for traveller in wanted if traveller is not None]
        if len(wanted) != len(found) or any(named.count(t) > found.count(t) for t in named):
            yield (
                f"escort links of {key[0]} at {key[1].isoformat()}: {len(found)} stored, "
                f"{len(wanted)} in the decisions"
            )


INDEX_CHECKS = [*(_index_check(kind) for kind in INDEXED), _actions_check, _escort_links_check]


def entries(connection: Connection, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """The log's entries in order (for export and inspection)."""
    query = select(tables.audit_log).order_by(tables.audit_log.c.seq)
    if kind:
        query = query.where(tables.audit_log.c.kind == kind)
    for row in connection.execute(query):
        yield dict(row._mapping)
