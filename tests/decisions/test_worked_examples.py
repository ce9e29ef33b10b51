"""The decision behind each of the 15 worked scenarios in examples/scenarios/, reproduced
by calling the pure decision functions with the same facts and exact figures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from fairbill.decisions.cancellation import PaymentRefund, decide_cancel
from fairbill.decisions.credits import credit_expiry
from fairbill.decisions.decision import DecisionOutcome, Recommendation
from fairbill.decisions.dunning import decide_failure, decide_reactivation
from fairbill.decisions.plan_change import decide_plan_change, decide_tier_move
from fairbill.decisions.reasons import Reason
from fairbill.decisions.refund import decide_refund
from fairbill.decisions.review import decide_review
from fairbill.policy.model import Destination, ItemKind, RequestKind

from .helpers import cash, customer, local, merchant, outage, payment, request, subscription

SCENARIOS = Path(__file__).resolve().parents[2] / "examples" / "scenarios"

# The figure each scenario's expect block pins, checked against the file itself below.
FIGURES = {
    "conek-cooling-off": ['amount: "499.00"'],
    "conek-message-credits": ['expires_at: "2026-03-31T10:30:00+02:00"', "decision: declined"],
    "conek-outage-credit": ['amount: "55.44", destination: wallet'],
    "emailconsul-money-back": ['decision: partially_approved, amount: "11.61"'],
    "emailconsul-no-reason": ["decision: declined"],
    "kalenner-annual-cancel": ['amount: "160.00"', 'ended_at: "2026-05-10T09:00:00+02:00"'],
    "kalenner-failed-payments": [
        'at: "2026-02-06T10:00:00+01:00"',
        'at: "2026-02-08T10:00:00+01:00"',
        'at: "2026-02-12T10:00:00+01:00"',
    ],
    "kalenner-guarantee-refund": ['amount: "29.00"', 'ended_at: "2026-03-12T15:00:00+01:00"'],
    "kalenner-monthly-cancel-after-guarantee": ['ended_at: "2026-04-05T10:00:00+02:00"'],
    "kalenner-upgrade-proration": ['total: "10.00"'],
    "qomon-annual-no-refund": ['ended_at: "2027-01-15T09:00:00+01:00"', "decision: declined"],
    "qomon-duplicate-charge-to-wallet": ['amount: "100.00", destination: wallet'],
    "qomon-usage-tiers": ['total: "40.65"', 'credit_applied: "21.29"'],
    "voip-immediate-cancel": ['amount: "33.87"', 'ended_at: "2026-03-11T09:00:00-04:00"'],
    "voip-service-disruption": ['amount: "5.00", destination: original_method'],
}


def test_the_fifteen_worked_scenarios_are_still_there() -> None:
    """Other scenarios may be added next to them; these fifteen are the shared ones."""
    assert len(FIGURES) == 15
    assert set(FIGURES) <= {p.stem for p in SCENARIOS.glob("*.yaml")}


@pytest.mark.parametrize("stem", sorted(FIGURES))
def test_figures_match_the_scenario_files(stem: str) -> None:
    text = (SCENARIOS / f"{stem}.yaml").read_text(encoding="utf-8")
    for figure in FIGURES[stem]:
        assert figure in text


# -- conek -------------------------------------------------------------------------------------


def test_conek_cooling_off() -> None:
    m = merchant("conek")
    anchor = local(m, 2026, 4, 1, 10)
    now = local(m, 2026, 4, 9, 12)
    sub = subscription(m, anchor, "499.00", now)
    who = customer(type="consumer", acquisition="direct_marketing", written_cancel_at=now)
    req = request(
        RequestKind.COOLING_OFF, now, payment=sub.payments[0], subscription=sub,
        reason="changed my mind",
    )  # fmt: skip
    d = decide_refund(m, req, who, now)
    assert d.outcome == DecisionOutcome.APPROVED
    assert d.amount == cash(m, "499.00")
    assert d.destination == Destination.ORIGINAL_METHOD
    assert d.reasons == (Reason.COOLING_OFF_FULL,)
    assert d.clauses == ("conek/cooling-off", "conek/refund-destination")


def test_conek_message_credits() -> None:
    m = merchant("conek")
    anchor = local(m, 2026, 3, 1, 10)
    bought = local(m, 2026, 3, 1, 10, 30)
    now = local(m, 2026, 3, 12, 10)
    sub = subscription(m, anchor, "499.00", now)
    credits = payment(m, 2, bought, "300.00", item=ItemKind.MESSAGE_CREDITS)
    req = request(RequestKind.MONEY_BACK, now, payment=credits, subscription=sub)
    d = decide_refund(m, req, customer(), now)
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.reasons == (Reason.NON_REFUNDABLE_ITEM,)
    assert d.clauses == ("conek/no-refund-general",)
    expires = credit_expiry(m, bought)
    assert expires is not None and expires.isoformat() == "2026-03-31T10:30:00+02:00"


def test_conek_outage_credit() -> None:
    m = merchant("conek")
    anchor = local(m, 2026, 4, 1)
    now = local(m, 2026, 4, 13, 8)
    sub = subscription(m, anchor, "499.00", now)
    o = outage(local(m, 2026, 4, 10), now, "internal", local(m, 2026, 4, 10, 2))
    req = request(
        RequestKind.SERVICE_DISRUPTION, now, payment=sub.payments[0], subscription=sub,
        reason=None, outage=o,
    )  # fmt: skip
    d = decide_refund(m, req, customer(), now)
    assert d.outcome == DecisionOutcome.NEEDS_REVIEW
    assert d.recommendation == Recommendation(
        DecisionOutcome.APPROVED, cash(m, "55.44"), Destination.WALLET
    )
    assert "ZAR499.00 × 80 / 720 hours = ZAR55.44" in d.explanation
    accepted = decide_review(
        m, d, verdict="accept", refundable=cash(m, "499.00"), full=cash(m, "499.00")
    )
    assert accepted.amount == cash(m, "55.44")
    assert accepted.destination == Destination.WALLET


# -- emailconsul -------------------------------------------------------------------------------


def test_emailconsul_money_back() -> None:
    m = merchant("emailconsul")
    anchor = local(m, 2026, 3, 1)
    now = local(m, 2026, 3, 20)
    sub = subscription(m, anchor, "30.00", now)
    req = request(
        RequestKind.MONEY_BACK, now, payment=sub.payments[0], subscription=sub,
        reason="deliverability was poor for our domain", order_numbers=("1",),
        used_since_payment=True,
    )  # fmt: skip
    d = decide_refund(m, req, customer(), now)
    assert d.outcome == DecisionOutcome.NEEDS_REVIEW
    assert d.recommendation == Recommendation(
        DecisionOutcome.PARTIALLY_APPROVED, cash(m, "11.61"), Destination.ORIGINAL_METHOD
    )
    accepted = decide_review(
        m, d, verdict="accept", refundable=cash(m, "30.00"), full=cash(m, "30.00")
    )
    assert accepted.amount == cash(m, "11.61")
    assert accepted.destination == Destination.ORIGINAL_METHOD


def test_emailconsul_no_reason() -> None:
    m = merchant("emailconsul")
    anchor = local(m, 2026, 3, 1)
    now = local(m, 2026, 3, 5)
    sub = subscription(m, anchor, "30.00", now)
    req = request(
        RequestKind.MONEY_BACK, now, payment=sub.payments[0], subscription=sub, reason=None
    )
    d = decide_refund(m, req, customer(), now)
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.reasons == (Reason.REASON_MISSING,)
    assert d.clauses == ("emailconsul/decline-no-reason",)


# -- kalenner ----------------------------------------------------------------------------------


def test_kalenner_annual_cancel() -> None:
    m = merchant("kalenner")
    anchor = local(m, 2026, 1, 10, 9)
    now = local(m, 2026, 4, 20, 10)
    out = decide_cancel(m, subscription(m, anchor, "240.00", now, months=12), now)
    assert out.decision.amount == cash(m, "160.00")
    assert out.ends_at.isoformat() == "2026-05-10T09:00:00+02:00"
    assert "kalenner/annual-cancel-refund" in out.decision.clauses
    assert "€240.00 × 8 / 12 months = €160.00" in out.decision.explanation
    assert out.refunds == (PaymentRefund(1, cash(m, "160.00")),)
    assert out.decision.destination == Destination.ORIGINAL_METHOD


def test_kalenner_failed_payments() -> None:
    m = merchant("kalenner")
    first = local(m, 2026, 2, 5, 10)  # the renewal charge fails
    retries = [decide_failure(m, a, first, cash(m, "29.00")) for a in (1, 2, 3, 4)]
    assert [r.next_retry_at.isoformat() for r in retries[:3] if r.next_retry_at] == [
        "2026-02-06T10:00:00+01:00",
        "2026-02-08T10:00:00+01:00",
        "2026-02-12T10:00:00+01:00",
    ]
    assert retries[3].suspend is True
    assert retries[3].next_retry_at is None
    back = decide_reactivation(m, cash(m, "29.00"))
    assert back.reasons == (Reason.REACTIVATED_ON_PAYMENT,)


def test_kalenner_guarantee_refund() -> None:
    m = merchant("kalenner")
    anchor = local(m, 2026, 3, 5, 10)
    now = local(m, 2026, 3, 12, 15)
    out = decide_cancel(m, subscription(m, anchor, "29.00", now), now)
    assert out.decision.amount == cash(m, "29.00")
    assert out.ends_now is True
    assert out.ends_at.isoformat() == "2026-03-12T15:00:00+01:00"
    assert out.refunds == (PaymentRefund(1, cash(m, "29.00")),)


def test_kalenner_monthly_cancel_after_guarantee() -> None:
    m = merchant("kalenner")
    anchor = local(m, 2026, 1, 5, 10)
    now = local(m, 2026, 3, 12, 15)
    out = decide_cancel(m, subscription(m, anchor, "29.00", now), now)
    assert out.decision.amount == cash(m, "0")
    assert out.ends_at.isoformat() == "2026-04-05T10:00:00+02:00"
    assert out.refunds == ()


def test_kalenner_upgrade_proration() -> None:
    m = merchant("kalenner")
    anchor = local(m, 2026, 2, 5, 9)
    now = local(m, 2026, 2, 19, 12)
    sub = subscription(m, anchor, "19.00", now)
    out = decide_plan_change(m, sub, cash(m, "39.00"), "pro-monthly", now)
    assert out.charge == cash(m, "10.00")
    assert out.mode == "immediate"
    assert sub.current_period.end.isoformat() == "2026-03-05T09:00:00+01:00"


# -- qomon -------------------------------------------------------------------------------------


def test_qomon_annual_no_refund() -> None:
    m = merchant("qomon")
    anchor = local(m, 2026, 1, 15, 9)
    cancel_at = local(m, 2026, 6, 1, 12)
    sub = subscription(m, anchor, "1200.00", cancel_at, months=12)
    out = decide_cancel(m, sub, cancel_at)
    assert out.ends_at.isoformat() == "2027-01-15T09:00:00+01:00"
    assert out.decision.amount == cash(m, "0")
    asked = cancel_at + timedelta(days=1)
    req = request(
        RequestKind.UNUSED_PERIOD, asked, payment=sub.payments[0], subscription=sub,
        reason="we stopped campaigning",
    )  # fmt: skip
    d = decide_refund(m, req, customer(), asked)
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.reasons == (Reason.NON_REFUNDABLE_PERIOD_STARTED,)


def test_qomon_duplicate_charge_to_wallet() -> None:
    m = merchant("qomon")
    anchor = local(m, 2026, 3, 1)
    now = local(m, 2026, 3, 3, 9)
    sub = subscription(m, anchor, "100.00", now)
    dup = payment(m, 2, local(m, 2026, 3, 1, 0, 5), "100.00", is_duplicate=True)
    req = request(RequestKind.DUPLICATE_CHARGE, now, payment=dup, subscription=sub)
    d = decide_refund(m, req, customer(), now)
    assert d.outcome == DecisionOutcome.NEEDS_REVIEW
    assert d.recommendation == Recommendation(
        DecisionOutcome.APPROVED, cash(m, "100.00"), Destination.WALLET
    )
    accepted = decide_review(
        m, d, verdict="accept", refundable=cash(m, "100.00"), full=cash(m, "100.00")
    )
    assert accepted.amount == cash(m, "100.00")
    assert accepted.destination == Destination.WALLET
    assert accepted.outcome == DecisionOutcome.APPROVED


def test_qomon_usage_tiers() -> None:
    m = merchant("qomon")
    anchor = local(m, 2026, 3, 1)
    up_at = local(m, 2026, 3, 11, 10)
    up = decide_tier_move(
        m, subscription(m, anchor, "100.00", up_at), cash(m, "160.00"), up_at, up_at
    )
    assert up.charge == cash(m, "40.65")
    fell = local(m, 2026, 3, 21, 10)
    detected = local(m, 2026, 3, 22)
    sub = subscription(m, anchor, "160.00", detected)
    down = decide_tier_move(m, sub, cash(m, "100.00"), fell, detected)
    assert down.charge == cash(m, "21.29")
    assert down.mode == "credit_note"


# -- voip --------------------------------------------------------------------------------------


def test_voip_immediate_cancel() -> None:
    m = merchant("voip")
    anchor = local(m, 2026, 3, 1)
    now = local(m, 2026, 3, 11, 9)
    out = decide_cancel(m, subscription(m, anchor, "50.00", now), now, immediately=True)
    assert out.decision.amount == cash(m, "33.87")
    assert out.refunds == (PaymentRefund(1, cash(m, "33.87")),)
    assert out.ends_at.isoformat() == "2026-03-11T09:00:00-04:00"
    assert "$50.00 × 21 / 31 days = $33.87" in out.decision.explanation


def test_voip_service_disruption() -> None:
    m = merchant("voip")
    anchor = local(m, 2026, 4, 1)
    now = local(m, 2026, 4, 13)
    sub = subscription(m, anchor, "50.00", now)
    o = outage(local(m, 2026, 4, 10), now, "internal", local(m, 2026, 4, 10, 3))
    req = request(
        RequestKind.SERVICE_DISRUPTION, now, payment=sub.payments[0], subscription=sub,
        reason=None, outage=o,
    )  # fmt: skip
    d = decide_refund(m, req, customer(), now)
    assert d.outcome == DecisionOutcome.NEEDS_REVIEW
    assert d.recommendation == Recommendation(
        DecisionOutcome.APPROVED, cash(m, "5.00"), Destination.ORIGINAL_METHOD
    )
    accepted = decide_review(
        m, d, verdict="accept", refundable=cash(m, "50.00"), full=cash(m, "50.00")
    )
    assert accepted.amount == cash(m, "5.00")
    assert accepted.destination == Destination.ORIGINAL_METHOD
