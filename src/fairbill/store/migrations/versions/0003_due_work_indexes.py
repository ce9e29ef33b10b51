"""Indexes for the scheduler's daily due-work selects.

Each daily select filters on a status and an instant ("live and retry due by now"). With
only single-column indexes, SQLite drove them from ``customers.merchant_id`` and read
every subscription of the merchant every day; a (status, instant) index lets each select
read only the due rows. New indexes only: no data changes, no batch mode.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index name, table, columns), as declared in ``store.tables``.
INDEXES = (
    ("ix_subscriptions_status_next_retry_at", "subscriptions", ["status", "next_retry_at"]),
    ("ix_subscriptions_status_usage_check_at", "subscriptions", ["status", "usage_check_at"]),
    (
        "ix_subscriptions_status_current_period_end",
        "subscriptions",
        ["status", "current_period_end"],
    ),
    ("ix_subscriptions_status_cancel_at", "subscriptions", ["status", "cancel_at"]),
    (
        "ix_customers_merchant_id_data_retained_until",
        "customers",
        ["merchant_id", "data_retained_until"],
    ),
    ("ix_credit_packs_status_expires_at", "credit_packs", ["status", "expires_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
