"""API keys: created with a role, shown once, stored only as a SHA-256 of the secret.

A key belongs to a holder (a desk, an analyst, a system): what is the holder's, such as a desk's
decisions, goes with the holder, not with one key. A key made to replace another carries the
replaced key's holder on, so that an admin can rotate a desk's key without the desk losing
sight of its decisions; the old key works until it is revoked.
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select, update

from api.problems import Conflict, Invalid, NotFound
from api.storage import audit, tables
from api.storage.database import pipelined
from engine.case import one_line

ROLES = ("desk", "analyst", "admin")
PREFIX = "lk_"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the key's id, name and role (never the secret), and, for a key that
    replaced another, its holder's first key."""

    key_id: str
    name: str
    role: str
    first_key: str | None = None

    @property
    def holder(self) -> str:
        """The holder's id (its first key's): what is the caller's own goes by it."""
        return self.first_key or self.key_id

    def as_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "role": self.role}


CLI = Caller("cli", "command line", "admin")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_name(name: str) -> str:
    """The name as stored (compatibility forms folded, NFKC, and runs of spaces made one), or
    ValueError saying what is wrong with it (as over HTTP)."""
    name = one_line(name.strip())
    hidden = [character for character in name if _invisible(character)]
    if hidden:
        shown = ", ".join(dict.fromkeys(_code_point(character) for character in hidden))
        raise ValueError(f"must not hold invisible characters ({shown})")
    name = " ".join(unicodedata.normalize("NFKC", name).split())
    if not name or len(name) > 200:
        raise ValueError("must be 1 to 200 characters, not blank")
    return name


# Characters that show as nothing: Unicode's format characters (zero-width space and joiners,
# direction marks, soft hyphen, word joiner, byte-order mark), code points it leaves unassigned
# or to private use, and the other default-ignorable ones (Hangul fillers, variation
# selectors). Two names differing by one look the same in a list of keys.
_HIDDEN_CATEGORIES = frozenset({"Cf", "Cn", "Co", "Cs"})
_HIDDEN = frozenset(
    "\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180f\u2800\u3164\uffa0"
    + "".join(map(chr, range(0xFE00, 0xFE10)))
    + "".join(map(chr, range(0xE0100, 0xE01F0)))
)


def _invisible(character: str) -> bool:
    return character in _HIDDEN or unicodedata.category(character) in _HIDDEN_CATEGORIES


def _code_point(character: str) -> str:
    return f"U+{ord(character):04X} {unicodedata.name(character, 'unnamed')}"


def _as_compared(name: str) -> str:
    """A name as two names are compared: case, spacing and compatibility forms aside, and
    without what does not show (names stored before they were checked may hold it)."""
    visible = "".join(character for character in name if not _invisible(character))
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", visible).casefold())
    return " ".join(folded.split())


@dataclass(frozen=True)
class _Replaced:
    key_id: str
    name: str
    role: str
    holder: str


def create(
    connection: Connection,
    role: str,
    name: str | None,
    at: datetime,
    by: Caller = CLI,
    *,
    replaces: str | None = None,
) -> tuple[Caller, str]:
    """A new key; returns who it is and its secret, which is not stored and cannot be shown
    again. With `replaces`, the key carries that key's holder on (it must be a key of the same
    role, live or revoked, and not replaced already) and is named as it is unless `name` says
    otherwise."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    replaced = _replaced(connection, replaces, role) if replaces is not None else None
    if name is None:
        if replaced is None:
            raise Invalid("a new key needs a name: who or what holds it", "name")
        name = replaced.name
    try:
        name = key_name(name)
    except ValueError as error:  # the replaced key's name, given before names were checked
        raise Invalid(f"{name!r}: {error}", "name") from None
    secret = PREFIX + secrets.token_urlsafe(32)
    key_id = uuid.uuid4().hex
    caller = Caller(key_id, name, role, replaced.holder if replaced else None)
    hashed = digest(secret)
    body: dict[str, Any] = {"name": name, "role": role, "hash": hashed, "created_by": by.as_dict()}
    if replaced:
        body |= {"replaces": replaced.key_id, "holder": replaced.holder}
    # The head, locked from here to the commit: keys are made one after another, so the checks
    # below see every key made before.
    head = audit.head(connection)
    _refuse_a_name_in_use(connection, name, caller.holder)
    if replaced:
        _refuse_replaced_twice(connection, replaced)
    chained = audit.chain(
        connection, [audit.Entry("key_created", key_id, by.key_id, body)], at, head
    )
    with pipelined(connection):
        audit.write(connection, chained)
    connection.execute(
        tables.api_keys.insert().values(
            key_id=key_id,
            name=name,
            role=role,
            key_hash=hashed,
            created_at=at,
            audit_seq=chained.numbers[0],
            holder=replaced.holder if replaced else None,
            replaces=replaced.key_id if replaced else None,
        )
    )
    return caller, secret


def _replaced(connection: Connection, key_id: str, role: str) -> _Replaced:
    """The key a new key of `role` replaces: NotFound if there is none, Conflict if it has
    another role."""
    keys = tables.api_keys.c
    row = connection.execute(
        select(keys.key_id, keys.name, keys.role, keys.holder).where(keys.key_id == key_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no key {key_id} to replace", "replaces")
    if row.role != role:
        raise Conflict(
            f"key {key_id} is {_article(row.role)} {row.role} key: the key replacing it must be"
            f" {_article(row.role)} {row.role} key too",
            "role",
        )
    return _Replaced(row.key_id, row.name, row.role, row.holder or row.key_id)


def _refuse_a_name_in_use(connection: Connection, name: str, holder: str) -> None:
    """Live keys of different holders have names that differ other than in case, spacing or
    what does not show, so that `keys list` tells them apart and a revocation takes the key
    meant. A holder's own keys (a replacement and the key it replaces) may share a name; a
    revoked key's name is free."""
    keys = tables.api_keys.c
    wanted = _as_compared(name)
    for row in connection.execute(
        select(keys.key_id, keys.name, keys.holder).where(keys.revoked_at.is_(None))
    ):
        if (row.holder or row.key_id) != holder and _as_compared(row.name) == wanted:
            raise Conflict(
                f"live key {row.key_id} is already named {row.name!r}: give this key another"
                " name, or revoke that key first",
                "name",
            )


def _refuse_replaced_twice(connection: Connection, replaced: _Replaced) -> None:
    """A key is replaced once, so that a holder's keys are one line: the newest replaces the one
    before. (Two admins rotating one desk's key at once would otherwise make two.)"""
    keys = tables.api_keys.c
    successor = connection.execute(
        select(keys.key_id).where(keys.replaces == replaced.key_id)
    ).scalar_one_or_none()
    if successor is not None:
        raise Conflict(
            f"key {replaced.key_id} was already replaced by key {successor}; replace that one",
            "replaces",
        )


def _article(role: str) -> str:
    return "an" if role[0] in "aeiou" else "a"


def find(connection: Connection, secret: str) -> Caller | None:
    """The caller holding `secret`, if it is a live key."""
    keys = tables.api_keys.c
    row = connection.execute(
        select(keys.key_id, keys.name, keys.role, keys.holder).where(
            keys.key_hash == digest(secret), keys.revoked_at.is_(None)
        )
    ).one_or_none()
    return Caller(row.key_id, row.name, row.role, row.holder) if row else None


def holders_keys(connection: Connection, holder: str) -> list[str]:
    """The ids of every key, live or revoked, that `holder` has held."""
    keys = tables.api_keys.c
    return list(
        connection.execute(
            select(keys.key_id).where(or_(keys.key_id == holder, keys.holder == holder))
        ).scalars()
    )


def listing(connection: Connection) -> list[dict[str, Any]]:
    keys = tables.api_keys.c
    rows = connection.execute(
        select(
            keys.key_id,
            keys.name,
            keys.role,
            keys.created_at,
            keys.revoked_at,
            keys.holder,
            keys.replaces,
        ).order_by(keys.created_at)
    )
    return [
        {
            "key_id": row.key_id,
            "name": row.name,
            "role": row.role,
            "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            "holder": row.holder or row.key_id,
            "replaces": row.replaces,
        }
        for row in rows
    ]


def revoke(connection: Connection, key_id: str, at: datetime, by: Caller = CLI) -> bool:
    """Revoke a live key; False if there is no such live key."""
    keys = tables.api_keys.c
    changed = connection.execute(
        update(tables.api_keys)
        .where(keys.key_id == key_id, keys.revoked_at.is_(None))
        .values(revoked_at=at)
    ).rowcount
    if changed:
        audit.append(connection, [audit.Entry("key_revoked", key_id, by.key_id, {})], at)
    return bool(changed)
