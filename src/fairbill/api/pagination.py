"""Cursor pagination: ``?limit=&cursor=``; the cursor is opaque: the last row's id,
enciphered as public ids are (``fairbill.ids``), so it tells nothing of volume either."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select

from fairbill.api.problems import Problem
from fairbill.ids import Ids, Prefix
from fairbill.services.context import Ctx

MAX_LIMIT = 100
# Row ids are 32-bit integer columns on PostgreSQL: a larger number names no row, and
# binding it would fail in the database (a 500) instead of answering 404 or 422.
MAX_ID = 2**31 - 1
_ID_TEXT = re.compile(r"^[0-9]{1,10}$")


def row_id(text: str) -> int | None:
    """ASCII digits naming a possible row id, else None (``int`` alone accepts "1_0",
    " 1", "-1" and non-ASCII digits)."""
    if not _ID_TEXT.match(text):
        return None
    value = int(text)
    return value if value <= MAX_ID else None


def decode(ids: Ids, cursor: str) -> int:
    number = ids.private(Prefix.CURSOR, cursor)
    if number is None:
        raise Problem(
            422,
            "invalid_cursor",
            "Invalid cursor",
            "the cursor is not one we issued",
            errors=[{"field": "cursor", "message": "invalid cursor"}],
        )
    return number


def page(
    ctx: Ctx,
    query: Select[Any],
    model: Any,
    limit: int,
    cursor: str | None,
    render: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """Rows in id order after ``cursor``; ``limit`` is clamped to 1..100 by the route."""
    if cursor:
        query = query.where(model.id > decode(ctx.ids, cursor))
    rows = list(ctx.session.scalars(query.order_by(model.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [render(r) for r in rows],
        "has_more": more,
        "next_cursor": ctx.ids.public(Prefix.CURSOR, rows[-1].id) if more and rows else None,
    }
