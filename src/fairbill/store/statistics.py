"""The planner's statistics of the tables billing grows, kept current on PostgreSQL.

Why: a foreign-key check runs as a plan each database backend caches. Planned while the
referenced table was empty (a new database; autovacuum off, or not come round yet: its
nap is a minute), the check is a sequential scan, and stays one as the table grows, so a
chunk's inserts cost in proportion to the table: measured in the cycle's benchmark, 139 µs
a journal entry against 17 µs once the tables were analysed. ``ANALYZE`` updates the
table's statistics, which invalidates every backend's plans that read it.

``refresh`` analyses the tables of ``GROWING`` whose files more than doubled (and grew by
64 pages) since their statistics were taken: one catalog query when none did. Doubling is
enough: what goes wrong is a plan made for a table believed empty or tiny, and analysing at
each doubling costs a table a few analyses over its life, not one per chunk. It is
called at the start of each chunk of the daily cycle (``billing_cycle.renew_chunk``). The
analysis is ``SKIP_LOCKED``: a table another worker (or autovacuum) is analysing now is
left to it. SQLite needs none of this (its foreign keys are checked by index).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

# The tables written per renewal, payment or refund, and those their rows point at.
GROWING = (
    "customers",
    "subscriptions",
    "invoices",
    "invoice_lines",
    "payments",
    "refunds",
    "requests",
    "gateway_operations",
    "failed_payments",
    "credit_notes",
    "wallet_entries",
    "journal_transactions",
    "journal_entries",
    "notifications",
    "decisions",
)

_STALE = text(
    """
    SELECT c.relname FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace
      AND c.relkind = 'r'
      AND c.relname = ANY(:names)
      AND pg_relation_size(c.oid)
          > (GREATEST(c.relpages, 0) * 2 + 64) * current_setting('block_size')::bigint
    ORDER BY c.relname
    """
)


def refresh(session: Session) -> list[str]:
    """Analyse the tables of ``GROWING`` that outgrew their statistics, in the session's
    transaction; returns their names (none on SQLite)."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    stale = list(session.scalars(_STALE, {"names": list(GROWING)}))
    if stale:
        quoted = ", ".join(f'"{name}"' for name in stale)  # names from ``GROWING`` only
        session.execute(text(f"ANALYZE (SKIP_LOCKED) {quoted}"))
    return stale
