"""Alerts to a merchant's finance people: outbox rows addressed to the merchant.

``notify_finance`` is the merchant-side twin of ``plans.billing.plan_notice``: it adds a
``NotificationRow`` with ``merchant_id`` set and ``customer_id`` NULL, in the caller's
transaction, so the alert commits with the state it reports (or not at all). The outbox
sends it to ``MerchantRow.finance_email``; with none on file the row is parked, as a
customer's message is without an address, and ``outbox.requeue`` sends it once one is set.

It knows nothing of why it is called: a failing scheduled job, a refund that finally
failed, whatever comes next. The template says what happened, from ``payload``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fairbill.notify.render import TEMPLATES
from fairbill.store.tables import MerchantRow, NotificationRow


def notify_finance(
    session: Session,
    merchant: MerchantRow,
    template: str,
    language: str | None = None,
    *,
    at: datetime,
    **payload: str,
) -> NotificationRow:
    """Queue ``template`` for ``merchant``'s finance address, in ``language`` (the
    merchant's own when not given). ``payload`` values are strings, as in ``plan_notice``:
    amounts as decimal text, instants as ISO 8601."""
    if template not in TEMPLATES:
        # Caught here, where the caller can be fixed, not in the outbox hours later.
        raise ValueError(f"unknown notification template {template!r}")
    row = NotificationRow(
        merchant_id=merchant.id,
        customer_id=None,
        at=at,
        template=template,
        language=language or merchant.language,
        payload=dict(payload),
    )
    session.add(row)
    return row
