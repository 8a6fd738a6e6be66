"""What the service runs with: the active rule pack and model, and the agency registry.

Admins change them through the API; every server process reads the newest rows at its next
request (`generation`), so an activation or an upload takes effect without a restart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from api.problems import Conflict
from api.storage import audit, tables
from api.storage.keys import Caller
from api.storage.rows import DriverStatement
from engine.registry import AgencyRegistry
from engine.rule_pack import RulePack


@dataclass(frozen=True)
class Generation:
    activation: int
    registry: int

    def before(self, other: Generation | None) -> bool:
        """Whether `other` holds this and something newer: an activation or upload this one
        was read before."""
        return (
            other is not None
            and self != other
            and self.activation <= other.activation
            and self.registry <= other.registry
        )


_NEWEST = (
    select(func.coalesce(func.max(tables.activations.c.activation_id), 0))
    .scalar_subquery()
    .label("activation"),
    select(func.coalesce(func.max(tables.registries.c.registry_id), 0))
    .scalar_subquery()
    .label("registry"),
)
# Built once: read before every group of screenings, and building it cost more than running it.
_GENERATION = DriverStatement(select(*_NEWEST))
_head = tables.audit_head.c
_GENERATION_AND_HEAD = DriverStatement(
    select(*_NEWEST, _head.seq, _head.hash)
    .where(_head.id == 1)
    .with_for_update(of=tables.audit_head)
)


def generation(connection: Connection) -> Generation:
    [(activations, registries)] = _GENERATION.rows(connection)
    return Generation(int(activations), int(registries))


def generation_and_head(connection: Connection) -> tuple[Generation, audit.Head]:
    """The generation, and the audit head locked as `audit.head` locks it, in one statement (on
    PostgreSQL one round trip where there were two): for a transaction that chains entries
    soon after, with nothing between the two that others would wait for."""
    [(activations, registries, seq, previous)] = _GENERATION_AND_HEAD.rows(connection)
    return Generation(int(activations), int(registries)), (int(seq), str(previous))


def current(connection: Connection) -> dict[str, Any] | None:
    """The newest activation (rule pack label and model version), if an admin made one."""
    a = tables.activations.c
    row = connection.execute(
        select(a.rule_pack, a.model, a.activated_at, a.key_id)
        .order_by(a.activation_id.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    return {
        "rule_pack": row.rule_pack,
        "model": row.model,
        "activated_at": row.activated_at.isoformat(),
        "key_id": row.key_id,
    }


def activate(
    connection: Connection, rule_pack: str, model: str, caller: Caller, at: datetime
) -> None:
    body = {"rule_pack": rule_pack, "model": model}
    [seq] = audit.append(connection, [audit.Entry("activated", rule_pack, caller.key_id, body)], at)
    connection.execute(
        tables.activations.insert().values(
            audit_seq=seq, activated_at=at, key_id=caller.key_id, rule_pack=rule_pack, model=model
        )
    )


def upload_registry(
    connection: Connection, content: str, registry: AgencyRegistry, caller: Caller, at: datetime
) -> dict[str, Any]:
    """Store a registry that has been read whole (`AgencyRegistry.from_text`). `content` is
    the file's text as received (`registry_text`, a byte-order mark kept): its SHA-256 is the
    uploaded file's, as `sha256sum` gives it, and the audit checks the stored text by it."""
    digest = hashlib.sha256(content.encode()).hexdigest()
    body = {"sha256": digest, "licences": len(registry)}
    [seq] = audit.append(
        connection, [audit.Entry("registry_uploaded", digest, caller.key_id, body)], at
    )
    connection.execute(
        tables.registries.insert().values(
            audit_seq=seq,
            uploaded_at=at,
            key_id=caller.key_id,
            sha256=digest,
            licences=len(registry),
            content=content,
        )
    )
    return {**body, "uploaded_at": at.isoformat()}


def newest_registry(connection: Connection) -> tuple[str, dict[str, Any]] | None:
    """The newest uploaded registry's CSV text and summary, if any was uploaded."""
    r = tables.registries.c
    row = connection.execute(
        select(r.content, r.sha256, r.licences, r.uploaded_at)
        .order_by(r.registry_id.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return None
    summary = {
        "sha256": row.sha256,
        "licences": row.licences,
        "uploaded_at": row.uploaded_at.isoformat(),
    }
    return row.content, summary


# A pack's label names one content: the first process to run a label pins its files' SHA-256.
SERVER = Caller("server", "a server starting", "admin")


def pinned(connection: Connection, label: str) -> str | None:
    """The SHA-256 a pack label was pinned to, if one was."""
    p = tables.rule_packs.c
    found = connection.execute(select(p.sha256).where(p.label == label)).scalar_one_or_none()
    return None if found is None else str(found)


def pin(connection: Connection, pack: RulePack, caller: Caller, at: datetime) -> None:
    """Pin `pack`'s label to its content, or refuse (Conflict) a pack whose label was pinned
    to other content: a pack changed in place must be given a new version, or decisions that
    name the same pack would have been made by different rules."""
    audit.head(connection)  # writers pin in turn: the second sees the first's pin
    found = pinned(connection, pack.label)
    if found == pack.digest:
        return
    if found is not None:
        raise Conflict(changed_in_place(pack, found), "rule_pack")
    body = {"sha256": pack.digest}
    [seq] = audit.append(
        connection, [audit.Entry("rule_pack_pinned", pack.label, caller.key_id, body)], at
    )
    connection.execute(
        tables.rule_packs.insert().values(
            label=pack.label, audit_seq=seq, pinned_at=at, sha256=pack.digest
        )
    )


def changed_in_place(pack: RulePack, pinned_to: str) -> str:
    return (
        f"rule pack {pack.label} in {pack.folder} is not the {pack.label} decisions were made "
        f"with (its files' SHA-256 is {pack.digest[:12]}..., the pinned one {pinned_to[:12]}...): "
        "a pack changed in place needs a new version in its pack.yaml"
    )
