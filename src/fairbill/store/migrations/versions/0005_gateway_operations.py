"""Durable gateway operations, the database sandbox, merchant alerts, job failures and
idempotency leases.

``gateway_operations``: every charge and refund is first committed here as ``pending``
with an idempotency key derived from stable ids, then sent to the gateway after the
commit, and its outcome recorded in a second transaction (``succeeded``, ``failed``,
``unknown``); the reconciler finishes ``pending`` and ``unknown`` ones.
``sandbox_operations`` and ``sandbox_faults``: the sandbox gateway's own records and the
faults it is told to produce, so a restart changes nothing. ``refunds.status``: a refund
to a card is ``pending`` until the gateway paid it (existing rows were paid).
``merchants.finance_email`` and ``notifications.merchant_id`` (``customer_id`` now
nullable): messages to the merchant's finance address go through the same outbox.
``job_failures``: a due item of the scheduler that failed, with its error and backoff.
``idempotency_keys.locked_until`` and ``owner``: the lease of a request in progress.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_operations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=True),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("refund_id", sa.Integer(), nullable=True),
        sa.Column("subscription_id", sa.Integer(), nullable=True),
        sa.Column("token", sa.String(length=100), nullable=True),
        sa.Column("method", sa.String(length=100), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("settled_minor", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("tries", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_gateway_operations_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_gateway_operations_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_gateway_operations_invoice_id_invoices"),
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_gateway_operations_payment_id_payments"),
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"],
            ["refunds.id"],
            name=op.f("fk_gateway_operations_refund_id_refunds"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_operations")),
        sa.UniqueConstraint("key", name=op.f("uq_gateway_operations_key")),
    )
    with op.batch_alter_table("gateway_operations") as batch_op:
        for column in ("merchant_id", "customer_id", "invoice_id", "payment_id", "refund_id"):
            batch_op.create_index(
                batch_op.f(f"ix_gateway_operations_{column}"), [column], unique=False
            )
        batch_op.create_index(
            "ix_gateway_operations_status_next_attempt_at",
            ["status", "next_attempt_at"],
            unique=False,
        )
    op.create_table(
        "sandbox_operations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=100), nullable=True),
        sa.Column("charge_reference", sa.String(length=100), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("reference", sa.String(length=100), nullable=True),
        sa.Column("decline_code", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_operations")),
        sa.UniqueConstraint("key", name=op.f("uq_sandbox_operations_key")),
    )
    op.create_table(
        "sandbox_faults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operation", sa.String(length=16), nullable=False),
        sa.Column("token", sa.String(length=100), nullable=True),
        sa.Column("fault", sa.String(length=32), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column("delay_ms", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_faults")),
    )
    op.create_table(
        "job_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_job_failures_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_failures")),
        sa.UniqueConstraint(
            "merchant_id", "job", "target", name=op.f("uq_job_failures_merchant_id_job_target")
        ),
    )
    with op.batch_alter_table("job_failures") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_job_failures_merchant_id"), ["merchant_id"], unique=False
        )
    with op.batch_alter_table("refunds") as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="succeeded")
        )
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.add_column(sa.Column("finance_email", sa.String(length=254), nullable=True))
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.alter_column("customer_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("merchant_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_notifications_merchant_id_merchants"),
            "merchants",
            ["merchant_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch_op.create_index(
            batch_op.f("ix_notifications_merchant_id"), ["merchant_id"], unique=False
        )
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.add_column(sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("owner", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.drop_column("owner")
        batch_op.drop_column("locked_until")
    with op.batch_alter_table("notifications") as batch_op:
        batch_op.drop_index(batch_op.f("ix_notifications_merchant_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_notifications_merchant_id_merchants"), type_="foreignkey"
        )
        batch_op.drop_column("merchant_id")
        batch_op.alter_column("customer_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.drop_column("finance_email")
    with op.batch_alter_table("refunds") as batch_op:
        batch_op.drop_column("status")
    op.drop_table("job_failures")
    op.drop_table("sandbox_faults")
    op.drop_table("sandbox_operations")
    op.drop_table("gateway_operations")
