"""Plans of a subscription's life: its start, its end.

Pure: facts in, effects appended to a ``Plan`` out (``plans.effects``).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from fairbill.calendar.periods import Interval, Period, period_at
from fairbill.lifecycle import SubscriptionStatus, advance
from fairbill.plans.effects import Plan, Ref, Rows


class NewSubscription(NamedTuple):
    """A subscription to start now (local time) on ``plan_code``, under the policy
    version ``version_id`` the customer accepts by subscribing; a trial first when
    ``trial_end``. ``promotion_periods`` is how many periods its promotion runs
    (``None``: for ever)."""

    customer_id: int
    plan_code: str
    interval: Interval
    price: int
    usage: int | None
    payment_method: str | None
    now: datetime
    trial_end: datetime | None
    is_first: bool
    promotion: str | None
    promotion_periods: int | None
    version_id: int | None


def plan_subscription(plan: Plan, n: NewSubscription) -> tuple[Ref, Period]:
    """The subscription's row; returns its handle and its first period to bill (after
    the trial, which is its own current period until then)."""
    anchor = n.trial_end or n.now
    period = period_at(anchor, n.interval, 0)
    trial = n.trial_end is not None
    ref = plan.insert(
        Rows.SUBSCRIPTIONS,
        {
            "customer_id": n.customer_id,
            "plan_code": n.plan_code,
            "status": str(SubscriptionStatus.TRIALING if trial else SubscriptionStatus.ACTIVE),
            "anchor": anchor,
            "started_at": n.now,
            "current_period_start": n.now if trial else period.start,
            "current_period_end": n.trial_end or period.end,
            "trial_end": n.trial_end,
            "payment_method": n.payment_method,
            "price_minor": n.price,
            "usage_level": n.usage,
            "is_first": n.is_first,
            "promotion_code": n.promotion,
            "promotion_periods_left": n.promotion_periods if n.promotion else None,
            "policy_version_id": n.version_id,
            "failed_attempts": 0,
        },
        ref=True,
    )
    assert ref is not None
    return ref, period


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
