"""Plans of the billing path: a period billed, an invoice issued and collected, a charge
requested, a payment recorded, a declined attempt.

Pure: facts in, effects appended to a ``Plan`` out. A renewal of the daily cycle and one
through ``subscriptions.advance`` are planned here by the same functions, and one applier
writes them (``services.applier``): there is one billing path.

Collection order for an invoice: unapplied credit notes, then the wallet, then the
payment method. Every money movement posts one balanced journal transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

from fairbill.calendar.periods import Interval, Period, period_containing
from fairbill.decisions.dunning import FailureOutcome
from fairbill.errors import Conflict, GatewayError, NotFound
from fairbill.ledger.accounts import Account
from fairbill.ledger.journal import Leg, Transaction, transfer
from fairbill.lifecycle import (
    CUSTOMER_ENDED,
    CreditPackStatus,
    CustomerStatus,
    InvoiceStatus,
    OperationKind,
    OperationStatus,
    RefundStatus,
    SubscriptionStatus,
    advance,
)
from fairbill.money import Money, Rounding
from fairbill.plans.effects import Joined, Plan, Ref, Rows
from fairbill.policy.model import Destination


class Collected(StrEnum):
    """What a collection did: paid in full without the gateway (credit notes, wallet, or
    nothing due), a charge requested and awaiting the gateway, or nothing to charge to."""

    PAID = "paid"
    PENDING = "pending"
    UNPAID = "unpaid"


@dataclass(frozen=True, slots=True)
class Setting:
    """The merchant as planning sees it, at one instant (local time)."""

    merchant_id: int
    currency: str
    now: datetime
    rounding: Rounding

    def money(self, minor: int) -> Money:
        return _money(minor, self.currency)


@lru_cache(maxsize=4096)
def _money(minor: int, currency: str) -> Money:
    """A chunk of renewals has a handful of distinct amounts: one ``Money`` each (it is
    immutable, so sharing it is safe)."""
    return Money.from_minor(minor, currency)


class Line(NamedTuple):
    kind: str
    description: str
    amount: Money
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(slots=True)
class OpenInvoice:
    """An invoice as collection sees it: stored (an id) or planned (a ``Ref``). The
    amounts are kept up to date by the planners that change them."""

    id: int | Ref
    customer_id: int
    subscription_id: int | Ref | None
    number: int
    total: int
    credit_applied: int = 0
    wallet_applied: int = 0
    amount_paid: int = 0
    status: InvoiceStatus = InvoiceStatus.OPEN

    @property
    def due(self) -> int:
        return self.total - self.credit_applied - self.wallet_applied - self.amount_paid


@dataclass(frozen=True, slots=True)
class Note:
    """An unapplied credit note."""

    id: int
    amount: int
    at: datetime
    reason: str
    invoice_id: int | None
    clauses: tuple[str, ...]


class Card(NamedTuple):
    """The payment method to charge: its rate from the merchant's currency (``None``
    with ``no_rate`` saying why when the rate table has none)."""

    code: str
    token: str | None
    currency: str
    rate: Decimal | None = Decimal(1)
    no_rate: str = ""


class Collection(NamedTuple):
    """What a collection draws on besides the invoice: the customer's unapplied credit
    notes (oldest first) and wallet, the method to charge and the charge's attempt
    number (1 + the charges ever requested for the invoice)."""

    method: str | None
    card: Card | None
    attempt: int = 1
    wallet: int = 0
    notes: tuple[Note, ...] = ()
    in_flight: bool = False
    details: Mapping[str, Any] | None = None


# -- invoices ---------------------------------------------------------------------------------
def plan_invoice(
    plan: Plan,
    s: Setting,
    customer_id: int,
    number: int,
    lines: list[Line],
    *,
    purpose: str,
    subscription_id: int | Ref | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> OpenInvoice:
    """The invoice ``number`` of the customer, its lines, and (when it is not zero) its
    journal transaction, keyed by the customer and the number. Nothing due is paid."""
    minors = [line.amount.minor for line in lines]
    total = sum(minors)
    status = InvoiceStatus.OPEN if total else InvoiceStatus.PAID
    ref = plan.insert(
        Rows.INVOICES,
        {
            "customer_id": customer_id,
            "subscription_id": subscription_id,
            "number": number,
            "issued_at": s.now,
            "currency": s.currency,
            "total_minor": total,
            "wallet_applied_minor": 0,
            "credit_applied_minor": 0,
            "amount_paid_minor": 0,
            "overcharge_minor": 0,
            "status": str(status),
            "period_start": period[0] if period else None,
            "period_end": period[1] if period else None,
            "purpose": purpose,
        },
        ref=True,
    )
    assert ref is not None
    for line, minor in zip(lines, minors, strict=True):
        plan.insert(
            Rows.INVOICE_LINES,
            {
                "invoice_id": ref,
                "kind": line.kind,
                "description": line.description,
                "amount_minor": minor,
                "period_start": line.period_start,
                "period_end": line.period_end,
            },
        )
    if total:
        plan.post(
            transfer(
                f"inv:{customer_id}:{number}",
                s.now,
                f"invoice {number}",
                Account.RECEIVABLE,
                Account.REVENUE,
                s.money(total),
            ),
            customer_id,
        )
    return OpenInvoice(ref, customer_id, subscription_id, number, total, status=status)


# -- periods and renewals -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Promotion:
    code: str
    periods_left: int | None  # None: for ever
    percent_off: Decimal | None
    amount_off: int | None


class PeriodBill(NamedTuple):
    """A subscription period to bill: at ``price`` on ``plan_code``, with the promotion
    running on it and the credits its plan includes (kind, quantity), which expire at
    ``credits_expire`` or at the period's end, whichever is first."""

    subscription_id: int | Ref
    customer_id: int
    plan_code: str
    period: Period
    price: int
    invoice_number: int
    promotion: Promotion | None = None
    credits: tuple[tuple[str, int], ...] = ()
    credits_expire: datetime | None = None


class Renewal(NamedTuple):
    """A subscription whose period ended: it renews on ``plan_code`` (a pending change of
    plan taking effect now when ``switch``) for the period after the one ending at
    ``period_end``, both local."""

    subscription_id: int
    plan_code: str
    switch: bool
    interval: Interval
    anchor: datetime
    period_end: datetime
    accepts: int | None = None  # the policy version it moves to (continued use), if any


def plan_renewal(plan: Plan, r: Renewal) -> Period:
    """The subscription moved to its next period (and plan, and policy version where
    continued use accepts newer terms); billing it is ``plan_period``."""
    period = period_containing(r.anchor, r.interval, r.period_end)
    values: dict[str, Any] = {
        "current_period_start": period.start,
        "current_period_end": period.end,
    }
    if r.switch:
        values |= {"plan_code": r.plan_code, "pending_plan": None}
    if r.accepts is not None:
        values["policy_version_id"] = r.accepts
    plan.change(Rows.SUBSCRIPTIONS, r.subscription_id, **values)
    return period


def plan_period(plan: Plan, s: Setting, bill: PeriodBill) -> OpenInvoice:
    """A period's invoice (its price, less the promotion), the credits its plan includes,
    and the subscription's price for it."""
    start, end = bill.period.start, bill.period.end
    price = s.money(bill.price)
    lines = [
        Line("subscription", f"{bill.plan_code} {start.date()} – {end.date()}", price, start, end)
    ]
    changes: dict[str, Any] = {"price_minor": bill.price}
    promo = bill.promotion
    if promo is not None and promo.periods_left != 0:
        if promo.periods_left is not None:
            changes["promotion_periods_left"] = promo.periods_left - 1
        discount = _discount(s, promo, price)
        if discount:
            lines.append(Line("credit", f"promotion {promo.code}", -discount, start, end))
    plan.change(Rows.SUBSCRIPTIONS, bill.subscription_id, **changes)
    invoice = plan_invoice(
        plan,
        s,
        bill.customer_id,
        bill.invoice_number,
        lines,
        purpose="subscription",
        subscription_id=bill.subscription_id,
        period=(start, end),
    )
    expires = min(bill.credits_expire, end) if bill.credits_expire else end
    for kind, quantity in bill.credits:
        plan.insert(
            Rows.CREDIT_PACKS,
            {
                "customer_id": bill.customer_id,
                "kind": kind,
                "quantity": quantity,
                "remaining": quantity,
                "forfeited": 0,
                "purchased_at": s.now,
                "expires_at": expires,
                "status": str(CreditPackStatus.ACTIVE),
                "source": "plan",
                "subscription_id": bill.subscription_id,
            },
        )
    return invoice


def _discount(s: Setting, promo: Promotion, price: Money) -> Money:
    if promo.percent_off is not None:
        return price.ratio(promo.percent_off, 100).round(s.rounding)
    off = s.money(promo.amount_off or 0)
    return off if off <= price else price


# -- collection -----------------------------------------------------------------------------------
def plan_collection(
    plan: Plan, s: Setting, invoice: OpenInvoice, c: Collection, purpose: str
) -> Collected:
    """Settle what is due: credit notes, wallet, then a charge to the method. The charge
    is requested, not made: its outcome comes through ``plan_payment`` or
    ``plan_decline``. A charge of the invoice still waiting for its answer comes first:
    credit or wallet money applied now would pay it twice."""
    if c.in_flight:
        return Collected.PENDING
    _apply_notes(plan, invoice, c.notes)
    _apply_wallet(plan, s, invoice, c.wallet)
    due = invoice.due
    if due <= 0:
        if invoice.status != InvoiceStatus.PAID:
            invoice.status = InvoiceStatus.PAID
            plan.change(Rows.INVOICES, invoice.id, status=str(InvoiceStatus.PAID))
        return Collected.PAID
    if c.method is None:
        return Collected.UNPAID
    if c.card is None:
        raise NotFound(f"no payment method {c.method!r}")
    plan_charge(plan, s, invoice, c.card, s.money(due), c.attempt, purpose, c.details)
    return Collected.PENDING


def _apply_notes(plan: Plan, invoice: OpenInvoice, notes: tuple[Note, ...]) -> None:
    """Unapplied credit notes pay the invoice, oldest first ("the credit is applied to
    your next invoice"). A note larger than what is due pays up to that amount and the
    rest carries forward as a note of its own (same date, reason, clauses and credited
    invoice), waiting for the next invoice. The parts add up to the note issued, which the
    journal posted once."""
    for note in notes:
        due = invoice.due
        if due <= 0:
            return
        applied = note.amount
        if note.amount > due:
            plan.insert(
                Rows.CREDIT_NOTES,
                {
                    "customer_id": invoice.customer_id,
                    "at": note.at,
                    "amount_minor": note.amount - due,
                    "reason": f"{note.reason} (carried forward after invoice {invoice.number})",
                    "invoice_id": note.invoice_id,
                    "applied_to_invoice_id": None,
                    "clauses": list(note.clauses),
                },
            )
            applied = due
        plan.change(
            Rows.CREDIT_NOTES, note.id, amount_minor=applied, applied_to_invoice_id=invoice.id
        )
        invoice.credit_applied += applied
        plan.change(Rows.INVOICES, invoice.id, credit_applied_minor=invoice.credit_applied)


def _apply_wallet(plan: Plan, s: Setting, invoice: OpenInvoice, wallet: int) -> None:
    use = min(wallet, invoice.due)
    if use <= 0:
        return
    customer_id = invoice.customer_id
    invoice.wallet_applied += use
    plan.change(Rows.CUSTOMERS, customer_id, wallet_minor=wallet - use)
    plan.change(Rows.INVOICES, invoice.id, wallet_applied_minor=invoice.wallet_applied)
    plan.insert(
        Rows.WALLET_ENTRIES,
        {
            "customer_id": customer_id,
            "at": s.now,
            "amount_minor": -use,
            "reason": f"applied to invoice {invoice.number}",
        },
    )
    plan.post(
        transfer(
            f"wallet-apply:{customer_id}:{invoice.number}:{invoice.wallet_applied}",
            s.now,
            f"wallet applied to invoice {invoice.number}",
            Account.WALLET,
            Account.RECEIVABLE,
            s.money(use),
        ),
        customer_id,
    )


def plan_charge(
    plan: Plan,
    s: Setting,
    invoice: OpenInvoice,
    card: Card,
    amount: Money,
    attempt: int,
    purpose: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """A charge of ``amount`` (converted to the card's currency at the card's rate) on
    ``invoice``, ``pending`` until the gateway answered. Its key is the invoice's id and
    the attempt's number: the n-th charge ever requested for that invoice."""
    charged = amount
    if card.currency != amount.currency:
        if card.rate is None:
            raise Conflict(card.no_rate)
        charged = Money(amount.amount * card.rate, card.currency).round(s.rounding)
    plan.insert(
        Rows.GATEWAY_OPERATIONS,
        {
            "merchant_id": s.merchant_id,
            "customer_id": invoice.customer_id,
            "kind": str(OperationKind.CHARGE),
            "purpose": purpose,
            "status": str(OperationStatus.PENDING),
            "key": Joined(("charge", invoice.id, attempt)),
            "invoice_id": invoice.id,
            "subscription_id": invoice.subscription_id,
            "token": card.token,
            "method": card.code,
            "amount_minor": charged.minor,
            "currency": charged.currency,
            "settled_minor": amount.minor,
            "attempt": attempt,
            "tries": 0,
            "created_at": s.now,
            "updated_at": s.now,
            "details": dict(details or {}),
        },
    )


# -- the gateway's answers ---------------------------------------------------------------------
class Taken(NamedTuple):
    """A charge the gateway took: the operation, its invoice as it stands, and the
    customer's next payment number."""

    op_id: int
    at: datetime
    invoice: OpenInvoice
    payment_number: int
    charged: Money  # in the card's currency
    settled: Money  # in the merchant's
    method: str
    reference: str
    duplicate: bool
    language: str


def plan_payment(plan: Plan, t: Taken) -> Ref:
    """The payment, the invoice paid (a duplicate, a billing mistake, pays nothing), the
    journal, the receipt. What follows by the charge's purpose is the shell's."""
    invoice = t.invoice
    customer_id = invoice.customer_id
    settled = t.settled.minor
    payment = plan.insert(
        Rows.PAYMENTS,
        {
            "customer_id": customer_id,
            "invoice_id": invoice.id,
            "number": t.payment_number,
            "at": t.at,
            "amount_minor": t.charged.minor,
            "currency": t.charged.currency,
            "settled_minor": settled,
            "settled_refunded_minor": 0,
            "refunded_minor": 0,
            "method": t.method,
            "is_duplicate": t.duplicate,
            "gateway_ref": t.reference,
            "disputed": None,
        },
        ref=True,
    )
    assert payment is not None
    plan.change(Rows.GATEWAY_OPERATIONS, t.op_id, payment_id=payment)
    if not t.duplicate:
        invoice.amount_paid += settled
        values: dict[str, Any] = {"amount_paid_minor": invoice.amount_paid}
        if invoice.due <= 0:
            invoice.status = InvoiceStatus.PAID
            values["status"] = str(InvoiceStatus.PAID)
        plan.change(Rows.INVOICES, invoice.id, **values)
    plan.post(
        across(
            f"pay:{customer_id}:{t.payment_number}",
            t.at,
            f"payment {t.payment_number} for invoice {invoice.number}",
            (Account.CASH, t.charged),
            (Account.RECEIVABLE, t.settled),
        ),
        customer_id,
    )
    plan_notice(
        plan,
        customer_id,
        t.at,
        "receipt",
        t.language,
        invoice=str(invoice.number),
        amount=t.charged.text(),
        currency=t.charged.currency,
    )
    return payment


def plan_decline(
    plan: Plan,
    *,
    customer_id: int,
    invoice_id: int,
    invoice_number: int,
    at: datetime,
    amount: Money,
    method: str,
    attempt: int,
    language: str,
) -> None:
    """A declined charge: the failed attempt (the ``attempt``-th of the invoice) and the
    customer told. The dunning step that follows is ``decisions.dunning``'s."""
    plan.insert(
        Rows.FAILED_PAYMENTS,
        {
            "customer_id": customer_id,
            "invoice_id": invoice_id,
            "at": at,
            "amount_minor": amount.minor,
            "method": method,
            "attempt": attempt,
        },
    )
    plan_notice(
        plan,
        customer_id,
        at,
        "payment_failed",
        language,
        invoice=str(invoice_number),
        amount=amount.text(),
        currency=amount.currency,
    )


def plan_notice(
    plan: Plan, customer_id: int, at: datetime, template: str, language: str, /, **payload: str
) -> None:
    """A message to the customer, sent by the outbox after the commit."""
    plan.insert(
        Rows.NOTIFICATIONS,
        {
            "customer_id": customer_id,
            "merchant_id": None,
            "at": at,
            "template": template,
            "language": language,
            "payload": payload,
            "attempts": 0,
        },
    )


def across(
    key: str, at: datetime, text: str, debit: tuple[Account, Money], credit: tuple[Account, Money]
) -> Transaction:
    """A transfer whose two sides may be in different currencies: each side balances
    against the FX clearing account in its own currency."""
    (debit_account, debit_amount), (credit_account, credit_amount) = debit, credit
    if debit_amount.currency == credit_amount.currency:
        return transfer(key, at, text, debit_account, credit_account, debit_amount)
    return Transaction(
        key,
        at,
        text,
        (
            Leg(debit_account, debit_amount),
            Leg(Account.FX, -debit_amount),
            Leg(Account.FX, credit_amount),
            Leg(credit_account, -credit_amount),
        ),
    )


# -- dunning ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dunned:
    """A subscription whose collection failed, and its account, as they stand; the
    attempt is the subscription's count of failed attempts after this one, and the first
    failure the instant that count began."""

    subscription_id: int
    customer_id: int
    status: SubscriptionStatus
    first_failed_at: datetime
    attempt: int
    customer_status: CustomerStatus
    language: str
    retained_until: datetime | None  # the retention clock a suspension for non-payment starts


def plan_dunning(plan: Plan, d: Dunned, outcome: FailureOutcome, at: datetime) -> None:
    """The dunning step ``outcome`` decided: past due with the next retry, or, at the last
    one, the subscription suspended (and its account, if active). The decision itself is
    the caller's to record."""
    status = d.status
    if status != SubscriptionStatus.SUSPENDED:
        status = advance(status, SubscriptionStatus.PAST_DUE)
    plan.change(
        Rows.SUBSCRIPTIONS,
        d.subscription_id,
        status=str(status),
        first_failed_at=d.first_failed_at,
        failed_attempts=d.attempt,
        next_retry_at=outcome.next_retry_at,
    )
    if outcome.suspend:
        plan_suspension(plan, replace(d, status=status), at)


def plan_suspension(plan: Plan, d: Dunned, at: datetime) -> None:
    """Service suspended for non-payment: the subscription, and the account if it is
    active (with the retention clock, and the customer told)."""
    plan.change(
        Rows.SUBSCRIPTIONS,
        d.subscription_id,
        status=str(advance(d.status, SubscriptionStatus.SUSPENDED)),
        suspended_at=at,
        next_retry_at=None,
    )
    if d.customer_status != CustomerStatus.ACTIVE:
        return
    values: dict[str, Any] = {"status": str(advance(d.customer_status, CustomerStatus.SUSPENDED))}
    if d.retained_until is not None:
        values["data_retained_until"] = d.retained_until
    plan.change(Rows.CUSTOMERS, d.customer_id, **values)
    plan_notice(plan, d.customer_id, at, "suspended", d.language)


# -- refunds -----------------------------------------------------------------------------------
class Paid(NamedTuple):
    """A payment as a refund sees it: what it took (in its currency and settled in the
    merchant's) and what refunds already reserved of it."""

    id: int
    number: int
    invoice_id: int
    amount: int
    refunded: int
    settled: int
    settled_refunded: int
    currency: str
    method: str
    is_duplicate: bool
    gateway_ref: str


class Refunding(NamedTuple):
    """A refund to pay: ``amount`` (the merchant's currency) back from ``payment`` (none:
    a credit to the wallet), to ``destination``; ``rate`` converts the merchant's
    currency to the payment's (``None``: the rate table has none, ``no_rate`` says why)."""

    customer_id: int
    payment: Paid | None
    amount: Money
    destination: Destination
    clauses: tuple[str, ...]
    wallet: int
    language: str
    request_id: int | None = None
    fee: Money | None = None
    compensation: bool = False
    rate: Decimal | None = Decimal(1)
    no_rate: str = ""


def plan_refund(plan: Plan, s: Setting, r: Refunding) -> Ref | None:
    """Pay ``r.amount`` back, to the original method or the wallet, never beyond what the
    payment has left unrefunded (``None``: nothing was left to pay). The amount is reserved
    on the payment now, so no later refund can exceed what is left; a refund to the card
    is a gateway operation (``refund:<refund id>``), paid when the gateway says so, and
    its reservation is released if it finally fails."""
    payment = r.payment
    amount = r.amount
    if payment is not None:
        amount = s.money(min(amount.minor, payment.settled - payment.settled_refunded))
    if amount.minor <= 0:
        return None
    to_wallet = r.destination == Destination.WALLET
    if not to_wallet and payment is None:
        raise GatewayError("a refund to the original method needs a payment")
    # In the payment's own currency, at today's rate: the customer carries the FX difference.
    in_payment_currency = amount
    if payment is not None and payment.currency != amount.currency:
        if r.rate is None:
            raise Conflict(r.no_rate)
        converted = Money(amount.amount * r.rate, payment.currency).round(s.rounding)
        left = payment.amount - payment.refunded
        in_payment_currency = Money.from_minor(min(converted.minor, left), payment.currency)
    paid_out = amount if to_wallet else in_payment_currency
    debit = Account.COMPENSATION if r.compensation else Account.REFUNDS
    if payment is not None and payment.is_duplicate:
        debit = Account.RECEIVABLE
    if to_wallet:
        plan.change(Rows.CUSTOMERS, r.customer_id, wallet_minor=r.wallet + amount.minor)
        reason = f"refund of payment {payment.number}" if payment is not None else "credit"
        plan.insert(
            Rows.WALLET_ENTRIES,
            {
                "customer_id": r.customer_id,
                "at": s.now,
                "amount_minor": amount.minor,
                "reason": reason,
            },
        )
    if payment is not None:
        plan.change(
            Rows.PAYMENTS,
            payment.id,
            refunded_minor=payment.refunded + in_payment_currency.minor,
            settled_refunded_minor=payment.settled_refunded + amount.minor,
        )
    refund = plan.insert(
        Rows.REFUNDS,
        {
            "customer_id": r.customer_id,
            "payment_id": payment.id if payment is not None else None,
            "request_id": r.request_id,
            "at": s.now,
            "amount_minor": paid_out.minor,
            "fee_minor": r.fee.minor if r.fee else 0,
            "currency": paid_out.currency,
            "destination": str(r.destination),
            "method": None if to_wallet or payment is None else payment.method,
            "clauses": list(r.clauses),
            "gateway_ref": None,
            "status": str(RefundStatus.SUCCEEDED if to_wallet else RefundStatus.PENDING),
        },
        ref=True,
    )
    assert refund is not None
    if to_wallet or payment is None:  # no gateway: paid now
        paying = RefundPaid(refund, r.customer_id, payment.number if payment else None, debit)
        plan_refund_paid(plan, s, paying, amount, paid_out, r.destination, r.language)
        return refund
    plan.insert(
        Rows.GATEWAY_OPERATIONS,
        {
            "merchant_id": s.merchant_id,
            "customer_id": r.customer_id,
            "kind": str(OperationKind.REFUND),
            "purpose": "refund",
            "status": str(OperationStatus.PENDING),
            "key": Joined(("refund", refund)),
            "invoice_id": payment.invoice_id,
            "payment_id": payment.id,
            "refund_id": refund,
            "method": payment.method,
            "amount_minor": paid_out.minor,
            "currency": paid_out.currency,
            "settled_minor": amount.minor,
            "attempt": 1,
            "tries": 0,
            "created_at": s.now,
            "updated_at": s.now,
            "details": {"reference": payment.gateway_ref, "debit": str(debit)},
        },
    )
    return refund


class RefundPaid(NamedTuple):
    refund: int | Ref
    customer_id: int
    payment_number: int | None
    debit: Account


def plan_refund_paid(
    plan: Plan,
    s: Setting,
    p: RefundPaid,
    amount: Money,
    paid_out: Money,
    destination: Destination,
    language: str,
) -> None:
    """A refund that reached its destination: its journal transaction (keyed by the
    customer and the refund) and the message."""
    credit = Account.WALLET if destination == Destination.WALLET else Account.CASH
    of = f" of payment {p.payment_number}" if p.payment_number is not None else ""
    txn = across("refund", s.now, "refund", (p.debit, amount), (credit, paid_out))
    plan.post(
        txn,
        p.customer_id,
        key=Joined(("refund", p.customer_id, p.refund)),
        text=Joined(("refund ", p.refund, of), sep=""),
    )
    plan_notice(
        plan,
        p.customer_id,
        s.now,
        "refund_paid",
        language,
        amount=amount.text(),
        destination=str(destination),
    )


# -- credit notes and chargebacks ------------------------------------------------------------
def plan_credit_note(
    plan: Plan,
    s: Setting,
    customer_id: int,
    amount: Money,
    reason: str,
    invoice_id: int | None,
    clauses: tuple[str, ...],
) -> Ref:
    """A credit note, applied to the customer's next invoices (``plan_collection``), and
    its journal transaction (keyed by the customer and the note)."""
    note = plan.insert(
        Rows.CREDIT_NOTES,
        {
            "customer_id": customer_id,
            "at": s.now,
            "amount_minor": amount.minor,
            "reason": reason,
            "invoice_id": invoice_id,
            "applied_to_invoice_id": None,
            "clauses": list(clauses),
        },
        ref=True,
    )
    assert note is not None
    txn = transfer(
        "credit-note", s.now, "credit note", Account.CREDIT_NOTES, Account.RECEIVABLE, amount
    )
    plan.post(
        txn,
        customer_id,
        key=Joined(("credit-note", customer_id, note)),
        text=Joined(("credit note ", note), sep=""),
    )
    return note


def plan_dispute_closed(
    plan: Plan, s: Setting, customer_id: int, payment: Paid, outcome: str, left: Money
) -> None:
    """A dispute's end: ``won`` or ``lost``. A lost one means the bank returned what was
    left of the payment, in the payment's own currency: the payment is refunded in full,
    and the loss is a chargeback in the journal."""
    values: dict[str, Any] = {"disputed": outcome}
    if outcome == "lost" and left.minor:
        returned = Money.from_minor(payment.amount - payment.refunded, payment.currency)
        values |= {
            "refunded_minor": payment.amount,
            "settled_refunded_minor": payment.settled_refunded + left.minor,
        }
        plan.post(
            across(
                f"chargeback:{customer_id}:{payment.number}",
                s.now,
                f"chargeback lost on payment {payment.number}",
                (Account.CHARGEBACKS, left),
                (Account.CASH, returned),
            ),
            customer_id,
        )
    plan.change(Rows.PAYMENTS, payment.id, **values)


class Reactivation(NamedTuple):
    """A subscription a payment settled, and its account, as they stand."""

    subscription_id: int
    customer_id: int
    status: SubscriptionStatus
    customer_status: CustomerStatus
    plan_code: str
    welcomed: bool  # the customer had their welcome message
    language: str
    at: datetime


def plan_reactivation(plan: Plan, r: Reactivation) -> bool:
    """The subscription active again, its dunning cleared, and its account too unless
    the account was closed or terminated meanwhile (those stay as they are). Returns
    whether the account came back from a suspension: that is a decision to record."""
    values: dict[str, Any] = {"first_failed_at": None, "failed_attempts": 0, "next_retry_at": None}
    if r.status in (SubscriptionStatus.PAST_DUE, SubscriptionStatus.SUSPENDED):
        values |= {
            "status": str(advance(r.status, SubscriptionStatus.ACTIVE)),
            "suspended_at": None,
        }
    plan.change(Rows.SUBSCRIPTIONS, r.subscription_id, **values)
    if not r.welcomed:
        plan_notice(plan, r.customer_id, r.at, "welcome", r.language, plan=r.plan_code)
    if r.customer_status in CUSTOMER_ENDED:
        return False
    suspended = r.customer_status == CustomerStatus.SUSPENDED
    if r.status != SubscriptionStatus.SUSPENDED and not suspended:
        return False
    # The account may be active already: another of its subscriptions was paid first.
    account: dict[str, Any] = {"data_retained_until": None}
    if suspended:
        account["status"] = str(advance(r.customer_status, CustomerStatus.ACTIVE))
    plan.change(Rows.CUSTOMERS, r.customer_id, **account)
    plan_notice(plan, r.customer_id, r.at, "reactivated", r.language)
    return True
