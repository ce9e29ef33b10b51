"""Chargebacks, violations, account closure and data retention."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.facts import Merchant
from fairbill.decisions.reasons import Reason
from fairbill.lifecycle import DisputeStatus
from fairbill.money import Money
from fairbill.policy.model import AccountClosure, DataRetention, Disputes, Violations


@dataclass(frozen=True, slots=True)
class Consequence:
    decision: Decision
    suspend: bool = False
    terminate: bool = False
    forfeit_credits: bool = False


def decide_chargeback(m: Merchant, amount: Money, contacted_support_first: bool) -> Consequence:
    rule = m.policy.first(Disputes)
    if rule is not None and rule.suspend_if_support_not_contacted and not contacted_support_first:
        d = Decision(
            action="chargeback",
            outcome=DecisionOutcome.APPROVED,
            amount=amount,
            reasons=(Reason.DISPUTE_SUSPENDED_NO_CONTACT,),
            clauses=(rule.id,),
            explanation=f"A chargeback of {m.fmt(amount)} was opened without "
            "contacting support first: the account is suspended at once.",
        )
        return Consequence(d, suspend=True)
    d = Decision(
        action="chargeback",
        outcome=DecisionOutcome.APPROVED,
        amount=amount,
        reasons=(Reason.DISPUTE_RECORDED,),
        clauses=(rule.id,) if rule else (),
        explanation=f"A chargeback of {m.fmt(amount)} is recorded; service continues "
        "while the bank decides.",
    )
    return Consequence(d)


def decide_dispute_closed(m: Merchant, amount: Money, outcome: str) -> Decision:
    rule = m.policy.first(Disputes)
    clauses = (rule.id,) if rule else ()
    if outcome == DisputeStatus.LOST:
        return Decision(
            action="dispute_closed",
            outcome=DecisionOutcome.APPROVED,
            amount=amount,
            reasons=(Reason.DISPUTE_LOST,),
            clauses=clauses,
            explanation=f"The bank decided for the customer: {m.fmt(amount)} was "
            "returned to them through the dispute.",
        )
    extra = ""
    if rule is not None and rule.terminate_if_unjustified == "review":
        extra = " The chargeback was unjustified; terminating the account is left to a reviewer."
    return Decision(
        action="dispute_closed",
        outcome=DecisionOutcome.APPROVED,
        amount=m.zero(),
        reasons=(Reason.DISPUTE_WON,),
        clauses=clauses,
        explanation="The bank decided for the merchant; the charge stands." + extra,
    )


def decide_violation(m: Merchant, kind: str) -> Consequence:
    rule = m.policy.first(Violations)
    if rule is None:
        d = Decision(
            action="violation",
            outcome=DecisionOutcome.APPROVED,
            amount=m.zero(),
            reasons=(Reason.VIOLATION_RECORDED,),
            explanation=f"A violation ({kind}) is recorded on the account; refund "
            "requests may be declined on that ground.",
        )
        return Consequence(d)
    terminate = rule.action == "terminate"
    d = Decision(
        action="violation",
        outcome=DecisionOutcome.APPROVED,
        amount=m.zero(),
        reasons=(Reason.VIOLATION_TERMINATED if terminate else Reason.VIOLATION_SUSPENDED,),
        clauses=(rule.id,),
        explanation=f"Violation of the terms ({kind}): the subscription is "
        f"{'terminated' if terminate else 'suspended'} at once with no "
        "refund" + (", and all credits are forfeited." if rule.forfeit_credits else "."),
    )
    return Consequence(
        d, suspend=not terminate, terminate=terminate, forfeit_credits=rule.forfeit_credits
    )


def decide_closure(m: Merchant) -> Consequence:
    rule = m.policy.first(AccountClosure)
    d = Decision(
        action="close_account",
        outcome=DecisionOutcome.APPROVED,
        amount=m.zero(),
        reasons=(Reason.CLOSURE_AS_CANCELLATION,),
        clauses=(rule.id,) if rule else (),
        explanation="Closing the account is treated as a cancellation; no refund for "
        "the remaining time"
        + (
            ", and unused credits are forfeited."
            if rule is not None and rule.forfeit_credits
            else "."
        ),
    )
    return Consequence(d, forfeit_credits=rule is not None and rule.forfeit_credits)


def retention_until(m: Merchant, ended: str, at: datetime) -> tuple[datetime | None, str | None]:
    """When data is deleted after the service ended at ``at`` by ``ended`` (cancellation,
    suspension, termination, closure); None when the policy keeps no limit."""
    rule = m.policy.first(DataRetention)
    if rule is None:
        return None, None
    days = {
        "cancellation": rule.after_cancellation_days,
        "suspension": rule.after_suspension_days,
        "termination": rule.after_termination_days,
        "closure": rule.after_closure_days,
    }.get(ended)
    if days is None:
        return None, None
    return at + timedelta(days=days), rule.id
