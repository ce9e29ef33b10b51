"""``column IN (values)`` for a chunk's worth of values.

An IN list binds one parameter per value: for a chunk of 2,000 rows SQLAlchemy renders,
and the driver parses, a statement with 2,000 placeholders on every execution, and none is
cached (each length is another statement). On PostgreSQL ``column = ANY(:array)`` binds
one array instead; on SQLite ``column IN (SELECT value FROM json_each(:list))`` binds one
JSON text (SQLite still searches ``column``'s index for each value). Either is one
statement whatever the length. Values are ints or strings (ids and keys): what JSON keeps
exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import ARRAY, ColumnElement, String, any_, bindparam, func, literal_column, select
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
    if dialect.name == "sqlite":
        listing = func.json_each(bindparam(None, json.dumps(listed), type_=String()))
        return column.in_(select(literal_column("value")).select_from(listing))
    return column.in_(listed)
