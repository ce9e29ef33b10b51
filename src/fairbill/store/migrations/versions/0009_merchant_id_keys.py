"""Opaque public ids: each merchant's key for them (``fairbill.ids``).

``merchants.id_key``: 128 random bits as hex, drawn once per merchant (here for the
merchants already stored, at creation for the others) and never changed, since every
public id of the merchant's rows is enciphered under it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.add_column(sa.Column("id_key", sa.String(length=32), nullable=True))
    merchants = sa.table("merchants", sa.column("id", sa.Integer), sa.column("id_key", sa.String))
    conn = op.get_bind()
    for (merchant_id,) in conn.execute(sa.select(merchants.c.id)).all():
        conn.execute(
            merchants.update()
            .where(merchants.c.id == merchant_id)
            .values(id_key=secrets.token_hex(16))
        )
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.alter_column("id_key", existing_type=sa.String(length=32), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("merchants") as batch_op:
        batch_op.drop_column("id_key")
