"""Plan changes (decided by price) and usage-tier moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fairbill.calendar.proration import DayShare, remaining_days
from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.explain import share_sentence
from fairbill.decisions.facts import Merchant, SubscriptionFacts
from fairbill.decisions.reasons import Reason
from fairbill.money import Money
from fairbill.policy.model import PlanChange, UsageTiers


@dataclass(frozen=True, slots=True)
class ChangeOutcome:
    decision: Decision
    mode: str  # "immediate" | "end_of_period" | "cancel_and_resubscribe" | "none"
    charge: Money  # prorated difference invoiced now (upgrades)
    share: DayShare | None = None


def decide_plan_change(
    m: Merchant, sub: SubscriptionFacts, new_price: Money, new_plan: str, now: datetime
) -> ChangeOutcome:
    rule = m.policy.first(PlanChange)
    clauses = (rule.id,) if rule else ()
    old_price = sub.plan.price
    if new_price > old_price:
        if rule is not None and rule.upgrade == "end_of_period":
            return _at_period_end(m, sub, new_plan, clauses, Reason.DOWNGRADE_AT_PERIOD_END)
        share = remaining_days(sub.current_period, now)
        diff = new_price - old_price
        charge = share.of(diff).round(m.rounding)
        text = (
            f"Upgrade to {new_plan} on {m.day(now)} takes effect now; the difference for "
            f"the rest of the period is charged: "
            + share_sentence(m, diff, share.numerator_days, share.period_days, "days", charge)
            + f". The billing date stays {m.day(sub.current_period.end)}."
        )
        d = Decision(
            action="change_plan",
            outcome=DecisionOutcome.APPROVED,
            amount=charge,
            reasons=(Reason.UPGRADE_PRORATED,),
            clauses=clauses,
            explanation=text,
        )
        return ChangeOutcome(d, "immediate", charge, share)
    if new_price == old_price:
        d = Decision(
            action="change_plan",
            outcome=DecisionOutcome.APPROVED,
            amount=m.zero(),
            reasons=(Reason.SAME_PRICE_CHANGE,),
            clauses=clauses,
            explanation=f"Switched to {new_plan} at the same price; nothing to charge.",
        )
        return ChangeOutcome(d, "immediate", m.zero())
    if rule is not None and rule.downgrade == "cancel_and_resubscribe":
        d = Decision(
            action="change_plan",
            outcome=DecisionOutcome.APPROVED,
            amount=m.zero(),
            reasons=(Reason.DOWNGRADE_AS_CANCEL_AND_RESUBSCRIBE,),
            clauses=clauses,
            explanation=f"A downgrade is a cancellation of the current plan and a new "
            f"subscription to {new_plan} starting when the current period "
            "ends.",
        )
        return ChangeOutcome(d, "cancel_and_resubscribe", m.zero())
    return _at_period_end(m, sub, new_plan, clauses, Reason.DOWNGRADE_AT_PERIOD_END)


def _at_period_end(
    m: Merchant, sub: SubscriptionFacts, new_plan: str, clauses: tuple[str, ...], reason: Reason
) -> ChangeOutcome:
    d = Decision(
        action="change_plan",
        outcome=DecisionOutcome.APPROVED,
        amount=m.zero(),
        reasons=(reason,),
        clauses=clauses,
        explanation=f"The change to {new_plan} takes effect at the end of the current "
        f"period, {m.day(sub.current_period.end)}; no refund for the "
        "difference.",
    )
    return ChangeOutcome(d, "end_of_period", m.zero())


def decide_tier_move(
    m: Merchant, sub: SubscriptionFacts, new_price: Money, since: datetime, now: datetime
) -> ChangeOutcome:
    """A usage reading moved the plan to another tier price. Up: invoice the prorated
    difference at once. Down: a credit note prorated from the day usage fell (``since``)."""
    rule = m.policy.first(UsageTiers)
    clauses = (rule.id,) if rule else ()
    old_price = sub.plan.price
    share = remaining_days(sub.current_period, since)
    if new_price == old_price:
        d = Decision(
            action="usage",
            outcome=DecisionOutcome.APPROVED,
            amount=m.zero(),
            reasons=(Reason.TIER_UNCHANGED,),
            clauses=clauses,
            explanation="Usage stays within the current tier.",
        )
        return ChangeOutcome(d, "none", m.zero())
    diff = abs(new_price - old_price)
    amount = share.of(diff).round(m.rounding)
    calc = share_sentence(m, diff, share.numerator_days, share.period_days, "days", amount)
    if new_price > old_price:
        d = Decision(
            action="usage",
            outcome=DecisionOutcome.APPROVED,
            amount=amount,
            reasons=(Reason.TIER_UP_PRORATED,),
            clauses=clauses,
            explanation=f"Usage exceeded the tier limit on {m.day(since)}: the plan "
            f"moves up to {m.fmt(new_price)} and the rest of the period is "
            f"billed pro rata: {calc}.",
        )
        return ChangeOutcome(d, "immediate", amount, share)
    if rule is not None and rule.down == "none":
        d = Decision(
            action="usage",
            outcome=DecisionOutcome.APPROVED,
            amount=m.zero(),
            reasons=(Reason.TIER_UNCHANGED,),
            clauses=clauses,
            explanation="Usage fell below the tier; the policy gives no credit.",
        )
        return ChangeOutcome(d, "none", m.zero())
    d = Decision(
        action="usage",
        outcome=DecisionOutcome.APPROVED,
        amount=amount,
        reasons=(Reason.TIER_DOWN_CREDIT_NOTE,),
        clauses=clauses,
        explanation=f"Usage fell below the tier on {m.day(since)} (detected "
        f"{m.day(now)}): the plan moves down to {m.fmt(new_price)} and a "
        f"credit note for the rest of the period goes to the next "
        f"invoice: {calc}.",
    )
    return ChangeOutcome(d, "credit_note", amount, share)
