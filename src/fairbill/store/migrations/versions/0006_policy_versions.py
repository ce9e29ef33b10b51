"""Policies stored as immutable, content-addressed versions.

``policy_versions``: a merchant's policy, whole (its YAML and its canonical JSON, whose
SHA-256 is the version's digest); drafts are published, the newest published version is
the merchant's current one. ``subscriptions.policy_version_id``: the version the customer
accepted. ``decisions.policy_version_id`` and ``facts``: the version that decided and the
call it decided, as canonical JSON, so a stored decision can be decided again.

A migration does not import fairbill: an existing merchant's policy is read once more
from ``policy_ref`` and stored as its first published version by the application, the
first time the merchant is used (``services.policies.current``); its subscriptions and
decisions are then marked as taken under that version.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("canonical", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_policy_versions_merchant_id_merchants"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_versions")),
        sa.UniqueConstraint(
            "merchant_id", "digest", name=op.f("uq_policy_versions_merchant_id_digest")
        ),
    )
    with op.batch_alter_table("policy_versions") as batch_op:
        batch_op.create_index(
            batch_op.f("ix_policy_versions_merchant_id"), ["merchant_id"], unique=False
        )
    with op.batch_alter_table("subscriptions") as batch_op:
        batch_op.add_column(sa.Column("policy_version_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_subscriptions_policy_version_id"), ["policy_version_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_subscriptions_policy_version_id_policy_versions"),
            "policy_versions",
            ["policy_version_id"],
            ["id"],
            ondelete="RESTRICT",
        )
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.add_column(sa.Column("policy_version_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("facts", sa.Text(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_decisions_policy_version_id"), ["policy_version_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_decisions_policy_version_id_policy_versions"),
            "policy_versions",
            ["policy_version_id"],
            ["id"],
            ondelete="RESTRICT",
        )


def downgrade() -> None:
    for name in ("decisions", "subscriptions"):
        with op.batch_alter_table(name) as batch_op:
            batch_op.drop_constraint(
                batch_op.f(f"fk_{name}_policy_version_id_policy_versions"), type_="foreignkey"
            )
            batch_op.drop_index(batch_op.f(f"ix_{name}_policy_version_id"))
            batch_op.drop_column("policy_version_id")
            if name == "decisions":
                batch_op.drop_column("facts")
    with op.batch_alter_table("policy_versions") as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_versions_merchant_id"))
    op.drop_table("policy_versions")
