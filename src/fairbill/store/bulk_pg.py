"""Bulk writes on PostgreSQL through psycopg 3: ``COPY`` for inserts, one ``UPDATE ...
FROM unnest(arrays)`` per set of columns for updates by id.

An executemany on psycopg sends one prepared statement per row (pipelined): for a chunk
of renewals the server parsed, planned and ran some 15 statements per renewal, and the
client adapted every parameter of every one. ``COPY`` streams a table's rows in one
command and an update by arrays is one statement whatever the number of rows; both run
in the caller's transaction, on its connection.

Values go through the same bind processors as SQLAlchemy's (``UtcDateTime`` refuses a
naive instant and converts to UTC; JSON is serialised), memoised by object identity as
``store.bulk.BulkWriter`` does; Python-side column defaults a row leaves out are filled
in as an INSERT would. Statement events do not see a ``COPY`` (it is no cursor execute).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert


def usable(conn: Connection) -> bool:
    """Whether ``conn`` is PostgreSQL through psycopg 3 (whose cursors can ``COPY``)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def copy_insert(
    conn: Connection, statement: Insert, rows: Sequence[dict[str, Any]], memo: dict[int, Any]
) -> None:
    """``conn.execute(statement, rows)`` as one ``COPY``; every row has the first's keys."""
    target = statement.table
    assert isinstance(target, Table)
    names = list(rows[0])
    columns = [[row[name] for row in rows] for name in names]
    compiled = statement.compile(dialect=conn.dialect, column_keys=names)
    for column in compiled.insert_prefetch:  # Python-side defaults the rows leave out
        names.append(column.key)
        columns.append([_default(column) for _ in rows])
    for at, name in enumerate(names):
        columns[at] = _bound(conn, target.c[name], columns[at], memo)
    quote = conn.dialect.identifier_preparer
    listed = ", ".join(quote.format_column(target.c[name]) for name in names)
    command = f"COPY {quote.format_table(target)} ({listed}) FROM STDIN"
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with cursor.copy(command) as copy:
            for values in zip(*columns, strict=True):
                copy.write_row(values)
    except dbapi_error as exc:  # as SQLAlchemy raises it for a statement: IntegrityError …
        raise DBAPIError.instance(command, None, exc, dbapi_error) from exc


def update_by_id(
    conn: Connection, target: Table, rows: Sequence[dict[str, Any]], memo: dict[int, Any]
) -> None:
    """UPDATE ``target`` SET each row's columns WHERE id = its ``id`` (or ``row_id``), in
    one statement: every row has the first's keys."""
    names = list(rows[0])
    ident = "row_id" if "row_id" in names else "id"
    columns = [target.c.id if name == ident else target.c[name] for name in names]
    quote = conn.dialect.identifier_preparer
    arrays = [
        _bound(conn, column, [row[name] for row in rows], memo)
        for name, column in zip(names, columns, strict=True)
    ]
    types = [column.type.compile(dialect=conn.dialect) for column in columns]
    unnest = ", ".join(f"%s::{kind}[]" for kind in types)
    given = ", ".join(f"v_{at}" for at in range(len(names)))
    sets = ", ".join(
        f"{quote.format_column(column)} = v.v_{at}"
        for at, (name, column) in enumerate(zip(names, columns, strict=True))
        if name != ident
    )
    key = f"v.v_{names.index(ident)}"
    conn.exec_driver_sql(
        f"UPDATE {quote.format_table(target)} AS t SET {sets} "
        f"FROM unnest({unnest}) AS v({given}) WHERE t.id = {key}",
        tuple(arrays),
    )


def _default(column: Column[Any]) -> Any:
    default = column.default
    if default is None or not getattr(default, "is_scalar", False):
        # SQLAlchemy wraps a callable default to take the execution context.
        return default.arg(None) if default is not None else None  # type: ignore[attr-defined]
    return default.arg  # type: ignore[attr-defined]


def _bound(
    conn: Connection, column: Column[Any], values: list[Any], memo: dict[int, Any]
) -> list[Any]:
    """``values`` through the column's bind processor, each distinct object once."""
    dialect = conn.dialect
    process: Callable[[Any], Any] | None = column.type.dialect_impl(dialect).bind_processor(dialect)
    if process is None:
        return values
    done: dict[int, Any] = memo if _is_instant(column) else {}
    for key, value in {id(value): value for value in values}.items():
        if key not in done:
            done[key] = process(value)
    return list(map(done.__getitem__, map(id, values)))


def _is_instant(column: Column[Any]) -> bool:
    from fairbill.store.tables import UtcDateTime

    return isinstance(column.type, UtcDateTime)
