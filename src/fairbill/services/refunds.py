"""Refund requests, reviews and appeals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import func, select

from fairbill.calendar.windows import business_deadline
from fairbill.decisions.decision import Decision, DecisionOutcome, Recommendation
from fairbill.decisions.facts import UNUSED_TIME_KINDS, OutageFacts, RequestFacts
from fairbill.decisions.refund import decide_refund
from fairbill.decisions.review import decide_appeal, decide_review
from fairbill.errors import NotFound
from fairbill.lifecycle import LIVE, RequestStatus, SubscriptionStatus, advance
from fairbill.money import Money
from fairbill.plans.billing import plan_notice, plan_refund
from fairbill.plans.effects import Plan, Rows
from fairbill.policy.model import Deadlines, Destination, RequestKind
from fairbill.services import applier, billing
from fairbill.services.context import Ctx
from fairbill.services.subscriptions import end_subscription
from fairbill.store.db import SERIALIZED
from fairbill.store.tables import (
    CustomerRow,
    InvoiceRow,
    OutageRow,
    PaymentRow,
    RequestRow,
    SubscriptionRow,
)

# Refunds of unused time end the service when they are decided (scenario contract).
ENDS_SERVICE = UNUSED_TIME_KINDS


def payment_by_number(ctx: Ctx, customer: CustomerRow, number: int | str) -> PaymentRow:
    return _by_number(ctx, customer, PaymentRow, "payment", number)


def invoice_by_number(ctx: Ctx, customer: CustomerRow, number: int | str) -> InvoiceRow:
    return _by_number(ctx, customer, InvoiceRow, "invoice", number)


def request_by_number(ctx: Ctx, customer: CustomerRow, number: int | str) -> RequestRow:
    return _by_number(ctx, customer, RequestRow, "request", number)


Numbered = TypeVar("Numbered", PaymentRow, InvoiceRow, RequestRow)


def _by_number(
    ctx: Ctx, customer: CustomerRow, model: type[Numbered], noun: str, number: int | str
) -> Numbered:
    """The customer's ``number``-th row (numbers start at 1 per customer), or its last.
    The error says how many there are, so "payment 5 of 2" reads as the input mistake."""
    query = select(model).where(model.customer_id == customer.id)
    if number == "last":
        row = ctx.session.scalar(query.order_by(model.number.desc()).limit(1))
    else:
        row = ctx.session.scalar(query.where(model.number == number))
    if row is None:
        count = ctx.session.scalar(
            select(func.count()).select_from(model).where(model.customer_id == customer.id)
        )
        raise NotFound(f"no {noun} {number}: the customer has {count} {noun}(s)")
    return row


def _invoice_payment(ctx: Ctx, invoice: InvoiceRow) -> PaymentRow | None:
    return ctx.session.scalar(
        select(PaymentRow)
        .where(PaymentRow.invoice_id == invoice.id, PaymentRow.is_duplicate.is_(False))
        .order_by(PaymentRow.number.desc())
        .limit(1)
    )


def _covering_payment(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow | None, at: Any
) -> PaymentRow | None:
    """The subscription payment whose period contains ``at``."""
    if sub is None:
        return None
    invoice = ctx.session.scalar(
        select(InvoiceRow)
        .where(
            InvoiceRow.subscription_id == sub.id,
            InvoiceRow.purpose == "subscription",
            InvoiceRow.period_start <= at,
            InvoiceRow.period_end > at,
        )
        .order_by(InvoiceRow.number.desc())
        .limit(1)
    )
    return _invoice_payment(ctx, invoice) if invoice is not None else None


def request_refund(
    ctx: Ctx,
    customer: CustomerRow,
    kind: RequestKind,
    *,
    payment: PaymentRow | None = None,
    invoice: InvoiceRow | None = None,
    reason: str | None = None,
    refund_to: str | None = None,
    documents: tuple[str, ...] = (),
    order_numbers: tuple[str, ...] = (),
    outage: OutageRow | None = None,
) -> RequestRow:
    ctx.lock_customer(customer)
    if payment is None and invoice is not None:
        payment = _invoice_payment(ctx, invoice)
    if payment is not None:
        lock_payment(ctx, payment)
    if payment is None and order_numbers and order_numbers[0].isdigit():
        # An order number stands for the payment it paid (the first is the one to refund).
        payment = ctx.session.scalar(
            select(PaymentRow).where(
                PaymentRow.customer_id == customer.id, PaymentRow.number == int(order_numbers[0])
            )
        )
    named_outage = outage.id if outage is not None else None
    sub = _subscription_of(ctx, customer, payment)
    if payment is None and kind in (
        RequestKind.SERVICE_DISRUPTION,
        RequestKind.NON_DELIVERY,
        RequestKind.UNUSED_PERIOD,
        RequestKind.TERMS_DECLINED,
    ):
        at = outage.start if outage is not None else ctx.now
        payment = _covering_payment(ctx, customer, sub, at)
    if outage is None and kind == RequestKind.NON_DELIVERY:
        outage = ctx.session.scalar(
            select(OutageRow)
            .where(OutageRow.customer_id == customer.id)
            .order_by(OutageRow.id.desc())
            .limit(1)
        )
    pfacts = ctx.facts.payment(payment) if payment is not None else None
    used = (
        customer.last_activity_at is not None
        and pfacts is not None
        and customer.last_activity_at >= pfacts.at
    )
    facts = RequestFacts(
        kind=kind,
        at=ctx.now,
        reason=reason,
        payment=pfacts,
        refund_to=refund_to,
        documents=documents,
        order_numbers=order_numbers,
        used_since_payment=used,
        subscription=ctx.facts.subscription(sub) if sub is not None else None,
        covering=_covering(ctx, sub, outage) if outage is not None else (),
        outage=OutageFacts(
            ctx.local(outage.start),
            ctx.local(outage.end),
            outage.cause,
            ctx.local(outage.reported_at) if outage.reported_at else None,
        )
        if outage is not None
        else None,
    )
    decision = ctx.decide(customer.id, decide_refund, facts, ctx.facts.customer(customer), ctx.now)
    details: dict[str, Any] = {"reason": reason or ""}
    if named_outage is not None:
        # The request names its outage: what each customer got for one incident can be shown.
        details["outage"] = named_outage
    row = _store_request(ctx, customer, kind, decision, payment, details)
    if decision.outcome != DecisionOutcome.NEEDS_REVIEW:
        _settle(ctx, customer, row, decision, payment, sub)
    return row


def _covering(ctx: Ctx, sub: SubscriptionRow | None, outage: OutageRow) -> tuple[Any, ...]:
    """Facts of every subscription payment whose period the outage touches."""
    if sub is None:
        return ()
    invoices = ctx.session.scalars(
        select(InvoiceRow)
        .where(
            InvoiceRow.subscription_id == sub.id,
            InvoiceRow.purpose == "subscription",
            InvoiceRow.period_start < outage.end,
            InvoiceRow.period_end > outage.start,
        )
        .order_by(InvoiceRow.number)
    )
    payments = [_invoice_payment(ctx, invoice) for invoice in invoices]
    return tuple(ctx.facts.payment(p) for p in payments if p is not None)


def lock_payment(ctx: Ctx, payment: PaymentRow) -> None:
    """Re-read the payment under a row lock: concurrent refunds of one payment queue here,
    and each sees what the others refunded (PostgreSQL; SQLite serialises writers: in a
    transaction ``store.db.SERIALIZED`` the payment read is already current)."""
    if not ctx.session.info.get(SERIALIZED):
        ctx.session.refresh(payment, with_for_update=True)


def _subscription_of(
    ctx: Ctx, customer: CustomerRow, payment: PaymentRow | None
) -> SubscriptionRow | None:
    if payment is not None:
        invoice = ctx.session.get_one(InvoiceRow, payment.invoice_id)
        if invoice.subscription_id is not None:
            return ctx.session.get(SubscriptionRow, invoice.subscription_id)
    return ctx.session.scalar(
        select(SubscriptionRow)
        .where(SubscriptionRow.customer_id == customer.id)
        .order_by(SubscriptionRow.id.desc())
        .limit(1)
    )


def _store_request(
    ctx: Ctx,
    customer: CustomerRow,
    kind: RequestKind,
    decision: Decision,
    payment: PaymentRow | None,
    details: dict[str, Any],
) -> RequestRow:
    """The request's row, numbered per customer, with its review deadline, the decision
    on it and the customer's receipt: one plan, written now."""
    number = (
        ctx.session.scalar(
            select(func.max(RequestRow.number)).where(RequestRow.customer_id == customer.id)
        )
        or 0
    ) + 1
    deadlines = ctx.policy.first(Deadlines)
    review_due = None
    if (
        decision.outcome == DecisionOutcome.NEEDS_REVIEW
        and deadlines
        and deadlines.review_business_days
    ):
        review_due = business_deadline(
            ctx.now, deadlines.review_business_days, ctx.merchant.tz, ctx.merchant.country
        )
    rec = decision.recommendation
    in_review = decision.outcome == DecisionOutcome.NEEDS_REVIEW
    plan = Plan()
    ref = plan.insert(
        Rows.REQUESTS,
        {
            "customer_id": customer.id,
            "number": number,
            "at": ctx.now,
            "kind": str(kind),
            "status": str(RequestStatus.IN_REVIEW if in_review else RequestStatus.DECIDED),
            "decision": str(decision.outcome),
            "recommendation": _rec_json(rec) if rec is not None else None,
            "amount_minor": 0 if in_review else decision.amount.minor,
            "destination": str(decision.destination)
            if decision.destination and decision.amount and not in_review
            else None,
            "reasons": [str(r) for r in decision.reasons],
            "clauses": list(decision.clauses),
            "explanation": decision.explanation,
            "review_due": review_due,
            "paid_due": None,
            "payment_id": payment.id if payment is not None else None,
            "details": details,
        },
        ref=True,
    )
    assert ref is not None
    plan.record(ctx.decided_of(customer.id, decision))
    language = ctx.language(customer)
    plan_notice(plan, customer.id, ctx.now, "request_received", language, request=str(number))
    applied = applier.apply(ctx, plan)
    return ctx.session.get_one(RequestRow, applied[ref])


def _rec_json(rec: Recommendation) -> dict[str, Any]:
    return {
        "decision": str(rec.outcome),
        "amount": rec.amount.text(),
        "destination": str(rec.destination) if rec.destination else None,
    }


def _settle(
    ctx: Ctx,
    customer: CustomerRow,
    row: RequestRow,
    decision: Decision,
    payment: PaymentRow | None,
    sub: SubscriptionRow | None,
    plan: Plan | None = None,
) -> None:
    """Pay what was granted, set deadlines, and end service for refunds of unused time:
    one plan (``plan``, which may hold the decision; the request's new state, each refund
    with ``plans.billing.plan_refund``, the message), then the end of service
    (``end_subscription``'s plan)."""
    plan = plan if plan is not None else Plan()
    s = billing.setting(ctx)
    granted = str(decision.destination) if decision.destination and decision.amount else None
    state: dict[str, Any] = {"amount_minor": decision.amount.minor, "destination": granted}
    language = ctx.language(customer)
    plan_notice(
        plan,
        customer.id,
        ctx.now,
        "refund_decided",
        language,
        request=str(row.number),
        outcome=str(decision.outcome),
    )
    if not decision.pays_now:
        # Filed decided, or a reviewer's answer ending the review (in_review → decided).
        if row.status != RequestStatus.DECIDED:
            state["status"] = str(advance(row.status, RequestStatus.DECIDED))
        plan.change(Rows.REQUESTS, row.id, **state)
        applier.apply(ctx, plan)
        return
    deadlines = ctx.policy.first(Deadlines)
    if deadlines and deadlines.processing_business_days:
        state["paid_due"] = business_deadline(
            ctx.now, deadlines.processing_business_days, ctx.merchant.tz, ctx.merchant.country
        )
    destination = decision.destination or Destination.ORIGINAL_METHOD
    compensation = row.kind == RequestKind.SERVICE_DISRUPTION
    # Against the named payment, or each payment of the decision's split (Kalenner's
    # guarantee refunds everything paid for the subscription, whichever payment is named).
    parts = [(payment, decision.amount)]
    if decision.refunds:
        parts = [(payment_by_number(ctx, customer, r.payment), r.amount) for r in decision.refunds]
    for index, (paid, amount) in enumerate(parts):
        if paid is not None and paid is not payment:
            lock_payment(ctx, paid)
        facts = billing.refunding(
            ctx,
            customer,
            paid,
            amount,
            destination,
            decision.clauses,
            request_id=row.id,
            fee=decision.fee if index == 0 else None,  # one fee per decision
            compensation=compensation,
        )
        plan_refund(plan, s, facts)
    state["status"] = str(advance(row.status, RequestStatus.PAID))
    plan.change(Rows.REQUESTS, row.id, **state)
    applier.apply(ctx, plan)
    if RequestKind(row.kind) in ENDS_SERVICE and sub is not None and sub.status in LIVE:
        end_subscription(ctx, customer, sub, SubscriptionStatus.CANCELED)


def review(
    ctx: Ctx,
    customer: CustomerRow,
    row: RequestRow,
    verdict: str,
    *,
    amount: Decimal | None = None,
    destination: str | None = None,
    fee_percent: Decimal | None = None,
) -> Decision:
    ctx.lock_customer(customer)
    payment = ctx.session.get(PaymentRow, row.payment_id) if row.payment_id else None
    if payment is not None:
        lock_payment(ctx, payment)
    pending = _pending_decision(ctx, row)
    if row.status != RequestStatus.IN_REVIEW:
        decision = Decision(
            action="review",
            outcome=DecisionOutcome.DECLINED,
            amount=ctx.money(0),
            clauses=tuple(row.clauses),
            explanation=f"Request {row.number} is not awaiting review "
            f"({row.status}); nothing changed.",
        )
        plan = Plan()
        plan.record(ctx.decided_of(customer.id, decision))
        applier.apply(ctx, plan)
        return decision
    refundable = (
        ctx.money(payment.settled_minor - payment.settled_refunded_minor)
        if payment
        else ctx.money(0)
    )
    full = ctx.money(payment.settled_minor) if payment else ctx.money(0)
    decision = ctx.decide(
        customer.id,
        decide_review,
        pending,
        verdict=verdict,
        refundable=refundable,
        full=full,
        amount=Money(amount, ctx.currency) if amount is not None else None,
        destination=Destination(destination) if destination else None,
        fee_percent=fee_percent,
        customer=ctx.facts.customer(customer),
    )
    plan = Plan()
    plan.record(ctx.decided_of(customer.id, decision))
    sub = _subscription_of(ctx, customer, payment)
    _settle(ctx, customer, row, decision, payment, sub, plan)
    return decision


def _pending_decision(ctx: Ctx, row: RequestRow) -> Decision:
    rec = None
    if row.recommendation:
        rec = Recommendation(
            DecisionOutcome(row.recommendation["decision"]),
            Money(row.recommendation["amount"], ctx.currency),
            Destination(row.recommendation["destination"])
            if row.recommendation.get("destination")
            else None,
        )
    return Decision(
        action="refund_request",
        outcome=DecisionOutcome(row.decision),
        amount=ctx.money(row.amount_minor),
        destination=Destination(row.destination) if row.destination else None,
        clauses=tuple(row.clauses),
        explanation=row.explanation,
        recommendation=rec,
    )


def appeal(ctx: Ctx, customer: CustomerRow, row: RequestRow) -> Decision:
    ctx.lock_customer(customer)
    decision = ctx.decide(customer.id, decide_appeal, _pending_decision(ctx, row))
    plan = Plan()
    plan.record(ctx.decided_of(customer.id, decision))
    if decision.outcome == DecisionOutcome.NEEDS_REVIEW and row.status != RequestStatus.PAID:
        state: dict[str, Any] = {"status": str(advance(row.status, RequestStatus.IN_REVIEW))}
        if row.recommendation is None:
            state["recommendation"] = {
                "decision": str(DecisionOutcome.DECLINED),
                "amount": ctx.money(0).text(),
                "destination": None,
            }
        plan.change(Rows.REQUESTS, row.id, **state)
    applier.apply(ctx, plan)
    return decision
