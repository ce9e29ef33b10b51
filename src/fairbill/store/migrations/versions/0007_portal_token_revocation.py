"""Portal tokens can be revoked; gateway tokens leave the audit log.

``portal_tokens.revoked_at``: when the token was revoked (by the merchant, or because its
customer's account was closed or terminated); NULL while it is live. Existing tokens stay
live, except that a token of an account already closed or terminated is refused all the
same: authentication checks the customer's status too (``services.merchants``).

``audit_log.details``: the payloads of ``customer.create`` and ``payment_method.create``
kept payment methods' gateway tokens in clear. They are replaced by ``"redacted"``, as
the application now writes them (``services.redaction``); there is nothing to restore on
a downgrade.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The actions whose payload names payment methods (with their gateway ``token``).
_WITH_TOKENS = ("customer.create", "payment_method.create")
_AUDIT = sa.table(
    "audit_log",
    sa.column("id", sa.Integer()),
    sa.column("action", sa.String(64)),
    sa.column("details", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("portal_tokens") as batch_op:
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    _scrub_gateway_tokens()


def downgrade() -> None:
    with op.batch_alter_table("portal_tokens") as batch_op:
        batch_op.drop_column("revoked_at")


def _scrub_gateway_tokens() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_AUDIT.c.id, _AUDIT.c.details).where(_AUDIT.c.action.in_(_WITH_TOKENS))
    )
    for row_id, details in rows.all():
        clean = _without_tokens(details)
        if clean != details:
            connection.execute(sa.update(_AUDIT).where(_AUDIT.c.id == row_id).values(details=clean))


def _without_tokens(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "redacted" if k == "token" and v is not None else _without_tokens(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_without_tokens(v) for v in value]
    return value
