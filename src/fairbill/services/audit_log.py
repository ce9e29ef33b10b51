"""The audit log: who changed what, when, under which request id. Append-only.

Every adapter that changes state records one row per action, in the same transaction as
the change (the API through ``api.mutation``, the web pages through ``web.actions``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import String
from sqlalchemy.orm import Session

from fairbill.services.redaction import redact
from fairbill.store.tables import AuditLogRow, table

# The columns' widths: a longer value would be a 500 on PostgreSQL after the work was done.
_TARGET = cast(String, table(AuditLogRow).c.target.type).length or 128
_ACTOR = cast(String, table(AuditLogRow).c.actor.type).length or 64
_REQUEST = cast(String, table(AuditLogRow).c.request_id.type).length or 64


def record(
    session: Session,
    *,
    merchant_id: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    request_id: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Add one row to the caller's unit of work (committed with the change it records)."""
    session.add(
        AuditLogRow(
            merchant_id=merchant_id,
            at=at,
            actor=actor[:_ACTOR],
            action=action,
            target=target[:_TARGET],
            request_id=request_id[:_REQUEST],
            details=redact(details or {}),  # secrets never in the log
        )
    )
