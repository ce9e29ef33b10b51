"""Facts a decision needs, gathered by the services from storage. Plain frozen values.

Invariants: every instant is timezone-aware; money is ``Money`` in the merchant currency
(unless a field says otherwise); ``refunded`` never exceeds ``amount``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from fairbill.calendar.periods import Interval, Period
from fairbill.money import Money, Rounding
from fairbill.policy.model import ItemKind, Policy, RequestKind


@dataclass(frozen=True, slots=True)
class Merchant:
    policy: Policy
    tz: ZoneInfo
    country: str
    currency: str

    @property
    def rounding(self) -> Rounding:
        return self.policy.rounding

    def zero(self) -> Money:
        return Money.zero(self.currency)

    def fmt(self, money: Money) -> str:
        return money.format("en", self.policy.rounding)  # rounded once, the merchant's way

    def day(self, instant: datetime) -> str:
        return instant.astimezone(self.tz).date().isoformat()


@dataclass(frozen=True, slots=True)
class PlanFacts:
    code: str
    interval: Interval
    price: Money
    commitment_months: int | None = None

    @property
    def interval_name(self) -> str:
        if self.interval.months == 1:
            return "month"
        return "year" if self.interval.months == 12 else "multi_month"


# Request kinds whose refund gives back time not yet used (a guarantee, cooling-off, an
# unused period, terms declined): deciding one ends the service (scenario contract), and
# what it paid counts against a later refund of unused days of the same payment.
UNUSED_TIME_KINDS = frozenset(
    {
        RequestKind.MONEY_BACK,
        RequestKind.UNUSED_PERIOD,
        RequestKind.COOLING_OFF,
        RequestKind.TERMS_DECLINED,
    }
)


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    number: int
    at: datetime
    amount: Money
    refunded: Money
    method: str
    item: ItemKind = ItemKind.SUBSCRIPTION
    is_duplicate: bool = False
    overcharge: Money | None = None  # recorded billing mistake on the paid invoice
    period: Period | None = None  # the subscription period this payment paid for
    period_price: Money | None = None  # what was billed for that period (after discounts)
    discount: Money | None = None  # promotional discount on that period's invoice
    is_renewal: bool = False  # an automatic renewal: the charge of a period after the first
    is_initial: bool = False  # the first payment of the customer's first subscription
    subscription_id: int | None = None
    # The part of ``refunded`` that gave back unused time (a cancellation's refund, a refund
    # of one of ``UNUSED_TIME_KINDS``); None: nothing. Compensation for time that was used
    # (a disruption) is not part of it: it is bounded by the ceiling alone.
    refunded_unused: Money | None = None

    @property
    def refundable(self) -> Money:
        return self.amount - self.refunded


@dataclass(frozen=True, slots=True)
class SubscriptionFacts:
    id: int
    plan: PlanFacts
    anchor: datetime
    current_period: Period
    status: str  # a ``SubscriptionStatus`` value, as the row stores it
    is_first: bool
    commitment_end: datetime | None = None
    cancel_at: datetime | None = None
    payments: tuple[PaymentFacts, ...] = ()  # non-duplicate payments, in time order

    def payment_for(self, instant: datetime) -> PaymentFacts | None:
        """The last payment for a period containing ``instant`` (subscription charges)."""
        found = None
        for payment in self.payments:
            if payment.period is not None and payment.period.contains(instant):
                found = payment
        return found


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    type: str = "business"
    acquisition: str = "self_serve"
    flags: frozenset[str] = frozenset()
    in_violation: bool = False
    terms_notice_at: datetime | None = None
    terms_declined_at: datetime | None = None
    written_cancel_at: datetime | None = None
    payment_methods: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OutageFacts:
    start: datetime
    end: datetime
    cause: str
    reported_at: datetime | None


@dataclass(frozen=True, slots=True)
class RequestFacts:
    kind: RequestKind
    at: datetime
    reason: str | None = None
    payment: PaymentFacts | None = None
    refund_to: str | None = None
    documents: tuple[str, ...] = ()
    order_numbers: tuple[str, ...] = ()
    used_since_payment: bool = False
    used_since: datetime | None = None
    subscription: SubscriptionFacts | None = None
    outage: OutageFacts | None = None
    # Every paid period an outage touches (a long outage can cross a renewal).
    covering: tuple[PaymentFacts, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)
