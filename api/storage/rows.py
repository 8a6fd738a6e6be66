"""Statements run through the database driver, for the ones every group of screenings runs.

SQLAlchemy Core costs about 50 microseconds a statement on top of the driver's own work (it
prepares its parameters, events and results for any statement), and three or four times that
on a server whose caches the screening between two statements has just filled with other
things; a group runs seven to nine of them while it holds the write lock. `RowInsert` builds
its statement once per dialect, converts the values the way the columns' types would (times in
UTC, as `UtcDateTime` stores them) and hands them to the driver's `executemany`. What it writes
reads back through SQLAlchemy as if SQLAlchemy had written it. `DriverStatement` does the same
for any other Core statement: compiled once per dialect, its parameters converted likewise, its
rows as the driver gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Dialect, Table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

Convert = Callable[[Any], Any] | None


class RowInsert:
    """INSERT of whole rows into `table`: each row names every one of `columns` (by default
    all the table's), in every call."""

    def __init__(self, table: Table, columns: Sequence[str] | None = None) -> None:
        self.table = table
        self.columns = tuple(table.columns.keys() if columns is None else columns)
        unknown = set(self.columns) - set(table.columns.keys())
        if unknown:
            raise ValueError(f"{table.name} has no column {sorted(unknown)}")
        self._plans: dict[str, tuple[str, tuple[Convert, ...]]] = {}

    def __call__(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        sql, converts = self._plan(connection.dialect)
        names = self.columns
        values = [
            tuple(
                row[name] if convert is None else convert(row[name])
                for name, convert in zip(names, converts, strict=True)
            )
            for row in rows
        ]
        cursor = connection.connection.cursor()
        try:
            with driver_errors(connection, sql):
                cursor.executemany(sql, values)
        finally:
            cursor.close()

    def _plan(self, dialect: Dialect) -> tuple[str, tuple[Convert, ...]]:
        plan = self._plans.get(dialect.name)
        if plan is None:
            plan = self._plans[dialect.name] = insert_plan(self.table, self.columns, dialect)
        return plan


def insert_plan(
    table: Table, columns: Sequence[str], dialect: Dialect
) -> tuple[str, tuple[Convert, ...]]:
    """The INSERT statement in the driver's own placeholders, and each column's conversion."""
    quote = dialect.identifier_preparer.quote
    marker = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(dialect.paramstyle)
    if marker is None:
        raise ValueError(f"no positional placeholder for paramstyle {dialect.paramstyle}")
    sql = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in columns)}) "
        f"VALUES ({', '.join(marker for _ in columns)})"
    )
    converts = tuple(
        table.columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    )
    return sql, converts


class DriverStatement:
    """A Core statement run through the driver; its rows as tuples of the driver's own values
    (for columns the driver returns as SQLAlchemy would: integers and text, not times)."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._plans: dict[str, tuple[str, Callable[[Mapping[str, Any]], Any]]] = {}

    def rows(
        self, connection: Connection, params: Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        return self._run(connection, params, fetch=True)

    def run(self, connection: Connection, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement whose rows nobody reads (on PostgreSQL it may share a round trip
        with others in `pipelined`)."""
        self._run(connection, params, fetch=False)

    def _run(
        self, connection: Connection, params: Mapping[str, Any] | None, *, fetch: bool
    ) -> list[tuple[Any, ...]]:
        sql, bind = self._plan(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            with driver_errors(connection, sql):
                cursor.execute(sql, bind(params or {}))
                return [tuple(row) for row in cursor.fetchall()] if fetch else []
        finally:
            cursor.close()

    def _plan(self, dialect: Dialect) -> tuple[str, Callable[[Mapping[str, Any]], Any]]:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            assert isinstance(compiled, SQLCompiler)
            plan = self._plans[dialect.name] = (compiled.string, _binder(compiled, dialect))
        return plan


def _binder(compiled: SQLCompiler, dialect: Dialect) -> Callable[[Mapping[str, Any]], Any]:
    """What turns a call's parameters into the driver's: the statement's own values (literals
    SQLAlchemy made parameters) overridden by the call's, each converted as its type says, in
    the order of the placeholders (or by name, for drivers that take names)."""
    defaults = dict(compiled.params)
    required = {name for name, bind in compiled.binds.items() if bind.required}
    converts = {
        name: bind.type.dialect_impl(dialect).bind_processor(dialect)
        for name, bind in compiled.binds.items()
    }
    order = compiled.positiontup

    def values(params: Mapping[str, Any]) -> Any:
        if not required <= params.keys() or not params.keys() <= defaults.keys():
            missing, unknown = required - params.keys(), params.keys() - defaults.keys()
            raise ValueError(f"parameters missing: {sorted(missing)}, unknown: {sorted(unknown)}")
        merged = {**defaults, **params}
        for name, value in merged.items():
            convert = converts.get(name)
            if convert is not None:
                merged[name] = convert(value)
        return merged if order is None else tuple(merged[name] for name in order)

    return values


@contextmanager
def driver_errors(connection: Connection, statement: str | None = None) -> Iterator[None]:
    """The driver's errors raised as SQLAlchemy raises them for its own statements (an
    `IntegrityError` for a duplicate key, whatever the database), and a lost connection
    invalidated, so that the pool opens a new one and `database.once_more_if_lost` tries
    again."""
    dialect = connection.dialect
    base = dialect.loaded_dbapi.Error
    try:
        yield
    except base as error:
        lost = dialect.is_disconnect(error, connection.connection.dbapi_connection, None)
        if lost:
            # as SQLAlchemy does for its own statements: every connection the pool opened
            # before is lost too (the server restarted), not only this one
            connection.engine.pool._invalidate(connection.connection, error, _checkin=False)
            connection.invalidate(error)
        raise DBAPIError.instance(
            statement, None, error, base, connection_invalidated=lost, dialect=dialect
        ) from error
