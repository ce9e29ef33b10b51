"""Time-driven work: find what is due at an instant and run it, for one merchant.

Every job is idempotent: it acts only when its own state says it is due and moves that
state past the instant, so running the same instant twice changes nothing.
Order at one instant: payment retries, usage checks, subscription boundaries (cancel,
trial end, renewal), credit expiries, data deletions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from fairbill.services import accounts, billing_cycle, credits, subscriptions
from fairbill.services.context import Ctx
from fairbill.store.tables import CreditPackRow, CustomerRow, SubscriptionRow

LIVE = subscriptions.LIVE
BILLED = ("trialing", "active", "past_due")


def _mine(ctx: Ctx, query: Select[Any], model: Any) -> Select[Any]:
    """Restrict ``query`` to this merchant's rows (via their customer)."""
    if model is CustomerRow:
        return query.where(CustomerRow.merchant_id == ctx.merchant_row.id)
    return query.join(CustomerRow, CustomerRow.id == model.customer_id).where(
        CustomerRow.merchant_id == ctx.merchant_row.id
    )


def next_due(ctx: Ctx) -> datetime | None:
    """The earliest instant at which anything of this merchant is due."""
    s = ctx.session
    sub = SubscriptionRow
    queries: list[tuple[Select[Any], Any]] = [
        (select(func.min(sub.current_period_end)).where(sub.status.in_(BILLED)), sub),
        (select(func.min(sub.cancel_at)).where(sub.status.in_(LIVE)), sub),
        (select(func.min(sub.next_retry_at)).where(sub.status.in_(LIVE)), sub),
        (select(func.min(sub.usage_check_at)).where(sub.status.in_(LIVE)), sub),
        (
            select(func.min(CreditPackRow.expires_at)).where(CreditPackRow.status == "active"),
            CreditPackRow,
        ),
        (
            select(func.min(CustomerRow.data_retained_until)).where(
                CustomerRow.data_deleted_at.is_(None)
            ),
            CustomerRow,
        ),
    ]
    found = [v for q, model in queries if (v := s.scalar(_mine(ctx, q, model))) is not None]
    return min(found) if found else None


def run_due(ctx: Ctx) -> None:
    """Run everything of this merchant due at or before ``ctx.now``."""
    now = ctx.now
    s = ctx.session
    sub = SubscriptionRow

    def subs(*alternatives: Any) -> list[SubscriptionRow]:
        """Live subscriptions matching any of ``alternatives``, by (period end, id). One
        select per alternative: each can use its (status, instant) index, an OR cannot."""
        found: dict[int, SubscriptionRow] = {}
        for condition in alternatives:
            query = select(sub).where(sub.status.in_(LIVE), condition)
            found.update((row.id, row) for row in s.scalars(_mine(ctx, query, sub)))
        return sorted(found.values(), key=lambda row: (row.current_period_end, row.id))

    billing_cycle.retry_due(ctx)
    for row in subs(sub.next_retry_at <= now):
        accounts.retry_due(ctx, _customer(ctx, row), row)
    for row in subs(sub.usage_check_at <= now):
        subscriptions.usage_check(ctx, _customer(ctx, row), row)
    billing_cycle.renew_due(ctx)
    period_ended = (sub.current_period_end <= now) & sub.status.in_(BILLED)
    for row in subs(period_ended, sub.cancel_at <= now):
        subscriptions.advance(ctx, _customer(ctx, row), row)
    packs = select(CreditPackRow).where(
        CreditPackRow.status == "active", CreditPackRow.expires_at <= now
    )
    for pack in s.scalars(_mine(ctx, packs, CreditPackRow)):
        credits.expire(ctx, s.get_one(CustomerRow, pack.customer_id), pack)
    due = select(CustomerRow).where(
        CustomerRow.data_deleted_at.is_(None), CustomerRow.data_retained_until <= now
    )
    for customer in s.scalars(_mine(ctx, due, CustomerRow)):
        accounts.delete_data_if_due(ctx, customer)
    s.flush()


def _customer(ctx: Ctx, sub: SubscriptionRow) -> CustomerRow:
    return ctx.session.get_one(CustomerRow, sub.customer_id)
