"""Refund requests: one decision per request, from the request kind and the policy.

Order of reasoning (top of ``decide_refund``):
1. the policy's automatic declines and request requirements (reason, order number,
   window, same payment method, violation);
2. the rule for the request kind (guarantee, exception refunds, cooling-off, outage…);
3. the ceiling: never more than was paid for the item minus what was refunded;
4. the destination (the clause's, the policy's default, the AML exception).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from fairbill.calendar.proration import duration_share, overlap, remaining_days
from fairbill.calendar.windows import within_business_days, within_days
from fairbill.decisions.cancellation import guarantee_applies, guarantee_refunds, min_money
from fairbill.decisions.decision import Decision, DecisionOutcome, Recommendation, payout_outcome
from fairbill.decisions.explain import share_sentence
from fairbill.decisions.facts import (
    CustomerFacts,
    Merchant,
    PaymentFacts,
    RequestFacts,
    SubscriptionFacts,
)
from fairbill.decisions.reasons import Reason
from fairbill.money import Money, money_sum
from fairbill.policy.model import (
    CoolingOff,
    DeclineGround,
    Destination,
    ExceptionRefund,
    MoneyBackGuarantee,
    NonRefundable,
    OutageCompensation,
    Outcome,
    Policy,
    RefundBasis,
    RefundDestination,
    RequestKind,
    RequestRequirements,
    TermsAcceptance,
    Violations,
)

ACTION = "refund_request"


def decide_refund(
    m: Merchant, req: RequestFacts, customer: CustomerFacts, now: datetime
) -> Decision:
    refusal = _requirements(m, req, customer)
    if refusal is not None:
        return refusal
    rule = _RULES.get(req.kind, _exceptional)
    decision = rule(m, req, customer)
    return _finish(m, req, customer, decision)


# -- 1. requirements and automatic declines -------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Rules:
    """What every refund request asks of the policy, found once per policy
    (``Policy.derived``): the decline grounds by ground, the exception clauses by request
    kind, in the policy's order."""

    grounds: Mapping[str, DeclineGround]
    exceptions: Mapping[str, tuple[ExceptionRefund, ...]]
    requirements: Mapping[RequestKind, list[RequestRequirements]]  # that apply to a kind


def _build_rules(policy: Policy) -> _Rules:
    exceptions: dict[str, tuple[ExceptionRefund, ...]] = {}
    for c in policy.clauses_of(ExceptionRefund):
        exceptions[c.reason] = (*exceptions.get(c.reason, ()), c)
    requirements = policy.clauses_of(RequestRequirements)
    return _Rules(
        {g.ground: g for g in policy.clauses_of(DeclineGround)},
        exceptions,
        {kind: [r for r in requirements if not r.kinds or kind in r.kinds] for kind in RequestKind},
    )


def _rules(m: Merchant) -> _Rules:
    return m.policy.derived("refund.rules", _build_rules)


def _requirements(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision | None:
    rules = _rules(m)
    grounds = rules.grounds
    applicable: list[RequestRequirements] = []
    if req.kind != RequestKind.SERVICE_DISRUPTION:  # opened by the merchant for the customer
        found = rules.requirements.get(req.kind)
        applicable = (
            found
            if found is not None
            else [
                r
                for r in m.policy.clauses_of(RequestRequirements)
                if not r.kinds or req.kind in r.kinds
            ]
        )
    no_reason = not (req.reason and req.reason.strip())
    violations = m.policy.first(Violations)
    if customer.in_violation and ("violation" in grounds or violations is not None):
        ground = grounds.get("violation")
        clause_id = ground.id if ground is not None else violations.id if violations else ""
        return _declined(
            m,
            Reason.ACCOUNT_IN_VIOLATION,
            clause_id,
            "The account was found in violation of the terms of service; no refund is given.",
        )
    on_go = grounds.get("on_go_funds")
    if on_go is not None and req.payment is not None and req.payment.item in on_go.items:
        # Whatever the request's kind and reason: a fuller request would still be declined.
        return _declined(
            m,
            Reason.ON_GO_FUNDS,
            on_go.id,
            f"Payment {req.payment.number} bought {str(req.payment.item).replace('_', ' ')}: "
            '"on go" plan funds, which are not refunded.',
        )
    if no_reason and ("no_reason" in grounds or any(r.reason_required for r in applicable)):
        clause = grounds["no_reason"].id if "no_reason" in grounds else applicable[0].id
        return _declined(
            m,
            Reason.REASON_MISSING,
            clause,
            "The request gives no reason; the policy requires one.",
        )
    if req.refund_to and req.payment and req.refund_to != req.payment.method:
        same = [d for d in m.policy.clauses_of(RefundDestination) if d.same_method_only]
        if (
            "different_payment_method" in grounds
            or same
            or any(r.same_payment_method for r in applicable)
        ):
            clause = (
                grounds["different_payment_method"].id
                if "different_payment_method" in grounds
                else (same[0].id if same else applicable[0].id)
            )
            return _declined(
                m,
                Reason.DIFFERENT_PAYMENT_METHOD,
                clause,
                f"Refunds go only to the method that paid ({req.payment.method}), "
                f"not to {req.refund_to}.",
            )
    own_window = any(c.within_days for c in _exceptions(m, req.kind))
    for r in applicable:
        if r.order_number_required and req.payment is None and not req.order_numbers:
            return _declined(
                m, Reason.ORDER_NUMBER_MISSING, r.id, "The request names no order number."
            )
        if (
            r.window_days is not None
            and not own_window
            and req.payment is not None
            and not within_days(req.payment.at, req.at, r.window_days, m.tz)
        ):
            clause = grounds["window_expired"].id if "window_expired" in grounds else r.id
            return _declined(
                m,
                Reason.REQUEST_WINDOW_EXPIRED,
                clause,
                f"The charge of {m.day(req.payment.at)} is more than "
                f"{r.window_days} days before the request ({m.day(req.at)}).",
            )
    return None


# -- 2. rules per request kind ----------------------------------------------------------------
Rule = Callable[[Merchant, RequestFacts, CustomerFacts], Decision]


def _money_back(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    payment = req.payment
    if req.kind == RequestKind.UNUSED_PERIOD:
        for ex in _exceptions(m, RequestKind.UNUSED_PERIOD):
            return _unused_days(m, req, ex.id, ex.decision, ex.destination)
    for g in m.policy.clauses_of(MoneyBackGuarantee):
        if payment is None or payment.item != "subscription" or req.subscription is None:
            continue
        why_not = guarantee_applies(m, g, req.subscription, req.at)
        if g.window_from == "payment":
            why_not = (
                None
                if within_days(payment.at, req.at, g.window_days, m.tz)
                else (Reason.GUARANTEE_WINDOW_EXPIRED)
            )
        if why_not is not None:
            return _declined(
                m,
                why_not,
                g.id,
                f"The {g.window_days}-day guarantee no longer covers this payment "
                f"of {m.day(payment.at)}.",
            )
        if g.refund == RefundBasis.FULL and g.window_from == "initial_subscription":
            return _whole_subscription(m, req.subscription, g)
        if g.refund == RefundBasis.FULL or (
            g.refund == RefundBasis.FULL_IF_UNUSED and not req.used_since_payment
        ):
            return _full(
                m,
                payment,
                g.id,
                g.decision,
                None,
                Reason.UNUSED_SINCE_PAYMENT_FULL
                if g.refund == RefundBasis.FULL_IF_UNUSED
                else Reason.GUARANTEE_FULL_REFUND,
                f"Within the {g.window_days}-day guarantee"
                + (
                    ""
                    if g.refund == RefundBasis.FULL
                    else " and the service was not used since the payment"
                )
                + f": the payment of {m.fmt(payment.amount)} is refunded in full.",
            )
        return _unused_days(
            m,
            req,
            g.id,
            g.decision,
            None,
            lead=f"Within the {g.window_days}-day guarantee; the service was "
            f"used, so the unused days are refunded: ",
        )
    return _not_refundable(m, req)


def _whole_subscription(m: Merchant, sub: SubscriptionFacts, g: MoneyBackGuarantee) -> Decision:
    """A guarantee of the initial subscription refunds everything paid for it (Kalenner's
    "remboursement à 100%", the upgrade too), whichever of those payments the request names:
    the refund a cancellation inside the window gives (``guarantee_refunds``)."""
    refunds = guarantee_refunds(sub)
    total = money_sum((r.amount for r in refunds), m.currency)
    if total.is_zero:
        return _declined(
            m,
            Reason.NOTHING_LEFT_TO_REFUND,
            g.id,
            f"Within the {g.window_days}-day guarantee, but everything paid for the "
            "subscription was already refunded.",
        )
    parts = " + ".join(f"{m.fmt(r.amount)} (payment {r.payment})" for r in refunds)
    paid = money_sum((p.amount for p in sub.payments), m.currency)
    decision = _pay(
        m,
        g.id,
        g.decision,
        None,
        total,
        paid,
        Reason.GUARANTEE_FULL_REFUND,
        f"Within the {g.window_days}-day guarantee from the subscription on "
        f"{m.day(sub.anchor)}: everything paid for it is refunded in full: {parts} = "
        f"{m.fmt(total)}.",
    )
    return decision.but(refunds=refunds)


def _not_refundable(m: Merchant, req: RequestFacts) -> Decision:
    item = req.payment.item if req.payment else "subscription"
    for rule in m.policy.clauses_of(NonRefundable):
        if item in rule.items:
            reason = (
                Reason.NON_REFUNDABLE_PERIOD_STARTED
                if item == "subscription"
                else Reason.NON_REFUNDABLE_ITEM
            )
            return _declined(
                m,
                reason,
                rule.id,
                f"{str(item).replace('_', ' ').capitalize()} payments are not "
                "refundable under the policy once the period has started or the "
                "item was delivered.",
            )
    return _declined(
        m,
        Reason.NO_CLAUSE_GRANTS_REFUND,
        None,
        "No clause of the policy grants a refund in this case.",
    )


def _duplicate(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = _first_exception(m, RequestKind.DUPLICATE_CHARGE)
    payment = req.payment
    if clause is None:
        return _exceptional(m, req, customer)
    if payment is None or not payment.is_duplicate:
        return _review_or_decline(
            m,
            clause,
            Reason.DUPLICATE_CHARGE_NOT_FOUND,
            "No duplicate of this charge is on record.",
        )
    return _full(
        m,
        payment,
        clause.id,
        clause.decision,
        clause.destination,
        Reason.DUPLICATE_CHARGE_CONFIRMED,
        f"Payment {payment.number} duplicates an earlier charge: "
        f"{m.fmt(payment.amount)} is returned in full.",
    )


def _billing_error(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    kinds = [req.kind] + (
        [RequestKind.BILLING_ERROR]
        if req.kind == RequestKind.OVERPAYMENT
        else [RequestKind.OVERPAYMENT]
    )
    clause = next((c for k in kinds for c in _exceptions(m, k)), None)
    payment = req.payment
    if clause is None:
        return _exceptional(m, req, customer)
    if payment is not None and payment.is_duplicate:
        return _full(
            m,
            payment,
            clause.id,
            clause.decision,
            clause.destination,
            Reason.DUPLICATE_CHARGE_CONFIRMED,
            f"Payment {payment.number} was charged in error: "
            f"{m.fmt(payment.amount)} is returned in full.",
        )
    no_error = payment is None or payment.overcharge is None or payment.overcharge.is_zero
    if payment is not None and no_error and _unused_renewal(req, clause):
        # "processed automatically and the service is no longer used"
        return _full(
            m,
            payment,
            clause.id,
            clause.decision,
            clause.destination,
            Reason.UNUSED_SINCE_PAYMENT_FULL,
            f"Payment {payment.number} was an automatic renewal and the service was not used "
            f"since: {m.fmt(payment.amount)} is refundable in full.",
        )
    if payment is None or payment.overcharge is None or payment.overcharge.is_zero:
        return _review_or_decline(
            m,
            clause,
            Reason.BILLING_ERROR_NOT_FOUND,
            "No billing error is on record for this charge.",
        )
    # An overcharge on record is what was charged in error: only the excess goes back.
    amount = payment.overcharge
    reason = (
        Reason.OVERPAYMENT_CONFIRMED
        if req.kind == RequestKind.OVERPAYMENT
        else Reason.BILLING_ERROR_CONFIRMED
    )
    return _pay(
        m,
        clause.id,
        clause.decision,
        clause.destination,
        amount,
        amount,
        reason,
        f"The invoice was charged {m.fmt(payment.overcharge)} more than it should have "
        f"been: {m.fmt(amount)} is returned.",
    )


def _unused_renewal(req: RequestFacts, clause: ExceptionRefund) -> bool:
    payment = req.payment
    return (
        payment is not None
        and payment.is_renewal
        and not req.used_since_payment
        and clause.basis == RefundBasis.FULL
    )


def _unauthorized(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = _first_exception(m, RequestKind.UNAUTHORIZED)
    payment = req.payment
    if clause is None or payment is None:
        return _exceptional(m, req, customer)
    if clause.within_days and not within_days(payment.at, req.at, clause.within_days, m.tz):
        return _declined(
            m,
            Reason.REQUEST_WINDOW_EXPIRED,
            clause.id,
            f"Unauthorized charges must be reported within {clause.within_days} "
            f"days; this charge was on {m.day(payment.at)}.",
        )
    if clause.documents_required and not req.documents:
        return _declined(
            m,
            Reason.DOCUMENTS_MISSING,
            clause.id,
            "A report of an unauthorized charge needs supporting documentation.",
        )
    return _full(
        m,
        payment,
        clause.id,
        clause.decision,
        clause.destination,
        Reason.UNAUTHORIZED_TO_INVESTIGATE,
        f"Reported within {clause.within_days or 'the'} days with documents: to be "
        f"investigated; if confirmed, {m.fmt(payment.amount)} is refunded.",
    )


def _non_delivery(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = _first_exception(m, RequestKind.NON_DELIVERY)
    payment = req.payment
    if clause is None or payment is None:
        return _exceptional(m, req, customer)
    outage = req.outage
    days = clause.after_days or 0
    # "unable to resolve the issue within 14 days": a failure resolved at exactly 14 days
    # was resolved within them; only a longer one counts ("more than", as for outages).
    lasting = (
        outage is not None
        and outage.cause == "internal"
        and (outage.end - outage.start > timedelta(days=days))
    )
    if not lasting:
        return _review_or_decline(
            m,
            clause,
            Reason.NON_DELIVERY_NOT_ESTABLISHED,
            f"No failure to deliver lasting more than {days} days is on "
            "record; a reviewer checks the account.",
        )
    return _full(
        m,
        payment,
        clause.id,
        clause.decision,
        clause.destination,
        Reason.NON_DELIVERY_CONFIRMED,
        f"The service was not delivered for more than {days} days: "
        f"{m.fmt(payment.amount)} is refundable.",
    )


def _by_mistake(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = _first_exception(m, RequestKind.PAYMENT_BY_MISTAKE)
    payment = req.payment
    if clause is None or payment is None:
        return _exceptional(m, req, customer)
    cited = {str(payment.number), *req.order_numbers}
    if len(cited) < clause.order_numbers_required:
        return _declined(
            m,
            Reason.ORDER_NUMBER_MISSING,
            clause.id,
            f"A payment made by mistake needs {clause.order_numbers_required} "
            "order numbers: the one to refund and the correct one.",
        )
    return _full(
        m,
        payment,
        clause.id,
        clause.decision,
        clause.destination,
        Reason.PAYMENT_BY_MISTAKE,
        f"Payment {payment.number} was made by mistake: {m.fmt(payment.amount)} is refundable.",
    )


def _terms_declined(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = _first_exception(m, RequestKind.TERMS_DECLINED)
    if clause is None:
        return _exceptional(m, req, customer)
    notice, declined = customer.terms_notice_at, customer.terms_declined_at
    if notice is None or declined is None:
        return _declined(
            m, Reason.NO_TERMS_NOTICE, clause.id, "No change of terms was declined on this account."
        )
    if clause.within_days and not within_days(notice, declined, clause.within_days, m.tz):
        return _declined(
            m,
            Reason.TERMS_DECLINE_WINDOW_EXPIRED,
            clause.id,
            f"The new terms were declined more than {clause.within_days} days "
            f"after the notice of {m.day(notice)}.",
        )
    return _unused_days(
        m,
        req,
        clause.id,
        clause.decision,
        clause.destination,
        since=declined,
        lead=f"New terms declined on {m.day(declined)}, within "
        f"{clause.within_days} days of the notice: unused time refunded: ",
        reason=Reason.TERMS_DECLINED_IN_WINDOW,
    )


def _cooling_off(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = m.policy.first(CoolingOff)
    payment = req.payment
    waiver = next(
        (t for t in m.policy.clauses_of(TermsAcceptance) if t.withdrawal_waived_at_payment), None
    )
    if clause is None and waiver is not None:
        return _declined(
            m,
            Reason.WITHDRAWAL_WAIVED,
            waiver.id,
            "By subscribing and completing payment the customer expressly waived the right "
            "of withdrawal.",
        )
    if clause is None or payment is None:
        return _not_refundable(m, req)
    if customer.type not in clause.customer_types or customer.acquisition not in clause.acquisition:
        return _declined(
            m,
            Reason.COOLING_OFF_NOT_ELIGIBLE,
            clause.id,
            "The cooling-off right covers consumers signed up through direct marketing.",
        )
    sale = req.subscription.anchor if req.subscription else payment.at
    notice = customer.written_cancel_at
    if clause.written_notice and (notice is None or notice < sale):
        return _declined(
            m,
            Reason.COOLING_OFF_NOT_WRITTEN,
            clause.id,
            "The cooling-off right needs the cancellation in writing; no written cancellation "
            "is on record.",
        )
    # The deadline is for the cancellation; the refund request may come after it.
    cancelled = notice if clause.written_notice and notice is not None else req.at
    if not within_business_days(sale, cancelled, clause.business_days, m.tz, m.country):
        return _declined(
            m,
            Reason.COOLING_OFF_WINDOW_EXPIRED,
            clause.id,
            f"The {clause.business_days}-business-day cooling-off period from "
            f"{m.day(sale)} had ended when the cancellation came ({m.day(cancelled)}).",
        )
    if clause.max_amount is not None and payment.amount.amount > clause.max_amount:
        return _declined(
            m,
            Reason.COOLING_OFF_OVER_LIMIT,
            clause.id,
            "The cooling-off right does not cover transactions of this size.",
        )
    if not req.used_since_payment:
        return _full(
            m,
            payment,
            clause.id,
            clause.decision,
            None,
            Reason.COOLING_OFF_FULL,
            f"Cancelled in writing within {clause.business_days} business days of the "
            f"sale and nothing was used: {m.fmt(payment.amount)} is refunded in full.",
        )
    return _unused_days(
        m,
        req,
        clause.id,
        clause.decision,
        None,
        lead=f"Cancelled within {clause.business_days} business days; the "
        "service was used, so the unused part is refunded: ",
        reason=Reason.COOLING_OFF_PRORATED,
    )


def _outage(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = m.policy.first(OutageCompensation)
    outage = req.outage
    payment = req.payment
    if clause is None or outage is None:
        return _declined(
            m,
            Reason.NO_CLAUSE_GRANTS_REFUND,
            None,
            "The policy grants no compensation for service disruptions.",
        )
    duration = outage.end - outage.start
    hours = duration.total_seconds() / 3600  # float-ok: hours for a sentence, not money
    threshold = timedelta(hours=clause.min_duration_hours)
    too_short = duration <= threshold if clause.strictly_longer else duration < threshold
    if outage.cause not in clause.causes:
        return _declined(
            m,
            Reason.OUTAGE_CAUSE_EXCLUDED,
            clause.id,
            f"Disruptions caused by {outage.cause.replace('_', ' ')} events are not compensated.",
        )
    if too_short:
        return _declined(
            m,
            Reason.OUTAGE_TOO_SHORT,
            clause.id,
            f"The disruption lasted {hours:g} hours; compensation starts "
            f"{'after' if clause.strictly_longer else 'at'} "
            f"{clause.min_duration_hours} hours.",
        )
    if clause.report_within_hours is not None:
        reported = outage.reported_at or req.at
        if reported - outage.start > timedelta(hours=clause.report_within_hours):
            return _declined(
                m,
                Reason.OUTAGE_REPORTED_LATE,
                clause.id,
                f"Disruptions must be reported within "
                f"{clause.report_within_hours} hours of their start.",
            )
    paid_periods = [p for p in (req.covering or ((payment,) if payment else ())) if p.period]
    exact = m.zero()
    parts = []
    for paid in paid_periods:
        assert paid.period is not None
        price = paid.period_price or paid.amount
        affected = overlap(paid.period, outage.start, outage.end)
        if not affected:
            continue
        exact = exact + duration_share(price, paid.period, affected)
        period_hours = int(paid.period.duration.total_seconds() // 3600)
        affected_hours = affected.total_seconds() / 3600  # float-ok: display only
        parts.append(f"{m.fmt(price)} × {affected_hours:g} / {period_hours} hours")
    if not parts:
        return _declined(
            m, Reason.NOTHING_LEFT_TO_REFUND, clause.id, "No paid period covers the disruption."
        )
    amount = exact.round(m.rounding)  # rounded once, over every period the outage touched
    return _pay(
        m,
        clause.id,
        clause.decision,
        clause.destination,
        amount,
        amount,
        Reason.OUTAGE_COMPENSATED,
        f"Service disrupted for {hours:g} hours: {' + '.join(parts)} = {m.fmt(amount)}.",
    )


def _failed_delivery(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    return _declined(
        m,
        Reason.FAILED_DELIVERY_NOT_RETURNED,
        None,
        "Failed message deliveries are settled in credits when they are reported "
        "with the send, not as money.",
    )


def _exceptional(m: Merchant, req: RequestFacts, customer: CustomerFacts) -> Decision:
    clause = _first_exception(m, RequestKind.EXCEPTIONAL)
    if clause is None:
        return _not_refundable(m, req)
    return _review_or_decline(
        m,
        clause,
        Reason.EXCEPTIONAL_AT_DISCRETION,
        "Outside the policy's rules: a refund is at the merchant's discretion.",
    )


_RULES: dict[RequestKind, Rule] = {
    RequestKind.MONEY_BACK: _money_back,
    RequestKind.UNUSED_PERIOD: _money_back,
    RequestKind.DUPLICATE_CHARGE: _duplicate,
    RequestKind.BILLING_ERROR: _billing_error,
    RequestKind.OVERPAYMENT: _billing_error,
    RequestKind.UNAUTHORIZED: _unauthorized,
    RequestKind.NON_DELIVERY: _non_delivery,
    RequestKind.SERVICE_DISRUPTION: _outage,
    RequestKind.PAYMENT_BY_MISTAKE: _by_mistake,
    RequestKind.TERMS_DECLINED: _terms_declined,
    RequestKind.COOLING_OFF: _cooling_off,
    RequestKind.FAILED_DELIVERY: _failed_delivery,
    RequestKind.EXCEPTIONAL: _exceptional,
}


# -- leaves ---------------------------------------------------------------------------------
def _exceptions(m: Merchant, kind: RequestKind) -> tuple[ExceptionRefund, ...]:
    return _rules(m).exceptions.get(kind, ())


def _first_exception(m: Merchant, kind: RequestKind) -> ExceptionRefund | None:
    found = _exceptions(m, kind)
    return found[0] if found else None


def _declined(m: Merchant, reason: Reason, clause: str | None, text: str) -> Decision:
    return Decision(
        action=ACTION,
        outcome=DecisionOutcome.DECLINED,
        amount=m.zero(),
        reasons=(reason,),
        clauses=(clause,) if clause else (),
        explanation=text,
    )


def _review_or_decline(m: Merchant, clause: ExceptionRefund, reason: Reason, text: str) -> Decision:
    """Nothing on record supports the claim: a person decides if the clause says so."""
    if clause.decision == Outcome.NEEDS_REVIEW:
        return Decision(
            action=ACTION,
            outcome=DecisionOutcome.NEEDS_REVIEW,
            amount=m.zero(),
            reasons=(reason,),
            clauses=(clause.id,),
            explanation=text,
            recommendation=Recommendation(DecisionOutcome.DECLINED, m.zero(), None),
        )
    return _declined(m, reason, clause.id, text)


def _full(
    m: Merchant,
    payment: PaymentFacts,
    clause: str,
    decision: Outcome,
    destination: Destination | None,
    reason: Reason,
    text: str,
) -> Decision:
    return _pay(m, clause, decision, destination, payment.amount, payment.amount, reason, text)


def _unused_days(
    m: Merchant,
    req: RequestFacts,
    clause: str,
    decision: Outcome,
    destination: Destination | None,
    *,
    since: datetime | None = None,
    lead: str = "Unused days refunded: ",
    reason: Reason | None = None,
) -> Decision:
    payment = req.payment
    if payment is None or payment.period is None:
        return _declined(
            m,
            Reason.NOTHING_LEFT_TO_REFUND,
            clause,
            "No paid subscription period is named in the request.",
        )
    if reason is None:
        used = req.used_since_payment
        reason = Reason.USED_SINCE_PAYMENT_PRORATED if used else Reason.REFUND_UNUSED_DAYS
    price = payment.period_price or payment.amount
    share = remaining_days(payment.period, since or req.at)
    unused = share.of(price).round(m.rounding)
    text = lead + share_sentence(m, price, share.numerator_days, share.period_days, "days", unused)
    # Unused time is refunded once: what earlier refunds of this payment gave back for
    # unused time counts against it. A refund for time that was used (a disruption) does
    # not: only the ceiling, what is left of the payment (``_cap``), bounds the rest.
    earlier = payment.refunded_unused or m.zero()
    amount = unused - earlier if unused > earlier else m.zero()
    if earlier:
        text += f"; less {m.fmt(earlier)} already refunded for unused days: {m.fmt(amount)}"
    if amount.is_zero:
        return _declined(m, Reason.NOTHING_LEFT_TO_REFUND, clause, text + ".")
    return _pay(m, clause, decision, destination, amount, payment.amount, reason, text + ".")


def _pay(
    m: Merchant,
    clause: str,
    decision: Outcome,
    destination: Destination | None,
    amount: Money,
    full: Money,
    reason: Reason,
    text: str,
) -> Decision:
    outcome = payout_outcome(amount, full)
    if decision == Outcome.NEEDS_REVIEW:
        return Decision(
            action=ACTION,
            outcome=DecisionOutcome.NEEDS_REVIEW,
            amount=amount,
            destination=destination,
            reasons=(reason,),
            clauses=(clause,),
            explanation=text,
            recommendation=Recommendation(outcome, amount, destination),
        )
    if decision == Outcome.DECLINED:
        return _declined(m, reason, clause, text)
    return Decision(
        action=ACTION,
        outcome=outcome,
        amount=amount,
        destination=destination,
        reasons=(reason,),
        clauses=(clause,),
        explanation=text,
    )


# -- 3 and 4: ceiling and destination ---------------------------------------------------------
def _finish(m: Merchant, req: RequestFacts, customer: CustomerFacts, d: Decision) -> Decision:
    if d.outcome == DecisionOutcome.DECLINED:
        return d
    d = _cap(m, _ceiling(m, req, d), d)
    return _route(m, customer, d)


def _ceiling(m: Merchant, req: RequestFacts, d: Decision) -> Money | None:
    """What is left of the payments the decision pays against: the one the request names,
    or each one its split names (payments of the request's subscription)."""
    if not d.refunds:
        return req.payment.refundable if req.payment is not None else None
    paid = {p.number: p for p in req.subscription.payments} if req.subscription else {}
    return money_sum((paid[r.payment].refundable for r in d.refunds), m.currency)


def _cap(m: Merchant, ceiling: Money | None, d: Decision) -> Decision:
    if ceiling is None:
        return d
    if d.amount <= ceiling and (d.recommendation is None or d.recommendation.amount <= ceiling):
        return d
    amount = min_money(d.amount, ceiling)
    text = d.explanation + (
        f" Capped at {m.fmt(ceiling)}, what remains of the payment after earlier refunds."
    )
    rec = d.recommendation
    if rec is not None:
        rec_amount = min_money(rec.amount, ceiling)
        rec = Recommendation(
            rec.outcome if rec_amount else DecisionOutcome.DECLINED, rec_amount, rec.destination
        )
    outcome = d.outcome
    if outcome != DecisionOutcome.NEEDS_REVIEW:
        outcome = DecisionOutcome.PARTIALLY_APPROVED if amount else DecisionOutcome.DECLINED
    reasons = (
        *d.reasons,
        Reason.NOTHING_LEFT_TO_REFUND if amount.is_zero else Reason.CAPPED_AT_AMOUNT_PAID,
    )
    return d.but(
        outcome=outcome, amount=amount, reasons=reasons, explanation=text, recommendation=rec
    )


AML_FLAG = "aml_review"  # the customer flag for anti-fraud / anti-money-laundering handling


def aml_bound(rule: RefundDestination, customer: CustomerFacts) -> bool:
    """Whether the policy's anti-fraud/AML exception sends this account's refunds to the
    original payment method (Qomon: "anti-fraud or anti–money laundering regulations may
    require refunds to be issued to the original payment method"): it binds the engine and
    a reviewer alike."""
    return rule.aml_exception and AML_FLAG in customer.flags


def resolve_destination(
    m: Merchant, customer: CustomerFacts, clause_destination: Destination | None
) -> tuple[Destination, tuple[str, ...], tuple[Reason, ...]]:
    """The clause's destination, else the policy default, else the original method; an
    AML-flagged account always gets the original method where the policy says so."""
    policy_rule = m.policy.first(RefundDestination)
    dest = clause_destination or (policy_rule.default if policy_rule else None)
    dest = dest or Destination.ORIGINAL_METHOD
    # The policy's destination rule fired unless the clause sent the money elsewhere.
    fired = policy_rule is not None and dest == policy_rule.default
    clauses: tuple[str, ...] = (policy_rule.id,) if fired and policy_rule else ()
    reasons: tuple[Reason, ...] = (Reason.DESTINATION_WALLET,) if dest == Destination.WALLET else ()
    if dest == Destination.WALLET and policy_rule is not None and aml_bound(policy_rule, customer):
        dest = Destination.ORIGINAL_METHOD
        clauses = (policy_rule.id,)
        reasons = (Reason.DESTINATION_AML_ORIGINAL_METHOD,)
    return dest, clauses, reasons


def _route(m: Merchant, customer: CustomerFacts, d: Decision) -> Decision:
    dest, clauses, reasons = resolve_destination(m, customer, d.destination)
    rec = d.recommendation
    if d.amount.is_zero and (rec is None or rec.amount.is_zero):
        clauses, reasons = (), ()  # nothing is paid anywhere: no destination rule fired
    if rec is not None:
        rec = Recommendation(
            rec.outcome, rec.amount, dest if rec.outcome != DecisionOutcome.DECLINED else None
        )
    return d.but(
        destination=dest,
        reasons=(*d.reasons, *reasons),
        clauses=(*d.clauses, *[c for c in clauses if c not in d.clauses]),
        recommendation=rec,
    )
