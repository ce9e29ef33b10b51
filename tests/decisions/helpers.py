"""Builders for the facts the pure decision functions take, written by hand in tests.

Every builder works in the merchant's local time (``local(m, 2026, 3, 1, 10)``) and in
the merchant's currency (``eur(m, "29.00")`` is ``Money("29.00", m.currency)``), so a test
reads like the seed sentence it checks.
"""

from __future__ import annotations

from datetime import datetime

from fairbill.calendar.periods import Interval, Period, localize, period_at, period_index
from fairbill.decisions.facts import (
    CustomerFacts,
    Merchant,
    OutageFacts,
    PaymentFacts,
    PlanFacts,
    RequestFacts,
    SubscriptionFacts,
)
from fairbill.money import Money
from fairbill.policy.load import bundled_policy
from fairbill.policy.model import ItemKind, RequestKind

POLICY_IDS = ("qomon", "voip", "conek", "emailconsul", "kalenner")
CARD = "card_1"


def merchant(policy_id: str) -> Merchant:
    """The merchant running a bundled policy with the policy's own tz, country, currency."""
    from zoneinfo import ZoneInfo

    policy = bundled_policy(policy_id)
    return Merchant(
        policy=policy,
        tz=ZoneInfo(policy.timezone),
        country=policy.country,
        currency=policy.currency,
    )


def local(m: Merchant, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in the merchant's timezone."""
    return localize(datetime(year, month, day, hour, minute), m.tz)


def cash(m: Merchant, text: str) -> Money:
    return Money(text, m.currency)


def payment(
    m: Merchant,
    number: int,
    at: datetime,
    amount: str | Money,
    *,
    refunded: str | Money = "0",
    refunded_unused: str | None = None,
    method: str = CARD,
    item: ItemKind = ItemKind.SUBSCRIPTION,
    period: Period | None = None,
    period_price: Money | None = None,
    discount: str | None = None,
    is_duplicate: bool = False,
    overcharge: str | None = None,
    is_renewal: bool = False,
    is_initial: bool = False,
    subscription_id: int | None = None,
) -> PaymentFacts:
    paid = amount if isinstance(amount, Money) else cash(m, amount)
    back = refunded if isinstance(refunded, Money) else cash(m, refunded)
    return PaymentFacts(
        number=number,
        at=at,
        amount=paid,
        refunded=back,
        method=method,
        item=item,
        is_duplicate=is_duplicate,
        overcharge=cash(m, overcharge) if overcharge is not None else None,
        period=period,
        period_price=period_price,
        discount=cash(m, discount) if discount is not None else None,
        is_renewal=is_renewal,
        is_initial=is_initial,
        subscription_id=subscription_id,
        refunded_unused=cash(m, refunded_unused) if refunded_unused is not None else None,
    )


def subscription(
    m: Merchant,
    anchor: datetime,
    price: str,
    now: datetime,
    *,
    months: int = 1,
    is_first: bool = True,
    status: str = "active",
    commitment_months: int | None = None,
    cancel_at: datetime | None = None,
    refunded: dict[int, str] | None = None,
    refunded_unused: dict[int, str] | None = None,
    extra_payments: tuple[PaymentFacts, ...] = (),
    sub_id: int = 1,
) -> SubscriptionFacts:
    """A subscription started at ``anchor`` whose every period up to the one containing
    ``now`` was paid in advance at its start (payment k+1 pays period k). ``refunded``: what
    was refunded of payment k in all; ``refunded_unused``: the part of it that gave back
    unused time (a cancellation's refund, an earlier refund of unused days)."""
    interval = Interval(months)
    amount = cash(m, price)
    current = period_index(anchor, interval, now)
    refunded = refunded or {}
    unused = refunded_unused or {}
    payments = []
    for index in range(current + 1):
        period = period_at(anchor, interval, index)
        payments.append(
            payment(
                m,
                index + 1,
                period.start,
                amount,
                refunded=refunded.get(index + 1, "0"),
                refunded_unused=unused.get(index + 1),
                period=period,
                period_price=amount,
                is_renewal=index > 0,
                is_initial=index == 0 and is_first,
                subscription_id=sub_id,
            )
        )
    commitment_end = None
    if commitment_months:
        term = Interval(commitment_months)
        commitment_end = period_at(anchor, term, period_index(anchor, term, now)).end
    return SubscriptionFacts(
        id=sub_id,
        plan=PlanFacts(
            code="plan", interval=interval, price=amount, commitment_months=commitment_months
        ),
        anchor=anchor,
        current_period=period_at(anchor, interval, current),
        status=status,
        is_first=is_first,
        commitment_end=commitment_end,
        cancel_at=cancel_at,
        payments=(*payments, *extra_payments),
    )


def request(
    kind: RequestKind,
    at: datetime,
    *,
    payment: PaymentFacts | None = None,
    subscription: SubscriptionFacts | None = None,
    reason: str | None = "a reason the customer gave",
    refund_to: str | None = None,
    documents: tuple[str, ...] = (),
    order_numbers: tuple[str, ...] = (),
    used_since_payment: bool = False,
    outage: OutageFacts | None = None,
    covering: tuple[PaymentFacts, ...] = (),
) -> RequestFacts:
    return RequestFacts(
        kind=kind,
        at=at,
        reason=reason,
        payment=payment,
        refund_to=refund_to,
        documents=documents,
        order_numbers=order_numbers,
        used_since_payment=used_since_payment,
        subscription=subscription,
        outage=outage,
        covering=covering,
    )


def customer(
    *,
    type: str = "business",
    acquisition: str = "self_serve",
    flags: frozenset[str] = frozenset(),
    in_violation: bool = False,
    terms_notice_at: datetime | None = None,
    terms_declined_at: datetime | None = None,
    written_cancel_at: datetime | None = None,
) -> CustomerFacts:
    return CustomerFacts(
        type=type,
        acquisition=acquisition,
        flags=flags,
        in_violation=in_violation,
        terms_notice_at=terms_notice_at,
        terms_declined_at=terms_declined_at,
        written_cancel_at=written_cancel_at,
    )


def outage(
    start: datetime, end: datetime, cause: str = "internal", reported_at: datetime | None = None
) -> OutageFacts:
    return OutageFacts(start=start, end=end, cause=cause, reported_at=reported_at)
