"""Invoices, collection, failed payments, refunds and the wallet.

Collection order for an invoice: unapplied credit notes, then the wallet, then the
payment method. Every money movement posts one balanced journal transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from fairbill.decisions.decision import Decision
from fairbill.decisions.disputes import retention_until
from fairbill.decisions.dunning import decide_failure, decide_reactivation
from fairbill.errors import GatewayError
from fairbill.ledger.accounts import Account
from fairbill.ledger.journal import Leg, Transaction, transfer
from fairbill.money import Money
from fairbill.policy.model import Destination
from fairbill.services import fx
from fairbill.services.context import Ctx
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    FailedPaymentRow,
    InvoiceLineRow,
    InvoiceRow,
    PaymentMethodRow,
    PaymentRow,
    RefundRow,
    SubscriptionRow,
    WalletEntryRow,
)


@dataclass(frozen=True)
class Line:
    kind: str
    description: str
    amount: Money
    period_start: datetime | None = None
    period_end: datetime | None = None


def issue_invoice(
    ctx: Ctx,
    customer: CustomerRow,
    lines: list[Line],
    *,
    purpose: str,
    subscription: SubscriptionRow | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> InvoiceRow:
    total = sum((line.amount.minor for line in lines), 0)
    invoice = InvoiceRow(
        customer_id=customer.id,
        subscription_id=subscription.id if subscription else None,
        number=ctx.next_number(InvoiceRow, customer),
        issued_at=ctx.now,
        currency=ctx.currency,
        total_minor=total,
        status="open",
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
        purpose=purpose,
    )
    ctx.session.add(invoice)
    ctx.session.flush()
    ctx.session.add_all(
        InvoiceLineRow(
            invoice_id=invoice.id,
            kind=line.kind,
            description=line.description,
            amount_minor=line.amount.minor,
            period_start=line.period_start,
            period_end=line.period_end,
        )
        for line in lines
    )
    if total:
        ctx.post(
            transfer(
                f"inv:{customer.id}:{invoice.number}",
                ctx.now,
                f"invoice {invoice.number}",
                Account.RECEIVABLE,
                Account.REVENUE,
                ctx.money(total),
            ),
            customer,
        )
    if total == 0:
        invoice.status = "paid"
    return invoice


def amount_due(invoice: InvoiceRow) -> int:
    return (
        invoice.total_minor
        - invoice.credit_applied_minor
        - invoice.wallet_applied_minor
        - invoice.amount_paid_minor
    )


def collect(ctx: Ctx, customer: CustomerRow, invoice: InvoiceRow, method: str | None) -> bool:
    """Settle what is due: credit notes, wallet, then the method. True when paid."""
    _apply_credit_notes(ctx, invoice)
    _apply_wallet(ctx, customer, invoice)
    due = amount_due(invoice)
    if due <= 0:
        invoice.status = "paid"
        return True
    if method is None:
        return False
    return charge(ctx, customer, invoice, method, ctx.money(due))


def _apply_credit_notes(ctx: Ctx, invoice: InvoiceRow) -> None:
    notes = ctx.session.scalars(
        select(CreditNoteRow)
        .where(
            CreditNoteRow.customer_id == invoice.customer_id,
            CreditNoteRow.applied_to_invoice_id.is_(None),
        )
        .order_by(CreditNoteRow.id)
    ).all()
    for note in notes:
        due = amount_due(invoice)
        if due <= 0 or note.amount_minor > due:
            # A note applies whole: the remainder would otherwise vanish from the record.
            continue
        note.applied_to_invoice_id = invoice.id
        invoice.credit_applied_minor += note.amount_minor


def _apply_wallet(ctx: Ctx, customer: CustomerRow, invoice: InvoiceRow) -> None:
    use = min(customer.wallet_minor, amount_due(invoice))
    if use <= 0:
        return
    customer.wallet_minor -= use
    invoice.wallet_applied_minor += use
    ctx.session.add(
        WalletEntryRow(
            customer_id=customer.id,
            at=ctx.now,
            amount_minor=-use,
            reason=f"applied to invoice {invoice.number}",
        )
    )
    ctx.post(
        transfer(
            f"wallet-apply:{customer.id}:{invoice.number}:{invoice.wallet_applied_minor}",
            ctx.now,
            f"wallet applied to invoice {invoice.number}",
            Account.WALLET,
            Account.RECEIVABLE,
            ctx.money(use),
        ),
        customer,
    )


def method_row(ctx: Ctx, customer: CustomerRow, code: str) -> PaymentMethodRow:
    row = ctx.session.scalar(
        select(PaymentMethodRow).where(
            PaymentMethodRow.customer_id == customer.id, PaymentMethodRow.code == code
        )
    )
    if row is None:
        from fairbill.errors import NotFound

        raise NotFound(f"no payment method {code!r}")
    return row


def charge(
    ctx: Ctx,
    customer: CustomerRow,
    invoice: InvoiceRow,
    method: str,
    amount: Money,
    *,
    duplicate: bool = False,
) -> bool:
    pm = method_row(ctx, customer, method)
    attempts = ctx.session.scalars(
        select(FailedPaymentRow).where(FailedPaymentRow.invoice_id == invoice.id)
    ).all()
    # A duplicate charge (a billing mistake) is a charge of its own: count the earlier ones,
    # or two mistakes at one instant would share the gateway's idempotency key.
    earlier = (
        ctx.session.scalar(
            select(func.count())
            .select_from(PaymentRow)
            .where(PaymentRow.invoice_id == invoice.id, PaymentRow.is_duplicate.is_(True))
        )
        if duplicate
        else 0
    )
    key = (
        f"charge:{customer.id}:{invoice.number}:{len(attempts)}:{int(duplicate) + (earlier or 0)}:"
        f"{ctx.now.isoformat()}"
    )
    charged = fx.convert(ctx, amount, pm.currency, ctx.now)
    result = ctx.gateway.charge(pm.token, charged, key)
    if not result.ok:
        ctx.session.add(
            FailedPaymentRow(
                customer_id=customer.id,
                invoice_id=invoice.id,
                at=ctx.now,
                amount_minor=amount.minor,
                method=method,
                attempt=len(attempts) + 1,
            )
        )
        ctx.notify(
            customer,
            "payment_failed",
            invoice=str(invoice.number),
            amount=amount.text(),
            currency=amount.currency,
        )
        return False
    payment = PaymentRow(
        customer_id=customer.id,
        invoice_id=invoice.id,
        number=ctx.next_number(PaymentRow, customer),
        at=ctx.now,
        amount_minor=charged.minor,
        currency=charged.currency,
        settled_minor=amount.minor,
        settled_refunded_minor=0,
        refunded_minor=0,
        method=method,
        is_duplicate=duplicate,
        gateway_ref=result.reference or "",
    )
    ctx.session.add(payment)
    ctx.session.flush()
    if not duplicate:
        invoice.amount_paid_minor += amount.minor
        if amount_due(invoice) <= 0:
            invoice.status = "paid"
    ctx.post(
        across(
            f"pay:{customer.id}:{payment.number}",
            ctx.now,
            f"payment {payment.number} for invoice {invoice.number}",
            (Account.CASH, charged),
            (Account.RECEIVABLE, amount),
        ),
        customer,
    )
    ctx.notify(
        customer,
        "receipt",
        invoice=str(invoice.number),
        amount=charged.text(),
        currency=charged.currency,
    )
    return True


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


# -- failed payments and dunning ------------------------------------------------------------
def handle_failure(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, invoice: InvoiceRow
) -> None:
    attempt = sub.failed_attempts + 1
    if sub.first_failed_at is None:
        sub.first_failed_at = ctx.now
    sub.failed_attempts = attempt
    outcome = decide_failure(
        ctx.merchant, attempt, ctx.local(sub.first_failed_at), ctx.money(amount_due(invoice))
    )
    ctx.record(customer, outcome.decision)
    sub.next_retry_at = outcome.next_retry_at
    if sub.status not in ("suspended",):
        sub.status = "past_due"
    if outcome.suspend:
        suspend(ctx, customer, sub)


def suspend(
    ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow | None, *, non_payment: bool = True
) -> None:
    """Suspend service. The retention clock ("data retained N days after suspension")
    starts only for a suspension for non-payment, the case the policies give it for."""
    if sub is not None:
        sub.status = "suspended"
        sub.suspended_at = ctx.now
        sub.next_retry_at = None
    if customer.status == "active":
        customer.status = "suspended"
        until, _ = retention_until(ctx.merchant, "suspension", ctx.now)
        if until is not None and non_payment:
            customer.data_retained_until = until
        ctx.notify(customer, "suspended")


def reactivate(ctx: Ctx, customer: CustomerRow, sub: SubscriptionRow, paid: Money) -> None:
    was = sub.status
    sub.first_failed_at = None
    sub.failed_attempts = 0
    sub.next_retry_at = None
    if was in ("past_due", "suspended"):
        sub.status = "active"
        sub.suspended_at = None
    if not _welcomed(ctx, customer):
        ctx.notify(customer, "welcome", plan=sub.plan_code)
    if was == "suspended" or customer.status == "suspended":
        customer.status = "active"
        customer.data_retained_until = None
        ctx.record(customer, decide_reactivation(ctx.merchant, paid))
        ctx.notify(customer, "reactivated")


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
    payment has left unrefunded. Returns the refund row (None when nothing was paid)."""
    if payment is not None:
        left = payment.settled_minor - payment.settled_refunded_minor
        amount = ctx.money(min(amount.minor, left))
    if amount.minor <= 0:
        return None
    # In the payment's own currency, at today's rate: the customer carries the FX difference.
    in_payment_currency = amount
    if payment is not None and payment.currency != amount.currency:
        converted = fx.convert(ctx, amount, payment.currency, ctx.now)
        in_payment_currency = Money.from_minor(
            min(converted.minor, payment.amount_minor - payment.refunded_minor), payment.currency
        )
    paid_out = amount if destination == Destination.WALLET else in_payment_currency
    debit = Account.COMPENSATION if compensation else Account.REFUNDS
    if payment is not None and payment.is_duplicate:
        debit = Account.RECEIVABLE
    method = payment.method if payment is not None else None
    reference = None
    if destination == Destination.WALLET:
        credit = Account.WALLET
        customer.wallet_minor += amount.minor
        ctx.session.add(
            WalletEntryRow(
                customer_id=customer.id,
                at=ctx.now,
                amount_minor=amount.minor,
                reason=f"refund of payment {payment.number}" if payment is not None else "credit",
            )
        )
        method = None
    else:
        credit = Account.CASH
        if payment is None:
            raise GatewayError("a refund to the original method needs a payment")
        count = len(
            ctx.session.scalars(
                select(RefundRow.id).where(RefundRow.payment_id == payment.id)
            ).all()
        )
        result = ctx.gateway.refund(
            payment.gateway_ref, paid_out, f"refund:{customer.id}:{payment.number}:{count}"
        )
        if not result.ok:
            raise GatewayError(f"the gateway refused the refund of payment {payment.number}")
        reference = result.reference
    if payment is not None:
        payment.refunded_minor += in_payment_currency.minor
        payment.settled_refunded_minor += amount.minor
    refund = RefundRow(
        customer_id=customer.id,
        payment_id=payment.id if payment else None,
        request_id=request_id,
        at=ctx.now,
        amount_minor=paid_out.minor,
        fee_minor=fee.minor if fee else 0,
        currency=paid_out.currency,
        destination=str(destination),
        method=method,
        clauses=list(clauses),
        gateway_ref=reference,
    )
    ctx.session.add(refund)
    ctx.session.flush()
    ctx.post(
        across(
            f"refund:{customer.id}:{refund.id}",
            ctx.now,
            f"refund {refund.id}" + (f" of payment {payment.number}" if payment else ""),
            (debit, amount),
            (credit, paid_out),
        ),
        customer,
    )
    ctx.notify(customer, "refund_paid", amount=amount.text(), destination=str(destination))
    return refund


def credit_note(
    ctx: Ctx,
    customer: CustomerRow,
    amount: Money,
    reason: str,
    invoice: InvoiceRow | None,
    decision: Decision,
) -> CreditNoteRow:
    note = CreditNoteRow(
        customer_id=customer.id,
        at=ctx.now,
        amount_minor=amount.minor,
        reason=reason,
        invoice_id=invoice.id if invoice else None,
        clauses=list(decision.clauses),
    )
    ctx.session.add(note)
    ctx.session.flush()
    ctx.post(
        transfer(
            f"credit-note:{customer.id}:{note.id}",
            ctx.now,
            f"credit note {note.id}",
            Account.CREDIT_NOTES,
            Account.RECEIVABLE,
            amount,
        ),
        customer,
    )
    return note
