"""Rows written through the database driver, for the writes every screening makes.

SQLAlchemy Core costs about 50 microseconds a statement on top of the driver's own work (it
prepares its parameters, events and results for any statement); a screening writes four to
six of them while it holds the write lock. `RowInsert` builds its statement once per dialect,
converts the values the way the columns' types would (times in UTC, as `UtcDateTime` stores
them) and hands them to the driver's `executemany`. What it writes reads back through
SQLAlchemy as if SQLAlchemy had written it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Dialect, Table

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
