"""Executemany of parameter dicts, bound once per distinct value and sent to the driver.

``conn.execute(insert(table), rows)`` costs SQLAlchemy per row and per value (a parameter
dict built for every row, every column's bind processor called for every value): for a
chunk of renewals that was most of the time spent writing. ``BulkWriter.execute``
compiles the statement once, exactly as ``conn.execute`` would for these keys, runs each
bind processor once per distinct object (a chunk shares its ``now``, and a row's period
bounds appear in its invoice, its line and its subscription), and hands the driver a list
of tuples.

Only for positional (``qmark``) drivers and statements with nothing for SQLAlchemy to fill
in at execution (Python-side column defaults); anything else goes through
``conn.execute`` unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.dml import Insert, Update

from fairbill.store import bulk_pg
from fairbill.store.tables import UtcDateTime


class BulkWriter:
    """Bulk statements for one chunk. Values are remembered by object identity, so the
    rows given to ``execute`` must stay alive as long as the writer (ids are not reused
    while an object lives)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # Every ``UtcDateTime`` column binds alike: one memo for the instants of all
        # statements of the chunk.
        self._instants: dict[int, Any] = {}

    def execute(self, statement: Insert | Update, rows: Sequence[dict[str, Any]]) -> None:
        """``conn.execute(statement, rows)``, cheaper. Every row has the first row's keys."""
        if not rows:
            return
        conn, dialect = self.conn, self.conn.dialect
        if isinstance(statement, Insert) and bulk_pg.usable(conn):
            bulk_pg.copy_insert(conn, statement, rows, self._instants)
            return
        shape = _shape(statement, tuple(rows[0]), dialect)
        if shape is None:
            conn.execute(statement, list(rows))
            return
        sql, binds = shape
        columns = [[row[name] for row in rows] for name, _, _ in binds]
        for at, (_, process, instant) in enumerate(binds):
            if process is not None:
                memo = self._instants if instant else {}
                columns[at] = _bind_column(columns[at], process, memo)
        conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))


# (statement kind, table, parameter keys, dialect) -> the SQL and each parameter's name,
# bind processor and whether it is an instant; None: not for a positional executemany.
# The statements given to ``BulkWriter`` are a table's plain INSERT or ``update_by_id``'s
# UPDATE, so these four say everything about the compiled statement: compiled once per
# process, not once per call (a single call's plan writes a few rows per table).
_Binds = list[tuple[str, Callable[[Any], Any] | None, bool]]
_SHAPES: dict[tuple[str, str, tuple[str, ...], str], tuple[str, _Binds] | None] = {}


def _shape(
    statement: Insert | Update, keys: tuple[str, ...], dialect: Any
) -> tuple[str, _Binds] | None:
    cache_key = (type(statement).__name__, statement.table.name, keys, dialect.name)  # type: ignore[union-attr]
    if cache_key in _SHAPES:
        return _SHAPES[cache_key]
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    names = compiled.positiontup
    found: tuple[str, _Binds] | None = None
    if not (
        dialect.paramstyle != "qmark"
        or names is None
        or compiled.insert_prefetch
        or compiled.update_prefetch
    ):
        binds: _Binds = []
        for name in names:
            kind = compiled.binds[name].type
            process = kind.dialect_impl(dialect).bind_processor(dialect)
            binds.append((name, process, isinstance(kind, UtcDateTime)))
        found = (compiled.string, binds)
    _SHAPES[cache_key] = found
    return found


def _bind_column(
    values: list[Any], process: Callable[[Any], Any], done: dict[int, Any]
) -> list[Any]:
    """``process`` over a column, remembered in ``done`` by object identity (a processor
    is a pure function of its value)."""
    for key, value in {id(value): value for value in values}.items():
        if key not in done:
            done[key] = process(value)
    return list(map(done.__getitem__, map(id, values)))


def update_by_id(writer: BulkWriter, target: Table, rows: list[dict[str, Any]]) -> None:
    """UPDATE ``target`` by id (each row's ``id``, or ``row_id``), one executemany per set
    of columns: an executemany sets the same columns on every row, and each row must
    change only its own."""
    shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
    if bulk_pg.usable(writer.conn):  # one UPDATE ... FROM unnest(arrays) per shape
        for row in rows:
            shapes.setdefault(frozenset(row), []).append(row)
        for batch in shapes.values():
            bulk_pg.update_by_id(writer.conn, target, batch, writer._instants)
        return
    for row in rows:
        params = {"row_id" if key == "id" else key: value for key, value in row.items()}
        shapes.setdefault(frozenset(params), []).append(params)
    statement = update(target).where(target.c.id == bindparam("row_id"))
    for batch in shapes.values():
        writer.execute(statement, batch)  # the columns to set are the parameters' keys
