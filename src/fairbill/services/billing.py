"""Invoices, collection, failed payments, refunds and the wallet: the shell around
``plans.billing``. Each use case here reads its facts, has the plan made, and has
``services.applier`` write it; what follows a payment or a decline by its purpose is
decided here, after.

Collection order for an invoice: unapplied credit notes, then the wallet, then the
payment method. Every money movement posts one balanced journal transaction.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from fairbill.decisions.disputes import retention_until
from fairbill.decisions.dunning import decide_failure, decide_reactivation
from fairbill.errors import Conflict, NotFound
from fairbill.ledger.accounts import Account
from fairbill.lifecycle import (
    ENDED,
    CustomerStatus,
    InvoiceStatus,
    RefundStatus,
    SubscriptionStatus,
    advance,
)
from fairbill.money import Money
from fairbill.plans.billing import (
    Card,
    Collected,
    Collection,
    Dunned,
    Line,
    Note,
    OpenInvoice,
    Paid,
    Reactivation,
    Refunding,
    RefundPaid,
    Setting,
    Taken,
    plan_charge,
    plan_collection,
    plan_decline,
    plan_dunning,
    plan_invoice,
    plan_notice,
    plan_payment,
    plan_reactivation,
    plan_refund,
    plan_refund_paid,
    plan_suspension,
)
from fairbill.plans.effects import Plan, Ref, Rows
from fairbill.policy.model import Destination
from fairbill.services import applier, fx, operations
from fairbill.services.context import Ctx
from fairbill.services.operations import Purpose
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    FailedPaymentRow,
    GatewayOperationRow,
    InvoiceRow,
    PaymentMethodRow,
    PaymentRow,
    RefundRow,
    SubscriptionRow,
)

log = logging.getLogger("fairbill.billing")


def setting(ctx: Ctx) -> Setting:
    """The merchant as the planners see it, at ``ctx``'s instant."""
    return Setting(ctx.merchant_row.id, ctx.currency, ctx.now, ctx.merchant.rounding)


def open_invoice(invoice: InvoiceRow) -> OpenInvoice:
    return OpenInvoice(
        invoice.id,
        invoice.customer_id,
        invoice.subscription_id,
        invoice.number,
        invoice.total_minor,
        invoice.credit_applied_minor,
        invoice.wallet_applied_minor,
        invoice.amount_paid_minor,
        InvoiceStatus(invoice.status),
    )


def issue_invoice(
    ctx: Ctx,
    customer: CustomerRow,
    lines: list[Line],
    *,
    purpose: str,
    subscription: SubscriptionRow | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> InvoiceRow:
    """The customer's next invoice, written now (``plans.billing.plan_invoice``)."""
    plan = Plan()
    planned = plan_invoice(
        plan,
        setting(ctx),
        customer.id,
        ctx.next_number(InvoiceRow, customer),
        lines,
        purpose=purpose,
        subscription_id=subscription.id if subscription else None,
        period=period,
    )
    assert isinstance(planned.id, Ref)
    applied = applier.apply(ctx, plan)
    return ctx.session.get_one(InvoiceRow, applied[planned.id])


def amount_due(invoice: InvoiceRow) -> int:
    return (
        invoice.total_minor
        - invoice.credit_applied_minor
        - invoice.wallet_applied_minor
        - invoice.amount_paid_minor
    )


def collect(
    ctx: Ctx,
    customer: CustomerRow,
    invoice: InvoiceRow,
    method: str | None,
    purpose: Purpose,
    details: dict[str, Any] | None = None,
) -> Collected:
    """Settle what is due: credit notes, wallet, then a charge to the method
    (``plans.billing.plan_collection``, written now). The charge is requested, not made:
    its outcome comes through ``charge_succeeded`` or ``charge_declined``, with
    ``purpose`` saying what follows."""
    plan = Plan()
    collected = plan_collection(
        plan,
        setting(ctx),
        open_invoice(invoice),
        collection(ctx, customer, invoice.id, method, details),
        str(purpose),
    )
    applier.apply(ctx, plan)
    return collected


def collection(
    ctx: Ctx,
    customer: CustomerRow,
    invoice_id: int | None,
    method: str | None,
    details: dict[str, Any] | None = None,
) -> Collection:
    """What a collection of the invoice ``invoice_id`` (``None``: one not stored yet)
    draws on, read now."""
    in_flight = invoice_id is not None and operations.in_flight(ctx.session, invoice_id)
    return Collection(
        method=method,
        card=card(ctx, customer, method) if method is not None else None,
        attempt=1 + operations.charges_of(ctx.session, invoice_id) if invoice_id else 1,
        wallet=customer.wallet_minor,
        notes=_unapplied_notes(ctx, customer) if not in_flight else (),
        in_flight=in_flight,
        details=details or {},
    )


def _unapplied_notes(ctx: Ctx, customer: CustomerRow) -> tuple[Note, ...]:
    rows = ctx.session.scalars(
        select(CreditNoteRow)
        .where(
            CreditNoteRow.customer_id == customer.id,
            CreditNoteRow.applied_to_invoice_id.is_(None),
        )
        .order_by(CreditNoteRow.at, CreditNoteRow.id)
    ).all()
    return tuple(
        Note(n.id, n.amount_minor, n.at, n.reason, n.invoice_id, tuple(n.clauses)) for n in rows
    )


def card(ctx: Ctx, customer: CustomerRow, code: str) -> Card | None:
    """The customer's payment method ``code`` with today's rate from the merchant's
    currency (``None``: no such method)."""
    pm = _method(ctx, customer, code)
    if pm is None:
        return None
    rate, no_rate = _rate_to(ctx, pm.currency)
    return Card(pm.code, pm.token, pm.currency, rate, no_rate)


def _rate_to(ctx: Ctx, currency: str) -> tuple[Decimal | None, str]:
    """Today's rate from the merchant's currency to ``currency``, or ``None`` and why the
    rate table has none (the planner refuses only if it needs it)."""
    if currency == ctx.currency:
        return Decimal(1), ""
    try:
        return fx.rate(ctx, ctx.currency, currency, ctx.now), ""
    except Conflict as exc:
        return None, str(exc)


def _method(ctx: Ctx, customer: CustomerRow, code: str) -> PaymentMethodRow | None:
    return ctx.session.scalar(
        select(PaymentMethodRow).where(
            PaymentMethodRow.customer_id == customer.id, PaymentMethodRow.code == code
        )
    )


def method_row(ctx: Ctx, customer: CustomerRow, code: str) -> PaymentMethodRow:
    row = _method(ctx, customer, code)
    if row is None:
        raise NotFound(f"no payment method {code!r}")
    return row


def charge(
    ctx: Ctx,
    customer: CustomerRow,
    invoice: InvoiceRow,
    method: str,
    amount: Money,
    *,
    purpose: Purpose,
    duplicate: bool = False,
) -> None:
    """Request a charge of ``amount`` on ``invoice`` (converted to the card's currency at
    today's rate). A duplicate (a billing mistake) is a charge of its own, never counted
    as paying the invoice."""
    found = card(ctx, customer, method)
    if found is None:
        raise NotFound(f"no payment method {method!r}")
    plan = Plan()
    attempt = 1 + operations.charges_of(ctx.session, invoice.id)
    details = {"duplicate": True} if duplicate else {}
    s = setting(ctx)
    plan_charge(plan, s, open_invoice(invoice), found, amount, attempt, str(purpose), details)
    applier.apply(ctx, plan)


def charge_succeeded(ctx: Ctx, op: GatewayOperationRow) -> PaymentRow:
    """The gateway took the money of ``op``: the payment, the invoice paid, the journal,
    the receipt (``plans.billing.plan_payment``); then what its purpose leads to. ``ctx``
    is at the operation's instant."""
    customer = ctx.session.get_one(CustomerRow, op.customer_id)
    invoice = ctx.session.get_one(InvoiceRow, op.invoice_id)
    plan = Plan()
    payment = plan_payment(
        plan,
        Taken(
            op_id=op.id,
            at=ctx.now,
            invoice=open_invoice(invoice),
            payment_number=ctx.next_number(PaymentRow, customer),
            charged=Money.from_minor(op.amount_minor, op.currency),
            settled=ctx.money(op.settled_minor),
            method=op.method or "",
            reference=op.reference or "",
            duplicate=bool(op.details.get("duplicate")),
            language=ctx.language(customer),
        ),
    )
    applied = applier.apply(ctx, plan)
    _follow(ctx, customer, invoice, op, ctx.money(op.settled_minor))
    return ctx.session.get_one(PaymentRow, applied[payment])


def _follow(
    ctx: Ctx, customer: CustomerRow, invoice: InvoiceRow, op: GatewayOperationRow, paid: Money
) -> None:
    """``after_paid`` in a savepoint: the money moved, so the payment is recorded whatever
    follows; a follow-up that fails is rolled back alone, logged, and the merchant's
    finance address is told (someone must reactivate or grant by hand)."""
    try:
        with ctx.session.begin_nested():
            after_paid(ctx, customer, invoice, Purpose(op.purpose), paid, op.details)
    except Exception as exc:  # the payment stands; only what follows it is lost
        log.exception("what follows payment of %s failed", op.key)
        from fairbill.services.alerts import notify_finance

        notify_finance(
            ctx.session,
            ctx.merchant_row,
            "job_failed",
            at=ctx.now,
            job=f"after payment ({op.purpose})",
            target=f"invoice:{invoice.id}",
            failed_at=ctx.now.isoformat(),
            error=f"{type(exc).__name__}: {exc}"[:500],
        )


def charge_declined(ctx: Ctx, op: GatewayOperationRow) -> None:
    """The gateway declined ``op``: the failed attempt, the customer told
    (``plans.billing.plan_decline``), and the dunning step its purpose leads to. ``ctx``
    is at the operation's instant."""
    customer = ctx.session.get_one(CustomerRow, op.customer_id)
    invoice = ctx.session.get_one(InvoiceRow, op.invoice_id)
    attempts = ctx.session.scalar(
        select(func.count())
        .select_from(FailedPaymentRow)
        .where(FailedPaymentRow.invoice_id == invoice.id)
    )
    plan = Plan()
    plan_decline(
        plan,
        customer_id=customer.id,
        invoice_id=invoice.id,
        invoice_number=invoice.number,
        at=ctx.now,
        amount=ctx.money(op.settled_minor),
        method=op.method or "",
        attempt=(attempts or 0) + 1,
        language=ctx.language(customer),
    )
    applier.apply(ctx, plan)
    after_declined(ctx, customer, invoice, Purpose(op.purpose))


def after_paid(
    ctx: Ctx,
    customer: CustomerRow,
    invoice: InvoiceRow,
    purpose: Purpose,
    paid: Money,
    details: dict[str, Any],
) -> None:
    """What follows an invoice's payment, by why it was charged: the same steps whether
    the wallet paid it at once or the gateway answered later."""
    from fairbill.services import accounts, credits, subscriptions

    sub = _subscription(ctx, invoice)
    if purpose == Purpose.FIRST:
        plan = Plan()
        welcome = sub.plan_code if sub else ""
        plan_notice(plan, customer.id, ctx.now, "welcome", ctx.language(customer), plan=welcome)
        applier.apply(ctx, plan)
    elif purpose == Purpose.RETRY and sub is not None:
        reactivate(ctx, customer, sub, paid)
        accounts.collect_open(ctx, customer, sub)
    elif purpose == Purpose.OUTSTANDING and sub is not None:
        if sub.status in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.SUSPENDED):
            if sub.status == SubscriptionStatus.SUSPENDED:
                subscriptions.skip_suspended_periods(ctx, sub)
            reactivate(ctx, customer, sub, paid)
            subscriptions.advance(ctx, customer, sub)
    elif purpose == Purpose.PURCHASE and details.get("pack"):
        credits.grant_pack(ctx, customer, details["pack"])


def after_declined(ctx: Ctx, customer: CustomerRow, invoice: InvoiceRow, purpose: Purpose) -> None:
    """The dunning step after a failed collection of a subscription's invoice (whether the
    gateway declined it or there was no method to charge)."""
    sub = _subscription(ctx, invoice)
    if sub is not None and purpose not in (Purpose.PURCHASE, Purpose.MISTAKE):
        handle_failure(ctx, customer, sub, invoice)


def _subscription(ctx: Ctx, invoice: InvoiceRow) -> SubscriptionRow | None:
    if invoice.subscription_id is None:
        return None
    return ctx.session.get_one(SubscriptionRow, invoice.subscription_id)


# -- failed payments and dunning ------------------------------------------------------------
def handle_failure(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, invoice: InvoiceRow
) -> None:
    """The dunning step after a failed collection (``plans.billing.plan_dunning``, the
    daily cycle's too). A subscription that has ended is not dunned (its open invoice
    stays open, to be paid or written off)."""
    if sub.status in ENDED:
        return
    first = sub.first_failed_at or ctx.now
    attempt = sub.failed_attempts + 1
    outcome = ctx.decide(
        customer.id, decide_failure, attempt, ctx.local(first), ctx.money(amount_due(invoice))
    )
    plan = Plan()
    plan.record(ctx.decided_of(customer.id, outcome.decision))
    plan_dunning(plan, dunned(ctx, customer, sub, first, attempt), outcome, ctx.now)
    applier.apply(ctx, plan)


def dunned(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, first: datetime, attempt: int
) -> Dunned:
    """The facts of a dunning step, read now."""
    until, _ = retention_until(ctx.merchant, "suspension", ctx.now)
    return Dunned(
        subscription_id=sub.id,
        customer_id=customer.id,
        status=SubscriptionStatus(sub.status),
        first_failed_at=first,
        attempt=attempt,
        customer_status=CustomerStatus(customer.status),
        language=ctx.language(customer),
        retained_until=until,
    )


def suspend(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, *, non_payment: bool = True
) -> None:
    """Suspend service (``plans.billing.plan_suspension``, as the last dunning step
    does). The retention clock ("data retained N days after suspension") starts only for
    a suspension for non-payment, the case the policies give it for."""
    facts = dunned(ctx, customer, sub, sub.first_failed_at or ctx.now, sub.failed_attempts)
    if not non_payment:
        facts = replace(facts, retained_until=None)
    plan = Plan()
    plan_suspension(plan, facts, ctx.now)
    applier.apply(ctx, plan)


def reactivate(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, paid: Money) -> None:
    """A payment settled the subscription (``plans.billing.plan_reactivation``); an
    account back from a suspension is a decision, recorded."""
    plan = Plan()
    facts = Reactivation(
        subscription_id=sub.id,
        customer_id=customer.id,
        status=SubscriptionStatus(sub.status),
        customer_status=CustomerStatus(customer.status),
        plan_code=sub.plan_code,
        welcomed=_welcomed(ctx, customer),
        language=ctx.language(customer),
        at=ctx.now,
    )
    if plan_reactivation(plan, facts):
        decision = ctx.decide(customer.id, decide_reactivation, paid)
        plan.record(ctx.decided_of(customer.id, decision))
    applier.apply(ctx, plan)


def _welcomed(ctx: Ctx, customer: CustomerRow) -> bool:
    from fairbill.store.tables import NotificationRow

    return (
        ctx.session.scalar(
            select(NotificationRow.id)
            .where(
                NotificationRow.customer_id == customer.id, NotificationRow.template == "welcome"
            )
            .limit(1)
        )
        is not None
    )


# -- refunds and the wallet ----------------------------------------------------------------
def pay_refund(
    ctx: Ctx,
    customer: CustomerRow,
    payment: PaymentRow | None,
    amount: Money,
    destination: Destination,
    clauses: tuple[str, ...] | list[str],
    *,
    request_id: int | None = None,
    fee: Money | None = None,
    compensation: bool = False,
) -> RefundRow | None:
    """Pay ``amount`` back, to the original method or the wallet, never beyond what the
    payment has left unrefunded (``plans.billing.plan_refund``, written now). Returns the
    refund row (None when nothing was paid)."""
    plan = Plan()
    facts = refunding(
        ctx,
        customer,
        payment,
        amount,
        destination,
        clauses,
        request_id=request_id,
        fee=fee,
        compensation=compensation,
    )
    refund = plan_refund(plan, setting(ctx), facts)
    if refund is None:
        return None
    applied = applier.apply(ctx, plan)
    return ctx.session.get_one(RefundRow, applied[refund])


def refunding(
    ctx: Ctx,
    customer: CustomerRow,
    payment: PaymentRow | None,
    amount: Money,
    destination: Destination,
    clauses: tuple[str, ...] | list[str],
    *,
    request_id: int | None = None,
    fee: Money | None = None,
    compensation: bool = False,
) -> Refunding:
    """The facts of a refund to plan, read now (the payment's rate from the merchant's
    currency at today's date, when they differ)."""
    rate, no_rate = _rate_to(ctx, payment.currency) if payment is not None else (Decimal(1), "")
    return Refunding(
        customer_id=customer.id,
        payment=paid(payment) if payment is not None else None,
        amount=amount,
        destination=destination,
        clauses=tuple(clauses),
        wallet=customer.wallet_minor,
        language=ctx.language(customer),
        request_id=request_id,
        fee=fee,
        compensation=compensation,
        rate=rate,
        no_rate=no_rate,
    )


def paid(payment: PaymentRow) -> Paid:
    return Paid(
        payment.id,
        payment.number,
        payment.invoice_id,
        payment.amount_minor,
        payment.refunded_minor,
        payment.settled_minor,
        payment.settled_refunded_minor,
        payment.currency,
        payment.method,
        payment.is_duplicate,
        payment.gateway_ref,
    )


def refund_succeeded(ctx: Ctx, op: GatewayOperationRow) -> None:
    """The gateway paid the refund of ``op``: the refund ``succeeded``, its journal
    transaction, the message. ``ctx`` is at the operation's instant."""
    refund = ctx.session.get_one(RefundRow, op.refund_id)
    payment = ctx.session.get_one(PaymentRow, op.payment_id)
    customer = ctx.session.get_one(CustomerRow, op.customer_id)
    plan = Plan()
    plan.change(
        Rows.REFUNDS,
        refund.id,
        status=str(advance(refund.status, RefundStatus.SUCCEEDED)),
        gateway_ref=op.reference,
    )
    debit = Account(op.details.get("debit", str(Account.REFUNDS)))
    plan_refund_paid(
        plan,
        setting(ctx),
        RefundPaid(refund.id, customer.id, payment.number, debit),
        ctx.money(op.settled_minor),
        Money.from_minor(refund.amount_minor, refund.currency),
        Destination(refund.destination),
        ctx.language(customer),
    )
    applier.apply(ctx, plan)


def refund_failed(ctx: Ctx, op: GatewayOperationRow) -> None:
    """The refund of ``op`` finally failed: the reservation on its payment is released,
    the refund shows ``failed``, and the merchant's finance people are told (the customer
    is still owed it: someone has to pay it another way)."""
    refund = ctx.session.get_one(RefundRow, op.refund_id)
    payment = ctx.session.get_one(PaymentRow, op.payment_id)
    plan = Plan()
    plan.change(Rows.REFUNDS, refund.id, status=str(advance(refund.status, RefundStatus.FAILED)))
    plan.change(
        Rows.PAYMENTS,
        payment.id,
        refunded_minor=payment.refunded_minor - op.amount_minor,
        settled_refunded_minor=payment.settled_refunded_minor - op.settled_minor,
    )
    applier.apply(ctx, plan)
    _alert_finance(ctx, op, refund)


def _alert_finance(ctx: Ctx, op: GatewayOperationRow, refund: RefundRow) -> None:
    from fairbill.services.alerts import notify_finance

    customer = ctx.session.get_one(CustomerRow, op.customer_id)
    notify_finance(
        ctx.session,
        ctx.merchant_row,
        "refund_failed",
        ctx.merchant_row.language,
        at=ctx.now,
        customer=customer.code,
        refund=str(refund.id),
        amount=Money.from_minor(refund.amount_minor, refund.currency).text(),
        currency=refund.currency,
        error=op.error or "",
    )
