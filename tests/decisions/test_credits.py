"""Conek prepaid message credits: "Validity Period: 30 days from date of purchase",
failed-delivery returns (4.2) and forfeiture."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from fairbill.decisions.credits import (
    credit_expiry,
    decide_expiry,
    decide_failed_delivery,
    forfeits_credits,
)
from fairbill.decisions.decision import DecisionOutcome
from fairbill.decisions.facts import Merchant
from fairbill.decisions.reasons import Reason

from .helpers import local, merchant


def test_credits_expire_30_days_later_at_the_same_local_time() -> None:
    m = merchant("conek")
    expires = credit_expiry(m, local(m, 2026, 3, 1, 10, 30))
    assert expires is not None
    assert expires.isoformat() == "2026-03-31T10:30:00+02:00"


def test_expiry_keeps_the_local_time_across_dst() -> None:
    """A merchant may run Conek's policy in another timezone; the expiry stays at the
    purchase's local time even when DST starts in between."""
    conek = merchant("conek")
    paris = ZoneInfo("Europe/Paris")
    m = Merchant(policy=conek.policy, tz=paris, country="FR", currency="EUR")
    expires = credit_expiry(m, local(m, 2026, 3, 15, 10, 30))
    assert expires is not None
    assert expires.isoformat() == "2026-04-14T10:30:00+02:00"


@pytest.mark.parametrize("policy_id", ["qomon", "voip", "emailconsul", "kalenner"])
def test_policies_without_prepaid_credits_set_no_expiry(policy_id: str) -> None:
    m = merchant(policy_id)
    assert credit_expiry(m, local(m, 2026, 3, 1)) is None
    assert forfeits_credits(m, "closure") is None


def test_expiry_decision() -> None:
    """ "Non-Refundable: Unused credits are not refundable / No Extensions" """
    m = merchant("conek")
    d = decide_expiry(m, "message", 600)
    assert d.reasons == (Reason.CREDITS_EXPIRED,)
    assert d.clauses == ("conek/message-credits",)
    assert d.amount.is_zero
    assert "600 unused message credits expired 30 days after purchase" in d.explanation


@pytest.mark.parametrize(
    ("failure", "outcome", "reason", "returned"),
    [
        ("platform", DecisionOutcome.APPROVED, Reason.FAILED_DELIVERY_CREDITS_RETURNED, 25),
        ("third_party", DecisionOutcome.NEEDS_REVIEW, Reason.FAILED_DELIVERY_AT_DISCRETION, 0),
        ("invalid_recipient", DecisionOutcome.DECLINED, Reason.FAILED_DELIVERY_NOT_RETURNED, 0),
        ("blocked", DecisionOutcome.DECLINED, Reason.FAILED_DELIVERY_NOT_RETURNED, 0),
        ("device", DecisionOutcome.DECLINED, Reason.FAILED_DELIVERY_NOT_RETURNED, 0),
    ],
)
def test_failed_delivery(
    failure: str, outcome: DecisionOutcome, reason: Reason, returned: int
) -> None:
    """ "Our Platform Issues: Credits will be refunded to your account / WhatsApp API Issues:
    Credits may be refunded at our discretion / Invalid Recipient Numbers, Blocked Numbers,
    Customer Device Issues: No credit refund" """
    m = merchant("conek")
    d, back = decide_failed_delivery(m, failure, 25)
    assert back == returned
    assert d.outcome == outcome
    assert d.reasons == (reason,)
    assert d.clauses == ("conek/message-credits",)
    assert d.amount.is_zero


def test_failed_delivery_without_a_credits_clause_returns_nothing() -> None:
    m = merchant("qomon")
    d, back = decide_failed_delivery(m, "platform", 25)
    assert back == 0
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.clauses == ()


@pytest.mark.parametrize(
    ("event", "clause"),
    [
        ("closure", "conek/message-credits"),  # "All unused message credits are forfeited"
        ("termination", "conek/message-credits"),  # "All message credits are forfeited"
        ("cancellation", None),  # "Remaining message credits remain available"
        ("suspension", None),
    ],
)
def test_forfeiture(event: str, clause: str | None) -> None:
    assert forfeits_credits(merchant("conek"), event) == clause
