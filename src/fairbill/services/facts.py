"""The facts the pure core decides from, read from the store: a narrow repository of
reads for one unit of work (cosmicpython's ``repository.py``), nothing written here.

Instants are given in the merchant's time zone and amounts in its currency, as the
deciders expect them (``decisions.facts``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from fairbill.calendar.periods import Interval, Period, period_containing
from fairbill.decisions.facts import (
    UNUSED_TIME_KINDS,
    CustomerFacts,
    Merchant,
    PaymentFacts,
    PlanFacts,
    SubscriptionFacts,
)
from fairbill.lifecycle import RefundStatus
from fairbill.money import Money
from fairbill.policy.model import ItemKind
from fairbill.store.tables import (
    CustomerRow,
    GatewayOperationRow,
    InvoiceLineRow,
    InvoiceRow,
    PaymentRow,
    PlanRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
)


class Facts:
    """Facts of the merchant's customers, subscriptions and payments for the deciders."""

    def __init__(
        self,
        session: Session,
        merchant: Merchant,
        now: Callable[[], datetime],
        plans: Callable[[str], PlanRow],
    ) -> None:
        self.session = session
        self.merchant = merchant
        self._now = now  # the unit of work's clock, which may be stopped meanwhile
        self._plan_row = plans

    @property
    def now(self) -> datetime:
        return self._now().astimezone(self.merchant.tz)

    def money(self, minor: int) -> Money:
        return Money.from_minor(minor, self.merchant.currency)

    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.merchant.tz)

    def plan(self, sub: SubscriptionRow) -> PlanFacts:
        plan = self._plan_row(sub.plan_code)
        return PlanFacts(
            code=plan.code,
            interval=Interval(plan.interval_months),
            price=self.money(sub.price_minor),
            commitment_months=plan.commitment_months,
        )

    def payment(self, payment: PaymentRow) -> PaymentFacts:
        invoice = self.session.get_one(InvoiceRow, payment.invoice_id)
        period = None
        period_price = None
        item = ItemKind.SUBSCRIPTION
        discount_minor = 0
        if invoice.purpose == "product":
            line = self.session.scalar(
                select(InvoiceLineRow).where(InvoiceLineRow.invoice_id == invoice.id)
            )
            kind = line.description.split(":", 1)[0] if line is not None else "add_on"
            item = ItemKind(kind) if kind in ItemKind.__members__.values() else ItemKind.ADD_ON
        elif invoice.period_start is not None and invoice.period_end is not None:
            period = Period(self.local(invoice.period_start), self.local(invoice.period_end))
            period_price = self.money(invoice.total_minor)
            discount_minor = -sum(
                self.session.scalars(
                    select(InvoiceLineRow.amount_minor).where(
                        InvoiceLineRow.invoice_id == invoice.id, InvoiceLineRow.kind == "credit"
                    )
                )
            )
        return PaymentFacts(
            number=payment.number,
            at=self.local(payment.at),
            amount=self.money(payment.settled_minor),
            refunded=self.money(payment.settled_refunded_minor),
            method=payment.method,
            item=item,
            is_duplicate=payment.is_duplicate,
            overcharge=self._overcharge_left(invoice),
            period=period,
            period_price=period_price,
            discount=self.money(discount_minor) if period is not None and discount_minor else None,
            is_renewal=self._is_renewal(invoice),
            subscription_id=invoice.subscription_id,
            refunded_unused=self._refunded_unused(payment),
        )

    def _is_renewal(self, invoice: InvoiceRow) -> bool:
        """An automatic renewal charge: the invoice of a subscription period after the
        subscription's first (which starts at its anchor). The customer's payment number
        says nothing about it: a sign-up after an earlier purchase is no renewal."""
        if invoice.purpose != "subscription" or invoice.subscription_id is None:
            return False
        sub = self.session.get_one(SubscriptionRow, invoice.subscription_id)
        return invoice.period_start is not None and invoice.period_start > sub.anchor

    def _refunded_unused(self, payment: PaymentRow) -> Money | None:
        """What refunds of ``payment`` gave back for unused time, in the merchant's currency
        (as reserved on the payment): a cancellation's refund (it has no request) and
        refunds of ``UNUSED_TIME_KINDS`` requests; a refund that failed gave nothing back.
        Compensation for time that was used (an outage) is left out."""
        if not payment.settled_refunded_minor:
            return None
        total = self.session.scalar(
            select(
                func.coalesce(
                    func.sum(
                        func.coalesce(GatewayOperationRow.settled_minor, RefundRow.amount_minor)
                    ),
                    0,
                )
            )
            .select_from(RefundRow)
            .outerjoin(RequestRow, RequestRow.id == RefundRow.request_id)
            .outerjoin(GatewayOperationRow, GatewayOperationRow.refund_id == RefundRow.id)
            .where(
                RefundRow.payment_id == payment.id,
                RefundRow.status != RefundStatus.FAILED,
                or_(
                    RefundRow.request_id.is_(None),
                    RequestRow.kind.in_([str(k) for k in UNUSED_TIME_KINDS]),
                ),
            )
        )
        return self.money(int(total)) if total else None

    def _overcharge_left(self, invoice: InvoiceRow) -> Money | None:
        """The overcharge recorded inside the invoice's own payments (``overcharge_minor``:
        no money of its own) less what billing-error refunds of those payments already gave
        back: an overcharge is corrected once. Money taken in excess as a payment of its own
        (``is_duplicate``, what ``accounts.billing_mistake`` charges) is not counted here: it
        is corrected on that payment, whose unrefunded amount is its ceiling."""
        if not invoice.overcharge_minor:
            return None
        corrected = (
            self.session.scalar(
                select(func.coalesce(func.sum(RefundRow.amount_minor + RefundRow.fee_minor), 0))
                .join(RequestRow, RequestRow.id == RefundRow.request_id)
                .join(PaymentRow, PaymentRow.id == RefundRow.payment_id)
                .where(
                    PaymentRow.invoice_id == invoice.id,
                    PaymentRow.is_duplicate.is_(False),
                    RequestRow.kind.in_(("billing_error", "overpayment")),
                )
            )
            or 0
        )
        return self.money(max(0, invoice.overcharge_minor - int(corrected)))

    def subscription(self, sub: SubscriptionRow) -> SubscriptionFacts:
        payments = self.session.scalars(
            select(PaymentRow)
            .join(InvoiceRow, InvoiceRow.id == PaymentRow.invoice_id)
            .where(InvoiceRow.subscription_id == sub.id, PaymentRow.is_duplicate.is_(False))
            .order_by(PaymentRow.number)
        ).all()
        plan = self.plan(sub)
        commitment_end = None
        if plan.commitment_months:
            term = Interval(plan.commitment_months)
            commitment_end = period_containing(self.local(sub.anchor), term, self.now).end
        return SubscriptionFacts(
            id=sub.id,
            plan=plan,
            anchor=self.local(sub.anchor),
            current_period=Period(
                self.local(sub.current_period_start), self.local(sub.current_period_end)
            ),
            status=sub.status,
            is_first=sub.is_first,
            commitment_end=commitment_end,
            cancel_at=self.local(sub.cancel_at) if sub.cancel_at else None,
            payments=tuple(self.payment(p) for p in payments),
        )

    def customer(self, customer: CustomerRow) -> CustomerFacts:
        def loc(value: datetime | None) -> datetime | None:
            return self.local(value) if value is not None else None

        return CustomerFacts(
            type=customer.type,
            acquisition=customer.acquisition,
            flags=frozenset(customer.flags or ()),
            in_violation=customer.in_violation,
            terms_notice_at=loc(customer.terms_notice_at),
            terms_declined_at=loc(customer.terms_declined_at),
            written_cancel_at=loc(customer.written_cancel_at),
        )
