"""Advisory locks: work that one process at a time runs, when several share a database.

On PostgreSQL a lock is ``pg_try_advisory_xact_lock(namespace, id)``: taken or not at
once (never waited for), held until the transaction ends, released by a crash with the
connection. On SQLite every write transaction already holds the database
(``BEGIN IMMEDIATE``, see ``store.db``): a second writer waits, then sees the first's
work done, so the lock is always "taken".
"""

from __future__ import annotations

from enum import IntEnum

from sqlalchemy import func, select
from sqlalchemy.orm import Session


class Namespace(IntEnum):
    """The first key of fairbill's advisory locks (0x46420000, "FB", plus a kind): other
    applications on the same server are unlikely to use these."""

    MERCHANT_RUN = 0x46420001  # a merchant's due work outside the chunked renewals


def try_lock(session: Session, namespace: Namespace, key: int) -> bool:
    """Take the lock (``namespace``, ``key``) for the session's current transaction;
    False if another transaction holds it."""
    if session.get_bind().dialect.name != "postgresql":
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(int(namespace), key))))
