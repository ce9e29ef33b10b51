"""``column IN (values)`` for a chunk's worth of values.

An IN list binds one parameter per value: for a chunk of 2,000 rows SQLAlchemy renders,
and psycopg parses, a statement with 2,000 placeholders on every execution, and none is
cached (each length is another statement). On PostgreSQL ``column = ANY(:array)`` binds
one array instead and is one statement whatever the length; SQLite keeps IN.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, any_, bindparam
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstrumentedAttribute, Session


def one_of(
    bind: Session | Connection,
    column: ColumnElement[Any] | InstrumentedAttribute[Any],
    values: Iterable[Any],
) -> ColumnElement[bool]:
    """``column IN (values)``, as ``column = ANY(array)`` on PostgreSQL."""
    listed = list(values)
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    if dialect.name == "postgresql":
        return column == any_(bindparam(None, listed, type_=ARRAY(column.type)))
    return column.in_(listed)
