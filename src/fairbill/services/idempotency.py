"""Idempotency keys for service calls: the same key runs the work once.

A call with a key that was seen before returns the stored result without running the
work again; the same key with a different input is a ``Conflict`` (as Stripe answers a
reused key with a different body). The key row is written in the same transaction as the
work, so either both are stored or neither is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from fairbill.errors import Conflict
from fairbill.services.context import Ctx
from fairbill.store.tables import IdempotencyKeyRow


def fingerprint(operation: str, payload: dict[str, Any]) -> str:
    text = json.dumps({"op": operation, "in": payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_once(
    ctx: Ctx,
    key: str | None,
    operation: str,
    payload: dict[str, Any],
    work: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    if key is None:
        return work()
    digest = fingerprint(operation, payload)
    seen = ctx.session.scalar(
        select(IdempotencyKeyRow).where(
            IdempotencyKeyRow.merchant_id == ctx.merchant_row.id, IdempotencyKeyRow.key == key
        )
    )
    if seen is not None:
        if seen.fingerprint != digest:
            raise Conflict(f"idempotency key {key!r} was used with a different request")
        return dict(seen.result)
    result = work()
    ctx.session.add(
        IdempotencyKeyRow(
            merchant_id=ctx.merchant_row.id,
            key=key,
            operation=operation,
            fingerprint=digest,
            result=result,
            created_at=ctx.now,
        )
    )
    ctx.session.flush()
    return result
