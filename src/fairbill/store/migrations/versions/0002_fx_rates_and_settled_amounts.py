"""Exchange rates, and each payment's value in the merchant's currency.

A payment may be made in another currency than the price (a USD card paying a EUR
invoice): ``settled_minor`` is what it settled in the merchant's currency, and
``settled_refunded_minor`` how much of that was refunded. Existing payments were all made
in the merchant's currency, so they are backfilled from ``amount_minor``/``refunded_minor``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fx_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("base", sa.String(length=3), nullable=False),
        sa.Column("quote", sa.String(length=3), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rate", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_fx_rates_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fx_rates")),
    )
    op.create_index(op.f("ix_fx_rates_at"), "fx_rates", ["at"], unique=False)
    op.create_index(op.f("ix_fx_rates_merchant_id"), "fx_rates", ["merchant_id"], unique=False)
    # Nullable first, backfilled, then required: existing rows need a value.
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("settled_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("settled_refunded_minor", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE payments SET settled_minor = amount_minor, settled_refunded_minor = refunded_minor"
    )
    with op.batch_alter_table("payments") as batch_op:
        batch_op.alter_column("settled_minor", existing_type=sa.BigInteger(), nullable=False)
        batch_op.alter_column(
            "settled_refunded_minor", existing_type=sa.BigInteger(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_column("settled_refunded_minor")
        batch_op.drop_column("settled_minor")
    op.drop_index(op.f("ix_fx_rates_merchant_id"), table_name="fx_rates")
    op.drop_index(op.f("ix_fx_rates_at"), table_name="fx_rates")
    op.drop_table("fx_rates")
