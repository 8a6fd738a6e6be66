"""API keys: created with a role, shown once, stored only as a SHA-256 of the secret."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from api.storage import audit, tables
from engine.case import one_line

ROLES = ("desk", "analyst", "admin")
PREFIX = "lk_"


@dataclass(frozen=True)
class Caller:
    """Who is asking: the key's id, name and role (never the secret)."""

    key_id: str
    name: str
    role: str

    def as_dict(self) -> dict[str, Any]:
        return {"key_id": self.key_id, "name": self.name, "role": self.role}


CLI = Caller("cli", "command line", "admin")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def key_name(name: str) -> str:
    """The name as stored, or ValueError saying what is wrong with it (as over HTTP)."""
    name = one_line(name.strip())
    if not name or len(name) > 200:
        raise ValueError("must be 1 to 200 characters, not blank")
    return name


def create(
    connection: Connection, role: str, name: str, at: datetime, by: Caller = CLI
) -> tuple[Caller, str]:
    """A new key; returns who it is and its secret, which is not stored and cannot be shown
    again."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    name = key_name(name)
    secret = PREFIX + secrets.token_urlsafe(32)
    caller = Caller(uuid.uuid4().hex, name, role)
    hashed = digest(secret)
    body = {"name": name, "role": role, "hash": hashed, "created_by": by.as_dict()}
    [seq] = audit.append(
        connection, [audit.Entry("key_created", caller.key_id, by.key_id, body)], at
    )
    connection.execute(
        tables.api_keys.insert().values(
            key_id=caller.key_id,
            name=name,
            role=role,
            key_hash=hashed,
            created_at=at,
            audit_seq=seq,
        )
    )
    return caller, secret


def find(connection: Connection, secret: str) -> Caller | None:
    """The caller holding `secret`, if it is a live key."""
    keys = tables.api_keys.c
    row = connection.execute(
        select(keys.key_id, keys.name, keys.role).where(
            keys.key_hash == digest(secret), keys.revoked_at.is_(None)
        )
    ).one_or_none()
    return Caller(row.key_id, row.name, row.role) if row else None


def listing(connection: Connection) -> list[dict[str, Any]]:
    keys = tables.api_keys.c
    rows = connection.execute(
        select(keys.key_id, keys.name, keys.role, keys.created_at, keys.revoked_at).order_by(
            keys.created_at
        )
    )
    return [
        {
            "key_id": row.key_id,
            "name": row.name,
            "role": row.role,
            "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
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
