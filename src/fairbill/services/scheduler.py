"""Time-driven work: find what is due at an instant and run it.

Every job is idempotent: it acts only when its own state says it is due and moves that
state past the instant, so running the same instant twice changes nothing.
Order at one instant: payment retries, usage checks, subscription boundaries (cancel,
trial end, renewal), credit expiries, data deletions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from fairbill.services import accounts, credits, subscriptions
from fairbill.services.context import Ctx
from fairbill.store.tables import CreditPackRow, CustomerRow, SubscriptionRow

LIVE = subscriptions.LIVE
BILLED = ("trialing", "active", "past_due")


def next_due(ctx: Ctx) -> datetime | None:
    """The earliest instant at which anything of this merchant is due."""
    s = ctx.session
    candidates = [
        s.scalar(
            select(func.min(SubscriptionRow.current_period_end)).where(
                SubscriptionRow.status.in_(BILLED)
            )
        ),
        s.scalar(
            select(func.min(SubscriptionRow.cancel_at)).where(SubscriptionRow.status.in_(LIVE))
        ),
        s.scalar(
            select(func.min(SubscriptionRow.next_retry_at)).where(SubscriptionRow.status.in_(LIVE))
        ),
        s.scalar(
            select(func.min(SubscriptionRow.usage_check_at)).where(SubscriptionRow.status.in_(LIVE))
        ),
        s.scalar(
            select(func.min(CreditPackRow.expires_at)).where(CreditPackRow.status == "active")
        ),
        s.scalar(
            select(func.min(CustomerRow.data_retained_until)).where(
                CustomerRow.data_deleted_at.is_(None)
            )
        ),
    ]
    found = [c for c in candidates if c is not None]
    return min(found) if found else None


def run_due(ctx: Ctx) -> None:
    """Run everything due at or before ``ctx.now``."""
    now = ctx.now
    s = ctx.session
    for sub in s.scalars(
        select(SubscriptionRow).where(
            SubscriptionRow.status.in_(LIVE), SubscriptionRow.next_retry_at <= now
        )
    ).all():
        accounts.retry_due(ctx, _customer(ctx, sub), sub)
    for sub in s.scalars(
        select(SubscriptionRow).where(
            SubscriptionRow.status.in_(LIVE), SubscriptionRow.usage_check_at <= now
        )
    ).all():
        subscriptions.usage_check(ctx, _customer(ctx, sub), sub)
    boundary = (
        select(SubscriptionRow)
        .where(
            SubscriptionRow.status.in_(LIVE),
            ((SubscriptionRow.current_period_end <= now) & SubscriptionRow.status.in_(BILLED))
            | (SubscriptionRow.cancel_at <= now),
        )
        .order_by(SubscriptionRow.current_period_end, SubscriptionRow.id)
    )
    for sub in s.scalars(boundary).all():
        subscriptions.advance(ctx, _customer(ctx, sub), sub)
    for pack in s.scalars(
        select(CreditPackRow).where(
            CreditPackRow.status == "active", CreditPackRow.expires_at <= now
        )
    ).all():
        credits.expire(ctx, s.get_one(CustomerRow, pack.customer_id), pack)
    for customer in s.scalars(
        select(CustomerRow).where(
            CustomerRow.data_deleted_at.is_(None), CustomerRow.data_retained_until <= now
        )
    ).all():
        accounts.delete_data_if_due(ctx, customer)
    s.flush()


def _customer(ctx: Ctx, sub: SubscriptionRow) -> CustomerRow:
    return ctx.session.get_one(CustomerRow, sub.customer_id)
