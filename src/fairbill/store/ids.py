"""Primary keys for bulk inserts, allocated before the INSERT.

``INSERT ... RETURNING`` in parameter order makes SQLite insert one row per statement, so
the chunked paths take their ids first: from the sequence on PostgreSQL, and above the
current maximum on SQLite, where the write transaction (``BEGIN IMMEDIATE``) already holds
the database lock, so no other writer can take the same numbers.
"""

from __future__ import annotations

from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": count},
        )
        return [int(r[0]) for r in rows]
    top = conn.scalar(select(func.coalesce(func.max(table.c.id), 0)))
    return list(range(int(top or 0) + 1, int(top or 0) + 1 + count))
