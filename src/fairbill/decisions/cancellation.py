"""Cancellation: when it takes effect and what it refunds.

Branching at the top (guarantee, immediate, scheduled), pure leaves below. The service
applies the result: it stops renewal at ``ends_at`` (or ends service now) and pays each
``PaymentRefund``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from fairbill.calendar.periods import Interval, period_containing, period_index
from fairbill.calendar.proration import remaining_days
from fairbill.calendar.windows import within_days
from fairbill.decisions.decision import Decision, DecisionOutcome, PaymentRefund
from fairbill.decisions.explain import plural, share_sentence
from fairbill.decisions.facts import Merchant, PaymentFacts, SubscriptionFacts
from fairbill.decisions.reasons import Reason
from fairbill.lifecycle import ENDED
from fairbill.money import Money, money_sum
from fairbill.policy.model import (
    CancellationRefund,
    CancellationTiming,
    Destination,
    MoneyBackGuarantee,
    RefundBasis,
)


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    decision: Decision
    ends_at: datetime
    ends_now: bool
    refunds: tuple[PaymentRefund, ...] = ()


def decide_cancel(
    m: Merchant,
    sub: SubscriptionFacts,
    now: datetime,
    *,
    immediately: bool = False,
    for_downgrade: bool = False,
) -> CancelOutcome:
    """``for_downgrade``: the cancellation half of a downgrade (Kalenner). The customer
    stays, so the money-back guarantee does not apply: the current period runs to its end
    and the lower plan starts then."""
    if sub.status in ENDED or sub.cancel_at is not None:
        return _already(m, sub, now)
    guarantee = None if for_downgrade else _guarantee(m, sub, now)
    if guarantee is not None:
        return guarantee
    timing = m.policy.first(CancellationTiming)
    if immediately and timing is not None and timing.immediate_option:
        return _immediate(m, sub, now, timing)
    return _scheduled(m, sub, now, timing, immediately_refused=immediately)


def _already(m: Merchant, sub: SubscriptionFacts, now: datetime) -> CancelOutcome:
    ends_at = sub.cancel_at or now
    decision = Decision(
        action="cancel",
        outcome=DecisionOutcome.DECLINED,
        amount=m.zero(),
        reasons=(Reason.ALREADY_CANCELED,),
        explanation=f"The subscription is already canceled (ends {m.day(ends_at)}).",
    )
    return CancelOutcome(decision, ends_at, ends_now=False)


def guarantee_applies(
    m: Merchant, g: MoneyBackGuarantee, sub: SubscriptionFacts, now: datetime
) -> Reason | None:
    """None when the guarantee covers a cancellation/request now, else why it does not."""
    if g.first_purchase_only and not sub.is_first:
        return Reason.GUARANTEE_NOT_FIRST_PURCHASE
    start = sub.anchor
    if g.window_from == "payment" and sub.payments:
        start = sub.payments[-1].at
    if not within_days(start, now, g.window_days, m.tz):
        return Reason.GUARANTEE_WINDOW_EXPIRED
    return None


def guarantee_refunds(sub: SubscriptionFacts) -> tuple[PaymentRefund, ...]:
    """ "Un remboursement à 100%" (interpretation.md): everything paid for the subscription
    inside the window — the initial payment and any upgrade charged since — less what was
    already refunded of each. Every payment so far is inside the window, since the
    guarantee is asked about only while it runs. The same whether the customer cancels or
    asks support for the money back naming any one of those payments."""
    return tuple(
        PaymentRefund(p.number, p.refundable) for p in sub.payments if not p.refundable.is_zero
    )


def _guarantee(m: Merchant, sub: SubscriptionFacts, now: datetime) -> CancelOutcome | None:
    for g in m.policy.clauses_of(MoneyBackGuarantee):
        if g.via != "cancel" or guarantee_applies(m, g, sub, now) is not None:
            continue
        refunds = guarantee_refunds(sub)
        total = money_sum((r.amount for r in refunds), m.currency)
        ends_now = g.ends_service == "immediately"
        ends_at = now if ends_now else sub.current_period.end
        decision = Decision(
            action="cancel",
            outcome=DecisionOutcome.APPROVED,
            amount=total,
            destination=Destination.ORIGINAL_METHOD,
            reasons=(Reason.GUARANTEE_FULL_REFUND, Reason.CANCEL_IMMEDIATE),
            clauses=(g.id,),
            explanation=(
                f"Canceled on {m.day(now)}, within the {g.window_days}-day guarantee from "
                f"the subscription on {m.day(sub.anchor)}: the subscription ends now and "
                f"{m.fmt(total)} is refunded in full."
            ),
            service_ends_at=ends_at,
        )
        return CancelOutcome(decision, ends_at, ends_now, refunds)
    return None


def _immediate(
    m: Merchant, sub: SubscriptionFacts, now: datetime, timing: CancellationTiming
) -> CancelOutcome:
    clauses = [timing.id]
    refunds: tuple[PaymentRefund, ...] = ()
    amount = m.zero()
    explanation = f"Canceled on {m.day(now)} with immediate effect."
    reasons = [Reason.CANCEL_IMMEDIATE]
    rule = _refund_rule(m, sub, immediate=True)
    paid = _period_payments(sub, now)
    if rule is not None and rule.refund == RefundBasis.UNUSED_DAYS and paid:
        clauses.append(rule.id)
        price = price_paid(sub, now)
        share = remaining_days(sub.current_period, now)
        computed = share.of(price).round(m.rounding)
        amount = min_money(computed, refundable_total(paid, m.currency))
        refunds = _spread(amount, paid)
        explanation, reasons = _capped(
            m,
            computed,
            amount,
            explanation
            + " Unused days refunded: "
            + share_sentence(m, price, share.numerator_days, share.period_days, "days", computed)
            + ".",
            [*reasons, Reason.REFUND_UNUSED_DAYS],
        )
    decision = Decision(
        action="cancel",
        outcome=DecisionOutcome.APPROVED,
        amount=amount,
        destination=Destination.ORIGINAL_METHOD if amount else None,
        reasons=tuple(reasons),
        clauses=tuple(clauses),
        explanation=explanation,
        service_ends_at=now,
    )
    return CancelOutcome(decision, now, ends_now=True, refunds=refunds)


def _scheduled(
    m: Merchant,
    sub: SubscriptionFacts,
    now: datetime,
    timing: CancellationTiming | None,
    *,
    immediately_refused: bool,
) -> CancelOutcome:
    ends_at, reasons, sentence = _effective_end(m, sub, now, timing)
    if immediately_refused:
        reasons = (Reason.CANCEL_IMMEDIATE_NOT_OFFERED, *reasons)
    clauses = [timing.id] if timing is not None else []
    refunds: tuple[PaymentRefund, ...] = ()
    amount = m.zero()
    rule = _refund_rule(m, sub, immediate=False)
    if rule is not None:
        clauses.append(rule.id)
        if rule.refund == RefundBasis.FULL_REMAINING_MONTHS:
            computed, refund_reason, text = _remaining_months(m, sub, now, ends_at)
            paid = _period_payments(sub, now)
            amount = min_money(computed, refundable_total(paid, m.currency))
            refunds = _spread(amount, paid)
            sentence, more = _capped(
                m, computed, amount, f"{sentence} {text}", [*reasons, refund_reason]
            )
            reasons = tuple(more)
        else:
            reasons = (*reasons, Reason.NO_REFUND_CURRENT_PERIOD)
            sentence += " No refund is due for the current period."
    decision = Decision(
        action="cancel",
        outcome=DecisionOutcome.APPROVED,
        amount=amount,
        destination=Destination.ORIGINAL_METHOD if amount else None,
        reasons=reasons,
        clauses=tuple(clauses),
        explanation=sentence,
        service_ends_at=ends_at,
    )
    return CancelOutcome(decision, ends_at, ends_now=False, refunds=refunds)


def _effective_end(
    m: Merchant, sub: SubscriptionFacts, now: datetime, timing: CancellationTiming | None
) -> tuple[datetime, tuple[Reason, ...], str]:
    effective = timing.effective if timing is not None else "end_of_period"
    if effective == "end_of_month_period":
        end = period_containing(sub.anchor, Interval.month(), now).end
        return (
            end,
            (Reason.CANCEL_AT_MONTH_PERIOD_END,),
            (
                f"Canceled on {m.day(now)}: access continues to the end of the current monthly "
                f"period, {m.day(end)}."
            ),
        )
    end = sub.current_period.end
    reason = Reason.CANCEL_AT_PERIOD_END
    if effective == "end_of_commitment" and sub.commitment_end is not None:
        end = max(sub.commitment_end, end)
        reason = Reason.CANCEL_AT_COMMITMENT_END
    reasons: tuple[Reason, ...] = (reason,)
    if (
        timing is not None
        and timing.cutoff_before_renewal
        and end == sub.current_period.end
        and m.day(now) == m.day(end)
    ):
        # Cancelling on the renewal date itself: the renewal happens, then the cancellation.
        end = _next_period_end(sub)
        reasons = (Reason.CANCEL_AFTER_RENEWAL_CUTOFF, reason)
    return (
        end,
        reasons,
        (
            f"Canceled on {m.day(now)}: the subscription stays active until {m.day(end)} and "
            f"does not renew."
        ),
    )


def _next_period_end(sub: SubscriptionFacts) -> datetime:
    from fairbill.calendar.periods import period_at

    index = period_index(sub.anchor, sub.plan.interval, sub.current_period.start)
    return period_at(sub.anchor, sub.plan.interval, index + 1).end


def _refund_rule(
    m: Merchant, sub: SubscriptionFacts, *, immediate: bool
) -> CancellationRefund | None:
    for rule in m.policy.clauses_of(CancellationRefund):
        if rule.intervals and sub.plan.interval_name not in rule.intervals:
            continue
        if rule.when == "immediate" and not immediate:
            continue
        return rule
    return None


def _remaining_months(
    m: Merchant, sub: SubscriptionFacts, now: datetime, ends_at: datetime
) -> tuple[Money, Reason, str]:
    """Whole months of the billing period left after the monthly period that ends at
    ``ends_at``, refunded at ``price × months / months_in_period``."""
    months_total = sub.plan.interval.months
    billing_index = period_index(sub.anchor, sub.plan.interval, now)
    billing_end_month = (billing_index + 1) * months_total
    ends_month = period_index(sub.anchor, Interval.month(), ends_at)
    months = max(0, billing_end_month - ends_month)
    price = price_paid(sub, now)
    if months == 0:
        return m.zero(), Reason.NO_FULL_MONTHS_REMAIN, "No full month remains to refund."
    amount = price.ratio(months, months_total).round(m.rounding)
    text = (
        f"The {plural(months, 'full month')} left after that are refunded: "
        + share_sentence(m, price, months, months_total, "months", amount)
        + "."
    )
    return amount, Reason.REFUND_REMAINING_MONTHS, text


def price_paid(sub: SubscriptionFacts, now: datetime) -> Money:
    """The period's price as the customer pays it: the plan price now in force (after any
    upgrade) less the promotional discount on the period's invoice, which is never paid
    out as cash."""
    payment = sub.payment_for(now)
    discount = payment.discount if payment is not None else None
    return sub.plan.price - discount if discount is not None else sub.plan.price


def _capped(
    m: Merchant, computed: Money, amount: Money, text: str, reasons: Sequence[Reason]
) -> tuple[str, list[Reason]]:
    """Say so when the ceiling (what is left of the payments) cut the computed refund."""
    out = list(reasons)
    if amount >= computed:
        return text, out
    if amount.is_zero:
        out.append(Reason.NOTHING_LEFT_TO_REFUND)
        return text + " Nothing is left to refund on the payments for this period.", out
    out.append(Reason.CAPPED_AT_AMOUNT_PAID)
    return (
        text + f" Capped at {m.fmt(amount)}, what is left of the payments after earlier refunds.",
        out,
    )


def _period_payments(sub: SubscriptionFacts, now: datetime) -> tuple[PaymentFacts, ...]:
    """Payments for the billing period containing ``now``: the period's charge and any
    prorated upgrade charged during it, newest first."""
    period = sub.payment_for(now)
    if period is None or period.period is None:
        return ()
    start = period.period.start
    found = [p for p in sub.payments if p.at >= start or p is period]
    return tuple(sorted(found, key=lambda p: p.at, reverse=True))


def _spread(amount: Money, payments: tuple[PaymentFacts, ...]) -> tuple[PaymentRefund, ...]:
    """Refund ``amount`` against the newest payments first, never beyond what each has left."""
    left = amount
    out: list[PaymentRefund] = []
    for payment in payments:
        if left.is_zero:
            break
        take = min_money(left, payment.refundable)
        if take:
            out.append(PaymentRefund(payment.number, take))
            left = left - take
    return tuple(out)


def min_money(a: Money, b: Money) -> Money:
    return a if a <= b else b


def refundable_total(payments: tuple[PaymentFacts, ...], currency: str) -> Money:
    return money_sum((p.refundable for p in payments), currency)
