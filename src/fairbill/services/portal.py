"""What the customer portal reads: a customer's own records, found by the ids the API
shows (opaque public ids: ``sub_…``, ``inv_…``, ``pay_…``, ``req_…``, ``dec_…``), and what
cancelling now would do under the terms the customer accepted.

Invariant: every lookup here takes the customer and answers ``NotFound`` for a record of
anyone else, so a page can never show another customer's record (nor say it exists).
Read-only: the portal changes state through ``subscriptions.cancel``,
``refunds.request_refund`` and ``refunds.appeal`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from fairbill.decisions.cancellation import CancelOutcome, decide_cancel
from fairbill.errors import NotFound
from fairbill.ids import Prefix
from fairbill.lifecycle import BILLED
from fairbill.money import Money
from fairbill.policy.model import Policy
from fairbill.services.context import Ctx
from fairbill.services.merchants import portal_token_live
from fairbill.services.subscriptions import tier_price_minor
from fairbill.store.tables import (
    CustomerRow,
    DecisionRow,
    InvoiceRow,
    PaymentRow,
    PortalTokenRow,
    RequestRow,
    SubscriptionRow,
)

Owned = TypeVar("Owned", SubscriptionRow, InvoiceRow, PaymentRow, RequestRow, DecisionRow)

PREFIXES: dict[type, Prefix] = {
    SubscriptionRow: Prefix.SUBSCRIPTION,
    InvoiceRow: Prefix.INVOICE,
    PaymentRow: Prefix.PAYMENT,
    RequestRow: Prefix.REQUEST,
    DecisionRow: Prefix.DECISION,
}


def token_alive(session: Session, prefix: str, now: datetime) -> PortalTokenRow | None:
    """The portal token a web session was opened with, while it is still valid: a token
    revoked (or deleted), expired, or whose account closed ends the sessions opened with it."""
    row = session.scalar(select(PortalTokenRow).where(PortalTokenRow.prefix == prefix))
    if row is None or not portal_token_live(session, row, now):
        return None
    return row


def owned(ctx: Ctx, model: type[Owned], text: str, customer: CustomerRow) -> Owned:
    """The customer's record ``text`` names (a public id, ``fairbill.ids``); any other id
    is ``NotFound``."""
    prefix = PREFIXES[model]
    row = ctx.named(model, prefix, text)
    if row is None or row.customer_id != customer.id:
        raise NotFound(f"no {prefix} {text!r}")
    return row


def _newest_first(session: Session, customer: CustomerRow, model: Any, order: Any) -> list[Any]:
    return list(
        session.scalars(
            select(model).where(model.customer_id == customer.id).order_by(order.desc())
        )
    )


def subscriptions(session: Session, customer: CustomerRow) -> list[SubscriptionRow]:
    """All the customer's subscriptions, the newest first."""
    return _newest_first(session, customer, SubscriptionRow, SubscriptionRow.id)


def invoices(session: Session, customer: CustomerRow) -> list[InvoiceRow]:
    return _newest_first(session, customer, InvoiceRow, InvoiceRow.number)


def payments(session: Session, customer: CustomerRow) -> list[PaymentRow]:
    return _newest_first(session, customer, PaymentRow, PaymentRow.number)


def requests(session: Session, customer: CustomerRow) -> list[RequestRow]:
    return _newest_first(session, customer, RequestRow, RequestRow.number)


def decisions(session: Session, customer: CustomerRow) -> list[DecisionRow]:
    """Every decision taken for the customer, the newest first."""
    return _newest_first(session, customer, DecisionRow, DecisionRow.id)


def latest_decision(session: Session, customer: CustomerRow) -> DecisionRow | None:
    return session.scalar(
        select(DecisionRow)
        .where(DecisionRow.customer_id == customer.id)
        .order_by(DecisionRow.id.desc())
        .limit(1)
    )


def accepted_policy(ctx: Ctx, customer: CustomerRow) -> Policy:
    """The terms that decide for the customer: the version they accepted."""
    return ctx.terms(customer.id)[1].policy


def cancel_preview(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> CancelOutcome:
    """What cancelling ``sub`` now would do, decided by the pure core under the terms the
    customer accepted (as ``subscriptions.cancel`` decides it), without doing it."""
    _, merchant = ctx.terms(customer.id)
    return decide_cancel(merchant, ctx.facts.subscription(sub), ctx.now)


@dataclass(frozen=True, slots=True)
class NextCharge:
    at: datetime
    amount: Money
    plan: str


def next_charge(ctx: Ctx, sub: SubscriptionRow) -> NextCharge | None:
    """The renewal the subscription is billed for next, at the price of its plan (before
    any wallet balance, credit note or promotion); None when it will not renew."""
    if sub.status not in BILLED or sub.cancel_at is not None:
        return None
    code = sub.pending_plan or sub.plan_code
    at = sub.trial_end if sub.status == "trialing" and sub.trial_end else sub.current_period_end
    price = tier_price_minor(ctx.plan(code), sub.usage_level)
    return NextCharge(ctx.local(at), ctx.money(price), code)
