"""Failed payments: the retry schedule, suspension after the last try, reactivation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from fairbill.calendar.periods import localize
from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.facts import Merchant
from fairbill.decisions.reasons import Reason
from fairbill.money import Money
from fairbill.policy.model import Dunning

# Where a policy names no schedule, fairbill retries like this before suspending.
DEFAULT_RETRY_OFFSETS_DAYS = (1, 3, 7)


@dataclass(frozen=True, slots=True)
class FailureOutcome:
    decision: Decision
    next_retry_at: datetime | None
    suspend: bool


def retry_offsets(m: Merchant) -> tuple[tuple[int, ...], str | None]:
    rule = m.policy.first(Dunning)
    if rule is None:
        return DEFAULT_RETRY_OFFSETS_DAYS, None
    return tuple(rule.retry_offsets_days), rule.id


def _after_days(instant: datetime, days: int, tz: ZoneInfo) -> datetime:
    local = instant.astimezone(tz).replace(tzinfo=None) + timedelta(days=days)
    return localize(local, tz)


def decide_failure(
    m: Merchant, attempt: int, first_failure: datetime, amount: Money
) -> FailureOutcome:
    """``attempt`` is 1 for the first charge that failed, 2 for the first retry, …"""
    offsets, clause = retry_offsets(m)
    clauses = (clause,) if clause else ()
    if attempt <= len(offsets):
        at = _after_days(first_failure, offsets[attempt - 1], m.tz)
        d = Decision(
            action="payment_failed",
            outcome=DecisionOutcome.APPROVED,
            amount=amount,
            reasons=(Reason.PAYMENT_FAILED_RETRY_SCHEDULED,),
            clauses=clauses,
            explanation=f"Payment of {m.fmt(amount)} failed (attempt {attempt}); "
            f"next try on {m.day(at)}.",
        )
        return FailureOutcome(d, at, suspend=False)
    rule = m.policy.first(Dunning)
    suspend = rule.suspend_after_last if rule else True
    d = Decision(
        action="payment_failed",
        outcome=DecisionOutcome.APPROVED,
        amount=amount,
        reasons=(Reason.PAYMENT_FAILED_SUSPENDED,) if suspend else (),
        clauses=clauses,
        explanation=f"Payment of {m.fmt(amount)} failed on the last attempt "
        f"({attempt}): the subscription is "
        f"{'suspended' if suspend else 'left past due'}.",
    )
    return FailureOutcome(d, None, suspend=suspend)


def decide_reactivation(m: Merchant, amount: Money) -> Decision:
    rule = m.policy.first(Dunning)
    return Decision(
        action="reactivation",
        outcome=DecisionOutcome.APPROVED,
        amount=amount,
        reasons=(Reason.REACTIVATED_ON_PAYMENT,),
        clauses=(rule.id,) if rule else (),
        explanation=f"Outstanding {m.fmt(amount)} paid: the account is reactivated at once.",
    )
