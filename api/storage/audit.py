"""The audit trail: an append-only log, each entry chained to the one before by a SHA-256.

An entry's hash covers its sequence number, time, actor, kind, subject, body and the previous
entry's hash, so editing or deleting any entry breaks the chain from there on; the head row
(the newest sequence number and hash) catches a deleted last entry. The tables that index the
log for queries (decisions, outcomes, keys, registries, activations) are checked against it too.
"""

from __future__ import annotations

import hashlib
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
    packed: bytes = b""  # and the text packed as stored (`audit_body.pack`), likewise


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
                "body": entry.packed or body,  # a text is packed as it is bound
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
    body: dict[str, Any] = orjson.loads(text)
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


EscortKey = tuple[str, datetime]  # an escort and a screening time (to the second)


@dataclass
class Walk:
    """What the walk along the chain gathers for the checks of the tables."""

    counts: dict[str, int] = field(default_factory=dict)  # entries by kind
    escorted: dict[EscortKey, list[str | None]] = field(default_factory=dict)  # travellers


def verify(connection: Connection, anchors: Mapping[int, str] | None = None) -> Verification:
    """Walk the chain from the first entry, then check each index table against it.

    `anchors`: entries' numbers and hashes recorded outside the database (the head a verify
    printed earlier). The chain alone cannot tell entries deleted from its end, with the head
    moved back, from entries never written; an anchor can: each must still be in the chain,
    with the hash it had, and as every hash covers the ones before it, nothing up to it can have
    changed either."""
    anchors = dict(anchors or {})
    result = Verification()
    if anchors.pop(0, GENESIS) != GENESIS:  # where every chain starts: an empty log's head
        result.problems.append(f"entry 0 is where every chain starts: its hash is {GENESIS}")
    previous, expected_seq = GENESIS, 1
    log = tables.audit_log.c
    walk = Walk()
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
        anchored = anchors.pop(row.seq, None)
        if anchored is not None and anchored != row.hash:
            result.problems.append(
                f"entry {row.seq}: its hash is not the anchored one: the log was rewritten"
            )
        walk.counts[row.kind] = walk.counts.get(row.kind, 0) + 1
        if row.kind == "decision" and _ESCORTED in row.body:
            _escort_link(walk, row.body)
        previous, expected_seq = row.hash, row.seq + 1
        result.entries += 1
    heads = connection.execute(select(tables.audit_head)).all()
    head = next((row for row in heads if row.id == 1), None)
    if len(heads) != 1 or head is None:
        result.problems.append(
            f"the head is one row (id 1), but audit_head holds {len(heads)} row(s)"
            + ("" if head else " and none with id 1")
            + ": the head was deleted, or another added"
        )
    if head is not None:
        result.head_seq, result.head_hash = int(head.seq), str(head.hash)
        if head.seq != expected_seq - 1 or head.hash != previous:
            result.problems.append(
                f"the log ends at entry {expected_seq - 1}, but its head says {head.seq}: "
                "entries were deleted from the end, or the head was changed"
            )
    for seq in sorted(anchors):  # anchored entries the walk did not meet
        result.problems.append(
            f"entry {seq} was anchored but the log ends at entry {expected_seq - 1}: "
            "entries were deleted from the end, and the head moved back"
            if seq >= expected_seq
            else f"entry {seq} was anchored but is missing"
        )
    for check in INDEX_CHECKS:
        result.problems.extend(islice(check(connection, walk), MAX_PROBLEMS))
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
        "referral_also_notify": referral["also_notify"] if referral else None,
        "referral_reasons": _why_referred(body["flags"], referral) if referral else None,
    }


def _why_referred(
    flags: list[Mapping[str, Any]], referral: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The referring flags' titles and reasons, as a referral row keeps them."""
    return [
        {"rule_id": flag["rule_id"], "title": flag["title"], "reason": flag["reason"]}
        for flag in flags
        if flag["rule_id"] in referral["rule_ids"]
    ]


def _outcome_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "decision_id": subject,
        "action": body["action"],
        "confirmed": body["confirmed"],
        "corrects": body.get("corrects"),  # a correction's body names it (since revision 0008)
    }


def _key_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "key_id": subject,
        "name": body["name"],
        "role": body["role"],
        "key_hash": body["hash"],
        # a replacement's (rotation); a first key, and any made before revision 0010, has none
        "holder": body.get("holder"),
        "replaces": body.get("replaces"),
    }


def _registry_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"sha256": body["sha256"], "licences": body["licences"], "content": body["sha256"]}


def _activation_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"rule_pack": body["rule_pack"], "model": body["model"]}


def _pin_row(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"label": subject, "sha256": body["sha256"]}


INDEXED: dict[str, tuple[Table, Projection, str]] = {
    "decision": (tables.decisions, _decision_row, "decision"),
    "outcome": (tables.outcomes, _outcome_row, "outcome"),
    "key_created": (tables.api_keys, _key_row, "key"),
    "registry_uploaded": (tables.registries, _registry_row, "registry"),
    "activated": (tables.activations, _activation_row, "activation"),
    "rule_pack_pinned": (tables.rule_packs, _pin_row, "rule pack"),
}


# What is checked beyond the index table's own columns: a decision's flags and its referral
# (their rows name the decision), as SQL that reads them beside the decision's row.
_flags, _referrals, _decisions = tables.decision_flags.c, tables.referrals.c, tables.decisions.c


def _referral(column: str) -> ColumnElement[Any]:
    return (
        select(_referrals[column])
        .where(_referrals.decision_id == _decisions.decision_id)
        .scalar_subquery()
    )


_JOINED: dict[str, ColumnElement[Any]] = {
    "flags": select(func.aggregate_strings(_flags.rule_id, ","))
    .where(_flags.decision_id == _decisions.decision_id)
    .scalar_subquery(),
    **{
        f"referral_{column}": _referral(column)
        for column in ("agency", "deadline", "also_notify", "reasons", "opened_at")
    },
}
# Columns that say when and by whom, against the entry's own: its time and its actor. (A
# referral's time is checked where there is a referral; whether there is one, by its agency.)
_FROM_ENTRY: dict[str, dict[str, str]] = {
    "decision": {"recorded_at": "recorded_at", "referral_opened_at": "recorded_at"},
    "outcome": {"recorded_at": "recorded_at", "key_id": "actor"},
    "key_created": {"created_at": "recorded_at"},
    "registry_uploaded": {"uploaded_at": "recorded_at", "key_id": "actor"},
    "activated": {"activated_at": "recorded_at", "key_id": "actor"},
    "rule_pack_pinned": {"pinned_at": "recorded_at"},
}


def _json(stored: str | None) -> Any:
    """A JSON column's value (text that is no JSON stays text, and differs from any)."""
    if stored is None:
        return None
    try:
        return orjson.loads(stored)
    except orjson.JSONDecodeError:
        return stored


# Stored values as the audited ones read: the flags in order, a registry's content by its hash,
# a referral's lists from their JSON.
_AS_AUDITED: dict[str, Callable[[Any], Any]] = {
    "flags": lambda joined: sorted(joined.split(",")) if joined else [],
    "content": lambda content: hashlib.sha256(str(content).encode()).hexdigest(),
    "referral_also_notify": _json,
    "referral_reasons": _json,
}


Check = Callable[[Connection, Walk], Iterator[str]]


def _index_check(kind: str) -> Check:
    table, project, noun = INDEXED[kind]
    names = list(project("", _PROBE[kind]))
    from_entry = _FROM_ENTRY[kind]
    columns = [
        table.c[name] if name in table.c else _JOINED[name].label(name)
        for name in [*names, *from_entry]
    ]

    def check(connection: Connection, walk: Walk) -> Iterator[str]:
        log = tables.audit_log.c
        entry = [log.kind, log.subject, log.body, log.recorded_at.label("entry_recorded_at")]
        query = select(table.c.audit_seq, *columns, *entry, log.actor.label("entry_actor"))
        query = query.join_from(table, tables.audit_log, log.seq == table.c.audit_seq, isouter=True)
        rows = 0
        for row in connection.execution_options(yield_per=2_000).execute(query):
            rows += 1
            if row.kind != kind:
                yield f"{noun} row for entry {row.audit_seq} has no {kind} entry in the log"
                continue
            audited = _audited(project, row.subject, row.body)
            if audited is None:  # the walk has said its content was changed
                continue
            for name in names:
                stored = getattr(row, name)
                if name in _AS_AUDITED:
                    stored = _AS_AUDITED[name](stored)
                if not _same(stored, audited[name]):
                    yield f"{noun} of entry {row.audit_seq}: {name} differs from the audit log"
            for name, attribute in from_entry.items():
                stored = getattr(row, name)
                known = stored is not None or name in table.c  # a joined one: where there is one
                if known and stored != getattr(row, f"entry_{attribute}"):
                    yield f"{noun} of entry {row.audit_seq}: {name} differs from the audit log"
        if rows < walk.counts.get(kind, 0):
            yield f"{walk.counts[kind] - rows} {noun} row(s) recorded in the log are missing"

    return check


def _audited(project: Projection, subject: str, body: str) -> dict[str, Any] | None:
    """The index row a body gives, or None for a body edited past reading (a damaged one
    inflates to no JSON, an edited one may lack a field)."""
    try:
        return project(subject, orjson.loads(body))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


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
    "outcome": {"action": None, "confirmed": None, "corrects": None},
    "key_created": {"name": "", "role": "", "hash": ""},
    "registry_uploaded": {"sha256": "", "licences": 0},
    "activated": {"rule_pack": "", "model": ""},
    "rule_pack_pinned": {"sha256": ""},
}


def _note(subject: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"note": body.get("note")}


def _actions_check(connection: Connection, walk: Walk) -> Iterator[str]:
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
            expected["note"] = (_audited(_note, "", entry.body) or {}).get("note")
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


_ESCORTED = '"links.escort_ref"'  # in a decision's input: the case named an escort


def _escort_link(walk: Walk, body: str) -> None:
    """The link a decision on a case with an escort made: its traveller to the escort, when
    it was screened."""
    try:
        decision = orjson.loads(body)
        record = decision["input"]
        at = datetime.fromisoformat(decision["screened_at"]).astimezone(UTC)
        key = (record["links.escort_ref"], at.replace(microsecond=0))
    except (ValueError, KeyError, TypeError):  # an edited body: its hash no longer matches
        return
    traveller = (  # recorded since 2026-12-06; before, known where the case named a document
        decision.get("escort_traveller")
        or record.get("person.passport_no")
        or record.get("person.nik")
    )
    walk.escorted.setdefault(key, []).append(traveller)


def _escort_links_check(connection: Connection, walk: Walk) -> Iterator[str]:
    """Each decision on a case with an escort linked its traveller to the escort when it was
    screened, and the links are counted for later cases: one deleted would lower an escort's
    count and could keep `escort_network` from firing. The links must be exactly those the
    decisions give: each decision records the traveller's pseudonym it linked (decisions
    stored before it did: where the input names a passport or NIK, the enrichment's first
    choice, the traveller is known from it; otherwise only the number of links is checked)."""
    expected = walk.escorted
    links = tables.escort_links.c
    stored: dict[EscortKey, list[str]] = {}
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


# Tables whose newest row, by highest id, is what the server runs with: the ids must keep the
# log's order, or an older registry or activation would be taken for the newest.
ORDERED = [tables.registries.c.registry_id, tables.activations.c.activation_id]


def _order_check(connection: Connection, walk: Walk) -> Iterator[str]:
    for row_id in ORDERED:
        audit_seq = row_id.table.c.audit_seq
        latest = None
        for row in connection.execute(select(row_id, audit_seq).order_by(row_id)):
            if latest is not None and row.audit_seq < latest.audit_seq:
                yield (
                    f"{row_id.table}: {row_id.name} {row[0]} comes after {latest[0]}, but its "
                    f"entry {row.audit_seq} is older than {latest.audit_seq}: the rows were "
                    "reordered"
                )
            if latest is None or row.audit_seq > latest.audit_seq:
                latest = row


def _holders_check(connection: Connection, walk: Walk) -> Iterator[str]:
    """Each decision's desk (by which a case sent again is found) is its key's holder; only a
    copy stored before revision 0011, after a first with the desk, has none. A holder edited
    would let a desk's retry be stored again, or answer another desk's with this decision."""
    d, k = tables.decisions.c, tables.api_keys.c
    desk = func.coalesce(k.holder, k.key_id, d.key_id)
    first = tables.decisions.alias("first")
    earlier = (
        select(first.c.decision_id)
        .where(
            first.c.holder == desk,
            first.c.case_id == d.case_id,
            first.c.screened_at == d.screened_at,
            first.c.audit_seq < d.audit_seq,
        )
        .exists()
    )
    query = (
        select(d.audit_seq, d.holder)
        .join_from(tables.decisions, tables.api_keys, k.key_id == d.key_id, isouter=True)
        .where((d.holder != desk) | (d.holder.is_(None) & ~earlier))
        .order_by(d.audit_seq)
    )
    for row in connection.execute(query):
        if row.holder is None:
            yield f"decision of entry {row.audit_seq} has no desk, and is no copy of an earlier"
        else:
            yield f"decision of entry {row.audit_seq}: its desk is not its key's holder"


INDEX_CHECKS = [
    *(_index_check(kind) for kind in INDEXED),
    _order_check,
    _actions_check,
    _escort_links_check,
    _holders_check,
]


def entries(connection: Connection, kind: str | None = None) -> Iterator[dict[str, Any]]:
    """The log's entries in order (for export and inspection)."""
    query = select(tables.audit_log).order_by(tables.audit_log.c.seq)
    if kind:
        query = query.where(tables.audit_log.c.kind == kind)
    for row in connection.execute(query):
        yield dict(row._mapping)
