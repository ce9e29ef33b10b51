"""Prepaid credits: validity, failed-delivery returns and forfeiture."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fairbill.calendar.periods import localize
from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.facts import Merchant
from fairbill.decisions.reasons import Reason
from fairbill.policy.model import PrepaidCredits


def credit_expiry(m: Merchant, purchased_at: datetime) -> datetime | None:
    """The instant credits bought at ``purchased_at`` expire: the same local time
    ``validity_days`` later."""
    rule = m.policy.first(PrepaidCredits)
    if rule is None or rule.validity_days is None:
        return None
    tz: ZoneInfo = m.tz
    local = purchased_at.astimezone(tz).replace(tzinfo=None) + timedelta(days=rule.validity_days)
    return localize(local, tz)


def decide_expiry(m: Merchant, kind: str, remaining: int) -> Decision:
    rule = m.policy.first(PrepaidCredits)
    return Decision(
        action="expiry",
        outcome=DecisionOutcome.APPROVED,
        amount=m.zero(),
        reasons=(Reason.CREDITS_EXPIRED,),
        clauses=(rule.id,) if rule else (),
        explanation=f"{remaining} unused {kind} credits expired"
        + (f" {rule.validity_days} days after purchase" if rule and rule.validity_days else "")
        + "; expired credits are not refunded or extended.",
    )


def decide_failed_delivery(m: Merchant, failure: str, quantity: int) -> tuple[Decision, int]:
    """How many credits go back for ``quantity`` failed sends, and why."""
    rule = m.policy.first(PrepaidCredits)
    treatment = rule.failed_delivery.get(failure, "none") if rule else "none"  # type: ignore[call-overload]
    clauses = (rule.id,) if rule else ()
    label = failure.replace("_", " ")
    if treatment == "return":
        return Decision(
            action="failed_delivery",
            outcome=DecisionOutcome.APPROVED,
            amount=m.zero(),
            reasons=(Reason.FAILED_DELIVERY_CREDITS_RETURNED,),
            clauses=clauses,
            explanation=f"{quantity} messages failed because of {label} issues on "
            "the platform's side: the credits are returned.",
        ), quantity
    if treatment == "review":
        return Decision(
            action="failed_delivery",
            outcome=DecisionOutcome.NEEDS_REVIEW,
            amount=m.zero(),
            reasons=(Reason.FAILED_DELIVERY_AT_DISCRETION,),
            clauses=clauses,
            explanation=f"{quantity} messages failed because of {label} issues: "
            "returning the credits is at the merchant's discretion.",
        ), 0
    return Decision(
        action="failed_delivery",
        outcome=DecisionOutcome.DECLINED,
        amount=m.zero(),
        reasons=(Reason.FAILED_DELIVERY_NOT_RETURNED,),
        clauses=clauses,
        explanation=f"{quantity} messages failed ({label}): credits are not "
        "returned for this cause.",
    ), 0


def forfeits_credits(m: Merchant, event: str) -> str | None:
    """The clause id under which credits are forfeited on ``event``, if they are."""
    rule = m.policy.first(PrepaidCredits)
    if rule is not None and event in rule.forfeit_on:
        return rule.id
    return None
