"""Account-level use cases: payment methods, outstanding invoices, billing mistakes,
chargebacks, outages, violations, terms, closure, activity and data export."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, select

from fairbill.decisions.credits import forfeits_credits
from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.disputes import (
    decide_chargeback,
    decide_closure,
    decide_dispute_closed,
    decide_violation,
    retention_until,
)
from fairbill.decisions.reasons import Reason
from fairbill.errors import AlreadyDisputed, Conflict
from fairbill.lifecycle import (
    CUSTOMER_ENDED,
    LIVE,
    CustomerStatus,
    DisputeStatus,
    InvoiceStatus,
    SubscriptionStatus,
    advance,
)
from fairbill.money import Money
from fairbill.plans.billing import Collected, plan_dispute_closed, plan_notice
from fairbill.plans.effects import Plan, Rows
from fairbill.policy.model import RequestKind
from fairbill.services import applier, billing, credits, merchants, refunds, subscriptions
from fairbill.services.context import Ctx
from fairbill.services.operations import Purpose
from fairbill.store.tables import (
    CustomerRow,
    InvoiceRow,
    OutageRow,
    PaymentMethodRow,
    PaymentRow,
    RequestRow,
    SubscriptionRow,
)


def set_method_behaviour(ctx: Ctx, customer: CustomerRow, code: str, declines: bool) -> None:
    pm = billing.method_row(ctx, customer, code)
    plan = Plan()
    plan.change(Rows.PAYMENT_METHODS, pm.id, declines=declines)
    applier.apply(ctx, plan)
    setter = getattr(ctx.gateway, "set_declines", None)
    if setter is not None:
        setter(pm.token, declines)


def pay_outstanding(ctx: Ctx, customer: CustomerRow, method: str | None = None) -> int:
    """Pay every open invoice, oldest first; reactivate what the payments settle. Returns
    what was settled at once (wallet, credit notes); charges to a card are requested, and
    their outcomes follow (``billing.after_paid`` with ``Purpose.OUTSTANDING``)."""
    ctx.lock_customer(customer)
    paid = 0
    invoices = ctx.session.scalars(
        select(InvoiceRow)
        .where(InvoiceRow.customer_id == customer.id, InvoiceRow.status == InvoiceStatus.OPEN)
        .order_by(InvoiceRow.number)
    ).all()
    for invoice in invoices:
        sub = (
            ctx.session.get(SubscriptionRow, invoice.subscription_id)
            if invoice.subscription_id
            else None
        )
        use = method or (sub.payment_method if sub else None)
        due = billing.amount_due(invoice)
        collected = billing.collect(ctx, customer, invoice, use, Purpose.OUTSTANDING)
        if collected == Collected.PAID:
            paid += due
            billing.after_paid(ctx, customer, invoice, Purpose.OUTSTANDING, ctx.money(due), {})
        elif collected == Collected.UNPAID:
            billing.after_declined(ctx, customer, invoice, Purpose.OUTSTANDING)
    return paid


def retry_due(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> None:
    """The dunning retry of ``sub``, if due. The customer's row is locked first, as every
    use case that charges does: a payment the customer makes meanwhile
    (``pay_outstanding``) queues behind it instead of numbering the same charge."""
    ctx.lock_customer(customer)  # re-reads ``sub`` too: it is checked after the lock
    if sub.next_retry_at is None or sub.next_retry_at > ctx.now:
        return
    plan = Plan()
    plan.change(Rows.SUBSCRIPTIONS, sub.id, next_retry_at=None)
    applier.apply(ctx, plan)
    collect_open(ctx, customer, sub)


def collect_open(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow) -> None:
    """Collect the subscription's open invoices, oldest first, one at a time: each paid one
    reactivates the subscription and goes on to the next (also when the gateway's answer
    comes later: ``billing.after_paid``); the first that fails is a dunning step."""
    invoices = ctx.session.scalars(
        select(InvoiceRow)
        .where(InvoiceRow.subscription_id == sub.id, InvoiceRow.status == InvoiceStatus.OPEN)
        .order_by(InvoiceRow.number)
    ).all()
    for invoice in invoices:
        due = billing.amount_due(invoice)
        collected = billing.collect(ctx, customer, invoice, sub.payment_method, Purpose.RETRY)
        if collected == Collected.PENDING:
            return
        if collected == Collected.UNPAID:
            billing.after_declined(ctx, customer, invoice, Purpose.RETRY)
            return
        billing.reactivate(ctx, customer, sub, ctx.money(due))


def billing_mistake(
    ctx: Ctx,
    customer: CustomerRow,
    kind: str,
    amount: Decimal,
    payment: PaymentRow | None,
    invoice: InvoiceRow | None,
) -> None:
    """The merchant takes money it should not have, for real: a charge at the gateway and a
    new payment with the customer's next number (scenario contract, ``billing_mistake``).

    ``duplicate_charge`` charges ``amount`` again to ``payment``'s method, on its invoice;
    ``overcharge`` and ``wrong_tier`` charge ``amount`` more on the invoice (``invoice``, or
    ``payment``'s), to the method that paid it. Either way the new payment is
    ``is_duplicate``: money taken in excess of what the invoice asked for. That one flag
    carries every invariant the money needs, as it already did for duplicates:

    - it is not part of the invoice's ``amount_paid`` and not revenue: its journal entry
      leaves RECEIVABLE in credit (owed back to the customer) until it is given back, and
      its refund debits RECEIVABLE, not REFUNDS;
    - subscription facts and requests naming the invoice leave it out: a request about the
      excess names the new payment's number;
    - a refund request about it returns it in full, which is exactly the excess, and never
      more: the payment's own unrefunded amount is the ceiling, so it is corrected once.

    The invoice's ``overcharge_minor`` is left alone: it records an excess inside the
    invoice's own payment, with no money of its own, which is not what happened here.
    """
    ctx.lock_customer(customer)
    money = Money(amount, ctx.currency)
    if kind == "duplicate_charge":
        assert payment is not None
        original = ctx.session.get_one(InvoiceRow, payment.invoice_id)
        billing.charge(
            ctx, customer, original, payment.method, money, purpose=Purpose.MISTAKE, duplicate=True
        )
        return
    target = invoice or (ctx.session.get_one(InvoiceRow, payment.invoice_id) if payment else None)
    assert target is not None
    paid_by = payment or _paying_payment(ctx, target)
    billing.charge(
        ctx, customer, target, paid_by.method, money, purpose=Purpose.MISTAKE, duplicate=True
    )


def _paying_payment(ctx: Ctx, invoice: InvoiceRow) -> PaymentRow:
    """The invoice's latest own payment (not an excess charge): its method paid the invoice."""
    paid = ctx.session.scalar(
        select(PaymentRow)
        .where(PaymentRow.invoice_id == invoice.id, PaymentRow.is_duplicate.is_(False))
        .order_by(PaymentRow.number.desc())
        .limit(1)
    )
    if paid is None:
        raise Conflict(
            f"invoice {invoice.number} was paid by no payment method: "
            "an overcharge is charged to the method that paid the invoice"
        )
    return paid


def chargeback(ctx: Ctx, customer: CustomerRow, payment: PaymentRow, contacted_first: bool) -> None:
    """A dispute opened on ``payment``: the dispute and the decision are one plan; the
    suspensions it brings follow."""
    # The payment is read again under the lock: a dispute that committed while this
    # request waited for it is seen here, and refused as the route refuses one it sees.
    ctx.lock_customer(customer)
    if payment.disputed == DisputeStatus.OPEN:
        raise AlreadyDisputed(f"payment {payment.number} already has an open dispute")
    opened = (
        DisputeStatus(payment.disputed).to(DisputeStatus.OPEN)
        if payment.disputed is not None
        else DisputeStatus.OPEN
    )
    plan = Plan()
    plan.change(Rows.PAYMENTS, payment.id, disputed=str(opened))
    left = ctx.money(payment.settled_minor - payment.settled_refunded_minor)
    consequence = ctx.decide(customer.id, decide_chargeback, left, contacted_first)
    plan.record(ctx.decided_of(customer.id, consequence.decision))
    applier.apply(ctx, plan)
    if consequence.suspend:
        _suspend_all(ctx, customer)


def _suspend_all(ctx: Ctx, customer: CustomerRow) -> None:
    """Each live subscription suspended (not for non-payment), one plan each: the first
    suspends the account and tells the customer, the next ones read that it is."""
    for sub in subscriptions.live_subscriptions(ctx, customer):
        billing.suspend(ctx, customer, sub, non_payment=False)


def dispute_closed(ctx: Ctx, customer: CustomerRow, payment: PaymentRow, outcome: str) -> None:
    ctx.lock_customer(customer)
    if payment.disputed != DisputeStatus.OPEN:
        raise Conflict(f"payment {payment.number} has no open dispute")
    left = ctx.money(payment.settled_minor - payment.settled_refunded_minor)
    decision = ctx.decide(customer.id, decide_dispute_closed, left, outcome)
    plan = Plan()
    plan.record(ctx.decided_of(customer.id, decision))
    plan_dispute_closed(
        plan, billing.setting(ctx), customer.id, billing.paid(payment), outcome, left
    )
    applier.apply(ctx, plan)


def outage(
    ctx: Ctx,
    customer: CustomerRow,
    start: datetime,
    end: datetime,
    cause: str,
    reported_at: datetime | None,
) -> RequestRow:
    """An outage the customer suffered, and the ``service_disruption`` request it files
    (which names it: what each customer got for one incident can be shown)."""
    plan = Plan()
    ref = plan.insert(
        Rows.OUTAGES,
        {
            "customer_id": customer.id,
            "start": start,
            "end": end,
            "cause": cause,
            "reported_at": reported_at,
        },
        ref=True,
    )
    assert ref is not None
    row = ctx.session.get_one(OutageRow, applier.apply(ctx, plan)[ref])
    return refunds.request_refund(
        ctx, customer, RequestKind.SERVICE_DISRUPTION, outage=row, reason=f"{cause} outage"
    )


def declare_outage(
    ctx: Ctx,
    start: datetime,
    end: datetime,
    cause: str,
    reported_at: datetime | None,
    customers: list[CustomerRow] | None = None,
) -> list[tuple[CustomerRow, RequestRow]]:
    """An incident that has ended, for ``customers`` or else merchant-wide: every customer
    with a live subscription, in customer order. Each gets its own outage and
    ``service_disruption`` request, decided by the policy like any other."""
    if customers is None:
        live = exists().where(
            SubscriptionRow.customer_id == CustomerRow.id, SubscriptionRow.status.in_(LIVE)
        )
        customers = list(
            ctx.session.scalars(
                select(CustomerRow)
                .where(CustomerRow.merchant_id == ctx.merchant_row.id, live)
                .order_by(CustomerRow.id)
            )
        )
    return [(c, outage(ctx, c, start, end, cause, reported_at)) for c in customers]


def violation(ctx: Ctx, customer: CustomerRow, kind: str) -> None:
    """A breach of the terms, with the consequence the policy gives it: the decision, the
    customer's flag and forfeited credits are one plan; a suspension or a termination
    follows (each subscription's own plan), and a termination starts the retention clock."""
    ctx.lock_customer(customer)
    consequence = ctx.decide(customer.id, decide_violation, kind)
    plan = Plan()
    plan.record(ctx.decided_of(customer.id, consequence.decision))
    plan.change(Rows.CUSTOMERS, customer.id, in_violation=True)
    if consequence.forfeit_credits:
        clause = (
            forfeits_credits(ctx.merchant, "termination")
            or (consequence.decision.clauses or (None,))[0]
        )
        credits.forfeit_all(ctx, customer, clause, "terms violated", plan)
    if not consequence.terminate:
        applier.apply(ctx, plan)
        if consequence.suspend:
            _suspend_all(ctx, customer)
        return
    if customer.status != CustomerStatus.TERMINATED:  # found again: already ended
        status = advance(customer.status, CustomerStatus.TERMINATED)
        plan.change(Rows.CUSTOMERS, customer.id, status=str(status))
    applier.apply(ctx, plan)
    merchants.revoke_portal_tokens(ctx.session, customer, ctx.now)
    for sub in subscriptions.live_subscriptions(ctx, customer):
        subscriptions.end_subscription(ctx, customer, sub, SubscriptionStatus.TERMINATED)
    until, _ = retention_until(ctx.merchant, "termination", ctx.now)
    _set_customer(ctx, customer, data_retained_until=until)


def _set_customer(ctx: Ctx, customer: CustomerRow, **values: Any) -> None:
    plan = Plan()
    plan.change(Rows.CUSTOMERS, customer.id, **values)
    applier.apply(ctx, plan)


def terms_change(ctx: Ctx, customer: CustomerRow, material: bool) -> None:
    plan = Plan()
    plan.change(Rows.CUSTOMERS, customer.id, terms_notice_at=ctx.now)
    if material:
        plan_notice(plan, customer.id, ctx.now, "terms_changed", ctx.language(customer))
    applier.apply(ctx, plan)


def decline_terms(ctx: Ctx, customer: CustomerRow) -> None:
    _set_customer(ctx, customer, terms_declined_at=ctx.now)
    for sub in subscriptions.live_subscriptions(ctx, customer):
        subscriptions.cancel(ctx, customer, sub, reason="declined the new terms")


def close_account(ctx: Ctx, customer: CustomerRow) -> None:
    """Close the account: its subscriptions end (at the period end where the policy says
    so) and its data is kept only for the retention period.

    Closing settles the account's scheduled changes: a plan change waiting for the period
    end (``pending_plan``, or ``successor_plan`` for a cancel-and-resubscribe downgrade)
    is dropped. A closed account takes no new purchases (``subscriptions.ensure_open``),
    so left in place the change would start a subscription the account must refuse, at
    the period end, on every run of the scheduler after it.

    The decision, the account's status, forfeited credits and the dropped changes are one
    plan; each subscription's end or cancellation follows (its own use case), then the
    retention date, which depends on when the last one ends.
    """
    ctx.lock_customer(customer)
    consequence = ctx.decide(customer.id, decide_closure)
    plan = Plan()
    plan.record(ctx.decided_of(customer.id, consequence.decision))
    if customer.status not in CUSTOMER_ENDED:  # closing twice, or after termination
        status = advance(customer.status, CustomerStatus.CLOSED)
        plan.change(Rows.CUSTOMERS, customer.id, status=str(status))
    if consequence.forfeit_credits:
        clause = forfeits_credits(ctx.merchant, "closure")
        credits.forfeit_all(ctx, customer, clause, "account closed", plan)
    live = subscriptions.live_subscriptions(ctx, customer)
    for sub in live:
        plan.change(Rows.SUBSCRIPTIONS, sub.id, pending_plan=None, successor_plan=None)
    applier.apply(ctx, plan)
    # A closed account takes no more self-service: its portal tokens end with it.
    merchants.revoke_portal_tokens(ctx.session, customer, ctx.now)
    for sub in live:
        if sub.status == SubscriptionStatus.TRIALING:
            subscriptions.end_subscription(ctx, customer, sub, SubscriptionStatus.CANCELED)
        elif sub.cancel_at is None:
            subscriptions.cancel(ctx, customer, sub)
    ends = max((s.cancel_at or ctx.now for s in live), default=ctx.now)
    until, _ = retention_until(ctx.merchant, "closure", ends)
    _set_customer(ctx, customer, data_retained_until=until)


def activity(ctx: Ctx, customer: CustomerRow) -> None:
    _set_customer(ctx, customer, last_activity_at=ctx.now)


def delete_data_if_due(ctx: Ctx, customer: CustomerRow) -> None:
    """Past the retention date: the account's data is erased (its address first), the
    decision says so and the last message goes out (one plan)."""
    due = customer.data_retained_until
    if due is None or customer.data_deleted_at is not None or due > ctx.now:
        return
    plan = Plan()
    plan.change(Rows.CUSTOMERS, customer.id, data_deleted_at=ctx.now, email=None)
    decision = Decision(
        action="data_deletion",
        outcome=DecisionOutcome.APPROVED,
        amount=ctx.money(0),
        reasons=(Reason.DATA_DELETED,),
        explanation="The retention period ended: the account data is deleted.",
    )
    plan.record(ctx.decided_of(customer.id, decision))
    # The notice is the last message: it carries the address, which is erased here.
    address = {"email": customer.email} if customer.email else {}
    language = ctx.language(customer)
    plan_notice(plan, customer.id, ctx.now, "data_deletion_notice", language, **address)
    applier.apply(ctx, plan)


def export_data(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
    plan = Plan()
    decision = Decision(
        action="export_data",
        outcome=DecisionOutcome.APPROVED,
        amount=ctx.money(0),
        explanation="The customer exported their data.",
    )
    plan.record(ctx.decided_of(customer.id, decision))
    applier.apply(ctx, plan)
    methods = ctx.session.scalars(
        select(PaymentMethodRow).where(PaymentMethodRow.customer_id == customer.id)
    ).all()
    return {"customer": customer.code, "payment_methods": [m.code for m in methods]}
