"""A reviewer's decision on a ``needs_review`` request, and appeals.

A reviewer may accept the engine's recommendation, approve another amount, or decline.
Overrides are bounded: never more than the payment's refundable amount, a fee never
above the policy's limit (Qomon's flat fee of at most 18%), and never to the wallet where
the policy binds the refund to the method that paid (EmailConsul's same-method rule,
Qomon's anti-fraud/AML exception on a flagged account).
"""

from __future__ import annotations

from decimal import Decimal

from fairbill.decisions.decision import Decision, DecisionOutcome, Recommendation, payout_outcome
from fairbill.decisions.facts import CustomerFacts, Merchant
from fairbill.decisions.reasons import Reason
from fairbill.decisions.refund import aml_bound
from fairbill.money import Money
from fairbill.policy.model import Appeals, Destination, Fees, Policy, RefundDestination


def decide_review(
    m: Merchant,
    pending: Decision,
    *,
    verdict: str,
    refundable: Money,
    full: Money,
    amount: Money | None = None,
    destination: Destination | None = None,
    fee_percent: Decimal | None = None,
    customer: CustomerFacts = CustomerFacts(),
) -> Decision:
    """``customer``: the account the refund is for (its flags bind the destination); the
    default is an account with no flags."""
    if verdict == "decline":
        return Decision(
            action="review",
            outcome=DecisionOutcome.DECLINED,
            amount=m.zero(),
            reasons=(Reason.REVIEW_DECLINED,),
            clauses=pending.clauses,
            explanation="A reviewer declined the request.",
        )
    rec = pending.recommendation or Recommendation(
        pending.outcome, pending.amount, pending.destination
    )
    if verdict == "accept":
        granted, dest, reasons = (
            rec.amount,
            rec.destination,
            [Reason.REVIEW_ACCEPTED_RECOMMENDATION],
        )
    else:
        granted = amount if amount is not None else (rec.amount if rec.amount else refundable)
        dest, reasons = destination or rec.destination, [Reason.REVIEW_APPROVED]
    dest = dest or pending.destination or Destination.ORIGINAL_METHOD
    clauses = list(pending.clauses)
    fixed = bound_destination(m.policy, customer)
    corrected = ""
    if fixed is not None and dest != Destination.ORIGINAL_METHOD:
        # "Refund is processed strictly via the same payment method" (EmailConsul); "anti-fraud
        # or anti–money laundering regulations may require refunds to be issued to the
        # original payment method" (Qomon, flagged account): the reviewer's wallet is
        # corrected, as the engine's own choice is.
        dest = Destination.ORIGINAL_METHOD
        corrected = (
            " The wallet the reviewer chose is corrected to the original payment method: "
            + (
                "the policy refunds only to the method that paid."
                if fixed.same_method_only
                else "the account is flagged for anti-fraud/AML handling."
            )
        )
        reasons.append(Reason.REVIEW_DESTINATION_FIXED)
        if fixed.id not in clauses:
            clauses.append(fixed.id)
    text = f"A reviewer {'accepted the recommendation' if verdict == 'accept' else 'approved'}"
    if granted > refundable:
        granted = refundable
        reasons.append(Reason.REVIEW_AMOUNT_CAPPED)
        text += f", capped at the {m.fmt(refundable)} still refundable"
    fee = _fee(m, granted, fee_percent, reasons, clauses)
    paid = granted - fee
    where = "wallet" if dest == Destination.WALLET else "original payment method"
    text += f": {m.fmt(paid)} to the {where}"
    if fee:
        text += f" after a fee of {m.fmt(fee)}"
    outcome = payout_outcome(paid, full) if paid else DecisionOutcome.DECLINED
    return Decision(
        action="review",
        outcome=outcome,
        amount=paid,
        destination=dest if paid else None,
        reasons=tuple(reasons),
        clauses=tuple(clauses),
        explanation=text + "." + (corrected if paid else ""),
        fee=fee,
    )


def bound_destination(policy: Policy, customer: CustomerFacts) -> RefundDestination | None:
    """The clause that keeps this customer's refunds on the method that paid, whatever a
    reviewer chooses (same-method only, or the AML exception on a flagged account)."""
    return next(
        (
            d
            for d in policy.clauses_of(RefundDestination)
            if d.same_method_only or aml_bound(d, customer)
        ),
        None,
    )


def _fee(
    m: Merchant,
    granted: Money,
    fee_percent: Decimal | None,
    reasons: list[Reason],
    clauses: list[str],
) -> Money:
    if not fee_percent:
        return m.zero()
    rule = m.policy.first(Fees)
    if rule is None or rule.flat_fee_max_percent is None:
        reasons.append(Reason.REVIEW_FEE_NOT_ALLOWED)
        return m.zero()
    percent = min(fee_percent, rule.flat_fee_max_percent)
    if percent != fee_percent:
        reasons.append(Reason.REVIEW_FEE_CAPPED)
    clauses.append(rule.id)
    return granted.ratio(percent, 100).round(m.rounding)


def decide_appeal(m: Merchant, current: Decision) -> Decision:
    """Appeals go back to a reviewer unless the policy makes decisions final."""
    rule = m.policy.first(Appeals)
    if rule is not None and not rule.allowed:
        return Decision(
            action="appeal",
            outcome=DecisionOutcome.DECLINED,
            amount=m.zero(),
            reasons=(Reason.APPEAL_NOT_ALLOWED,),
            clauses=(rule.id,),
            explanation="Refund decisions are final under the policy and not "
            "subject to appeal; the earlier decision stands.",
        )
    rec = current.recommendation or Recommendation(
        current.outcome, current.amount, current.destination
    )
    return Decision(
        action="appeal",
        outcome=DecisionOutcome.NEEDS_REVIEW,
        amount=current.amount,
        destination=current.destination,
        reasons=(Reason.APPEAL_TO_REVIEW,),
        clauses=(rule.id,) if rule else (),
        recommendation=rec,
        explanation="The appeal is sent to a reviewer with the earlier recommendation.",
    )
