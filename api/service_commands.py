"""Commands for the service: serve, API keys, the audit trail, labelled outcomes.

They use the same settings as the server (LINDUNG_DATABASE_URL and the rest).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from tempfile import TemporaryDirectory
from typing import IO, Any

import click
from sqlalchemy import Engine

from api.cli_common import command_errors, components_from, settings_from_env
from api.problems import Problem
from api.storage import audit, database, keys, outcomes


@contextmanager
def _database() -> Iterator[Engine]:
    """The settings' database, made or migrated if need be, for a command that writes; its
    connections are closed afterwards."""
    engine = database.connect(settings_from_env().database_url)
    try:
        database.upgrade(engine)
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _existing_database() -> Iterator[Engine]:
    """The settings' database as it is, for a command that only reads: one not made yet, without
    Lindung's tables or of another version is a one-line error, never made or migrated (a report
    of an empty database made by mistake would say all is well). Its connections are closed
    afterwards."""
    url = settings_from_env().database_url
    with command_errors():
        engine = database.existing(url)
        try:
            yield engine
        finally:
            engine.dispose()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Processes."
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (OpenAPI at /docs), storing decisions in LINDUNG_DATABASE_URL."""
    import uvicorn

    reserved = None
    if workers > 1:  # the supervisor listens and hands connections out (api/serving.py)
        from api import serving

        try:
            reserved = serving.reserve(host, port)
        except OSError as error:
            raise click.ClickException(f"cannot serve on {host}:{port}: {error.strerror}") from None
        port = reserved.getsockname()[1]
    from api.service import Service  # the server's own modules: not for every command

    settings = settings_from_env()
    components_from(settings)  # trains the reference model on first use, before the workers
    service = Service(settings, database.connect(settings.database_url))
    try:  # once, before the workers: migrations, and the active rule pack pinned or refused
        service.start()
    except Problem as error:
        raise click.ClickException(error.detail) from None
    finally:
        service.stop()
    click.echo(f"Lindung serving on http://{host}:{port} (API docs at /docs)", err=True)
    options: dict[str, Any] = {
        "factory": True,
        "access_log": False,
        "log_level": "warning",
        "ws": "none",  # no WebSocket routes: an upgrade request is answered as plain HTTP
    }
    if reserved is None:
        uvicorn.run("api.app:app_from_env", host=host, port=port, **options)
        return
    config = uvicorn.Config("api.app:app_from_env", host=host, port=port, **options)
    with ExitStack() as made:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # else the user's, left as it is
            # the workers' figures, added up by /metrics: removed once they have stopped
            folder = TemporaryDirectory(prefix="lindung-metrics-", ignore_cleanup_errors=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = made.enter_context(folder)
        code = serving.serve_workers(config, workers, reserved)
    sys.exit(code)


@click.group("keys")
def keys_group() -> None:
    """Create, list and revoke API keys."""


def _key_name(_context: click.Context, _option: click.Parameter, name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return keys.key_name(name)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@keys_group.command("create")
@click.option("--role", required=True, type=click.Choice(keys.ROLES))
@click.option(
    "--name",
    callback=_key_name,
    help="Who or what holds the key (a desk, a system). With --replaces: the replaced key's"
    " name if not given.",
)
@click.option(
    "--replaces",
    metavar="KEY_ID",
    help="Rotate: the new key replaces this key (of the same role, live or revoked) and is the"
    " same holder's: a desk keeps its decisions. The replaced key works until it is revoked.",
)
def create_key(role: str, name: str | None, replaces: str | None) -> None:
    """Create a key and print it once; only its hash is stored."""
    if name is None and replaces is None:
        raise click.UsageError("Missing option '--name' (or --replaces KEY_ID).")
    try:
        with _database() as engine, database.transaction(engine) as connection:
            made, secret = keys.create(connection, role, name, datetime.now(UTC), replaces=replaces)
    except Problem as error:
        raise click.BadParameter(error.detail, param_hint=f"'--{error.field}'") from None
    rotated = f", replacing key {replaces}" if replaces else ""
    click.echo(f"{made.role} key {made.key_id} for {made.name!r}{rotated} (shown once):", err=True)
    click.echo(secret)


@keys_group.command("list")
def list_keys() -> None:
    """List keys (never their secrets)."""
    with _existing_database() as engine, database.reading(engine) as connection:
        for key in keys.listing(connection):
            state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "live"
            rotated = ""
            if key["replaces"]:  # the holder: the first key, which "own" goes by
                rotated = f"  (replaces {key['replaces']}, holder {key['holder']})"
            click.echo(f"{key['key_id']}  {key['role']:<8} {state:<10} {key['name']}{rotated}")


@keys_group.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key by its id."""
    with _database() as engine, database.transaction(engine) as connection:
        if not keys.revoke(connection, key_id, datetime.now(UTC)):
            raise click.ClickException(f"no live key {key_id}")
    click.echo(f"revoked {key_id}")


@click.group("audit")
def audit_group() -> None:
    """Check the audit trail."""


def _anchor(
    _context: click.Context, _option: click.Parameter, values: tuple[str, ...]
) -> dict[int, str]:
    anchors = {}
    for value in values:
        seq, _, digest = value.strip().partition(" ")
        digest = digest.strip().lower()
        if not re.fullmatch(r"[0-9]+", seq) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise click.BadParameter(
                f"{value!r}: expected an entry number and its hash, as verify prints them"
            )
        anchors[int(seq)] = digest
    return anchors


@audit_group.command("verify")
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    callback=_anchor,
    metavar='"SEQ HASH"',
    help="A head an earlier verify printed, kept outside the database: it must still be in the "
    "chain (catches entries deleted from the end). Repeatable.",
)
def verify(anchors: dict[int, str]) -> None:
    """Check every entry's hash chain, and the decision, outcome, key, registry and activation
    tables against it; exit 1 on any edit or deletion."""
    with _existing_database() as engine, database.reading(engine) as connection:
        result = audit.verify(connection, anchors)
    for problem in result.problems:
        click.echo(f"FAIL {problem}", err=True)
    verdict = "intact" if result.ok else "BROKEN"
    click.echo(
        f"audit trail {verdict}: {result.entries:,} entries, head {result.head_seq} "
        f"{result.head_hash}"
    )
    if not result.ok:
        sys.exit(1)


@click.group("outcomes")
def outcomes_group() -> None:
    """Confirmed outcomes, as labelled data."""


@outcomes_group.command("export")
@click.option(
    "--out",
    required=True,
    # opened once the cases are read: a database error leaves an earlier export as it was
    type=click.File("w", encoding="utf-8", lazy=True),
    help="The CSV file, or - for standard output.",
)
def export(out: IO[str]) -> None:
    """Write every confirmed case as a labelled CSV (label column: non_procedural) for
    `lindung model train --data OUT --label non_procedural`."""
    with _existing_database() as engine, database.reading(engine) as connection:
        rows = list(outcomes.labelled(connection))
    out.write(outcomes.labelled_csv(rows))
    written_to = "standard output" if out.name == "-" else out.name
    click.echo(f"{len(rows):,} labelled cases written to {written_to}", err=True)
