"""Closing an account settles its scheduled plan changes; a closed account changes no plan.

The bug (issue 8): a Kalenner customer downgraded (cancel now, resubscribe to the lower
plan at the period end: ``successor_plan``) and then closed the account. At the period
end the resubscription met the closed account's ``Conflict`` on every run of the
scheduler. A Conek downgrade waits for the period end the same way (``pending_plan``).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from fairbill.errors import Conflict
from fairbill.services import subscriptions
from fairbill.store.tables import JobFailureRow, SubscriptionRow

from .world import World, base_text


@pytest.mark.parametrize(
    ("policy", "scheduled"), [("kalenner", "successor_plan"), ("conek", "pending_plan")]
)
def test_closing_after_a_downgrade_drops_the_lower_plan(policy: str, scheduled: str) -> None:
    world = World(base_text(policy))
    try:
        assert world.act("subscribe", {"plan": "pro-monthly", "payment_method": "card_1"})
        world.advance(timedelta(days=20))
        assert world.act("change_plan", {"plan": "basic-monthly"})
        [sub] = world.live_subscriptions()
        assert getattr(sub, scheduled) == "basic-monthly"

        assert world.act("close_account", {})
        world.session.refresh(sub)
        assert (sub.pending_plan, sub.successor_plan) == (None, None)

        world.advance(timedelta(days=70))  # past the period end, and the next one
        plans = world.session.scalars(
            select(SubscriptionRow.plan_code).where(
                SubscriptionRow.customer_id == world.customer.id
            )
        ).all()
        assert "basic-monthly" not in plans  # no new subscription for a closed account
        assert world.live_subscriptions() == []
        assert world.session.scalars(select(JobFailureRow)).all() == []
    finally:
        world.close()


def test_a_closed_account_changes_no_plan() -> None:
    world = World(base_text("conek"))
    try:
        assert world.act("subscribe", {"plan": "pro-monthly", "payment_method": "card_1"})
        world.advance(timedelta(days=3))
        assert world.act("close_account", {})
        [sub] = world.live_subscriptions()  # still running until its period ends
        with pytest.raises(Conflict, match="cus_1 is closed"):
            subscriptions.change_plan(world.ctx, world.customer, sub, "basic-monthly")
        world.session.rollback()
        assert not world.act("change_plan", {"plan": "pro-annual"})
        world.session.refresh(sub)
        assert (sub.plan_code, sub.pending_plan) == ("pro-monthly", None)
    finally:
        world.close()
