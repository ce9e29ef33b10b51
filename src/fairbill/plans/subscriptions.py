"""Plans of a subscription's life: its end, a cancellation at the period's end.

Pure: facts in, effects appended to a ``Plan`` out (``plans.effects``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from fairbill.lifecycle import SubscriptionStatus, advance
from fairbill.plans.effects import Plan, Rows


class Ending(NamedTuple):
    """A subscription to end at ``at`` as ``to`` (canceled, expired, terminated); its
    customer's data is kept until ``retained_until`` (``None``: the clock does not start,
    another subscription is still live or the policy keeps no such clock)."""

    subscription_id: int
    customer_id: int
    status: SubscriptionStatus
    to: SubscriptionStatus
    at: datetime
    cancel_at: datetime | None
    retained_until: datetime | None


def plan_end(plan: Plan, e: Ending) -> None:
    """Service ends: no more renewals, retries or usage checks. A cancellation scheduled
    before ``at`` keeps its date; any other is ``at``. Ending a subscription that has
    ended is an ``IllegalTransition``."""
    plan.change(
        Rows.SUBSCRIPTIONS,
        e.subscription_id,
        status=str(advance(e.status, e.to)),
        ended_at=e.at,
        cancel_at=e.cancel_at if e.cancel_at is not None and e.cancel_at <= e.at else e.at,
        next_retry_at=None,
        usage_check_at=None,
    )
    if e.retained_until is not None:
        plan.change(Rows.CUSTOMERS, e.customer_id, data_retained_until=e.retained_until)
