"""A subscription's end, planned."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from fairbill.errors import IllegalTransition
from fairbill.lifecycle import SubscriptionStatus
from fairbill.plans.effects import Plan, Rows
from fairbill.plans.subscriptions import Ending, plan_end

AT = datetime(2026, 3, 1, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
Sub = SubscriptionStatus


def _ending(status: Sub, to: Sub, cancel_at: datetime | None, until: datetime | None) -> Ending:
    return Ending(5, 3, status, to, AT, cancel_at, until)


def test_an_end_stops_everything_due_and_starts_the_retention_clock() -> None:
    plan = Plan()
    until = AT + timedelta(days=90)
    plan_end(plan, _ending(Sub.ACTIVE, Sub.CANCELED, None, until))
    (sub, customer) = plan.changes
    assert (sub.rows, sub.id) == (Rows.SUBSCRIPTIONS, 5)
    assert sub.values == {
        "status": "canceled",
        "ended_at": AT,
        "cancel_at": AT,
        "next_retry_at": None,
        "usage_check_at": None,
    }
    assert (customer.rows, customer.values) == (Rows.CUSTOMERS, {"data_retained_until": until})


def test_a_cancellation_scheduled_earlier_keeps_its_date_and_a_later_one_is_moved() -> None:
    earlier, later = AT - timedelta(days=1), AT + timedelta(days=1)
    for scheduled, kept in ((earlier, earlier), (later, AT)):
        plan = Plan()
        plan_end(plan, _ending(Sub.PAST_DUE, Sub.TERMINATED, scheduled, None))
        (sub,) = plan.changes  # no retention clock: another subscription is live
        assert sub.values["cancel_at"] == kept


@pytest.mark.parametrize("ended", [Sub.CANCELED, Sub.EXPIRED, Sub.TERMINATED])
def test_an_ended_subscription_cannot_end_again(ended: Sub) -> None:
    with pytest.raises(IllegalTransition):
        plan_end(Plan(), _ending(ended, Sub.CANCELED, None, None))


def test_only_a_trial_expires() -> None:
    with pytest.raises(IllegalTransition):
        plan_end(Plan(), _ending(Sub.ACTIVE, Sub.EXPIRED, None, None))
    plan_end(Plan(), _ending(Sub.TRIALING, Sub.EXPIRED, None, None))
