"""Cursor pagination: ``?limit=&cursor=``; the cursor is opaque (the last row's id)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from fairbill.api.problems import Problem

MAX_LIMIT = 100


def encode(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{row_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode()).decode()
        if not text.startswith("id:"):
            raise ValueError(cursor)
        return int(text[3:])
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            422,
            "invalid_cursor",
            "Invalid cursor",
            "the cursor is not one we issued",
            errors=[{"field": "cursor", "message": "invalid cursor"}],
        ) from exc


def page(
    session: Session,
    query: Select[Any],
    model: Any,
    limit: int,
    cursor: str | None,
    render: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """Rows in id order after ``cursor``; ``limit`` is clamped to 1..100 by the route."""
    if cursor:
        query = query.where(model.id > decode(cursor))
    rows = list(session.scalars(query.order_by(model.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [render(r) for r in rows],
        "has_more": more,
        "next_cursor": encode(rows[-1].id) if more and rows else None,
    }
