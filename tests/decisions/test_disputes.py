"""Chargebacks, violations, account closure and data retention."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from fairbill.decisions.decision import DecisionOutcome
from fairbill.decisions.disputes import (
    decide_chargeback,
    decide_closure,
    decide_dispute_closed,
    decide_violation,
    retention_until,
)
from fairbill.decisions.reasons import Reason
from fairbill.policy.model import AccountClosure

from .helpers import POLICY_IDS, cash, local, merchant


class TestConekChargebacks:
    """ "If you initiate a chargeback without contacting us: Your account will be
    immediately suspended / We may terminate your account if the chargeback is unjustified" """

    def test_without_contacting_support_suspends(self) -> None:
        m = merchant("conek")
        out = decide_chargeback(m, cash(m, "499.00"), contacted_support_first=False)
        assert out.suspend is True
        assert out.terminate is False
        assert out.decision.reasons == (Reason.DISPUTE_SUSPENDED_NO_CONTACT,)
        assert out.decision.clauses == ("conek/chargebacks",)
        assert out.decision.amount == cash(m, "499.00")

    def test_after_contacting_support_is_recorded(self) -> None:
        m = merchant("conek")
        out = decide_chargeback(m, cash(m, "499.00"), contacted_support_first=True)
        assert out.suspend is False
        assert out.decision.reasons == (Reason.DISPUTE_RECORDED,)

    def test_won_dispute_leaves_termination_to_a_reviewer(self) -> None:
        m = merchant("conek")
        d = decide_dispute_closed(m, cash(m, "499.00"), "won")
        assert d.reasons == (Reason.DISPUTE_WON,)
        assert d.amount == cash(m, "0")
        assert "left to a reviewer" in d.explanation

    def test_lost_dispute(self) -> None:
        m = merchant("conek")
        d = decide_dispute_closed(m, cash(m, "499.00"), "lost")
        assert d.reasons == (Reason.DISPUTE_LOST,)
        assert d.amount == cash(m, "499.00")


@pytest.mark.parametrize("policy_id", [p for p in POLICY_IDS if p != "conek"])
def test_other_policies_only_record_a_chargeback(policy_id: str) -> None:
    m = merchant(policy_id)
    out = decide_chargeback(m, cash(m, "10.00"), contacted_support_first=False)
    assert out.suspend is False
    assert out.decision.reasons == (Reason.DISPUTE_RECORDED,)
    assert out.decision.clauses == ()


@pytest.mark.parametrize(
    ("policy_id", "reason", "terminate", "forfeit"),
    [
        ("conek", Reason.VIOLATION_TERMINATED, True, True),
        ("voip", Reason.VIOLATION_TERMINATED, True, False),
        ("qomon", Reason.VIOLATION_RECORDED, False, False),
        ("emailconsul", Reason.VIOLATION_RECORDED, False, False),
        ("kalenner", Reason.VIOLATION_RECORDED, False, False),
    ],
)
def test_violations(policy_id: str, reason: Reason, terminate: bool, forfeit: bool) -> None:
    """conek 7.2 "No refunds ... All message credits are forfeited"; voip "we reserve the
    right to cancel or suspend ... In such cases, no refund will be provided"."""
    m = merchant(policy_id)
    out = decide_violation(m, "spam")
    assert out.decision.reasons == (reason,)
    assert out.terminate is terminate
    assert out.forfeit_credits is forfeit
    assert out.decision.amount.is_zero
    assert out.decision.outcome == DecisionOutcome.APPROVED


def test_conek_closure_is_a_cancellation_and_forfeits_credits() -> None:
    """ "This is treated as a cancellation / All unused message credits are forfeited" """
    m = merchant("conek")
    out = decide_closure(m)
    assert out.forfeit_credits is True
    assert out.decision.reasons == (Reason.CLOSURE_AS_CANCELLATION,)
    assert out.decision.clauses == ("conek/account-closure",)
    assert out.decision.amount.is_zero
    assert out.decision.explanation.endswith(", and unused credits are forfeited.")


@pytest.mark.parametrize("policy_id", [p for p in POLICY_IDS if p != "conek"])
def test_closure_without_a_closure_clause_forfeits_nothing(policy_id: str) -> None:
    """Only a policy's account_closure clause with forfeit_credits takes credits away;
    without one, closing the account forfeits nothing."""
    out = decide_closure(merchant(policy_id))
    assert out.forfeit_credits is False
    assert out.decision.clauses == ()
    assert out.decision.reasons == (Reason.CLOSURE_AS_CANCELLATION,)
    assert out.decision.explanation == (
        "Closing the account is treated as a cancellation; no refund for the remaining time."
    )


def test_closure_clause_without_forfeiture_keeps_the_credits() -> None:
    m = merchant("conek")
    clauses = [
        c.model_copy(update={"forfeit_credits": False}) if isinstance(c, AccountClosure) else c
        for c in m.policy.clauses
    ]
    m = replace(m, policy=m.policy.model_copy(update={"clauses": clauses}))
    out = decide_closure(m)
    assert out.forfeit_credits is False
    assert out.decision.clauses == ("conek/account-closure",)
    assert "forfeited" not in out.decision.explanation


@pytest.mark.parametrize(
    ("ended", "days"),
    [("cancellation", 180), ("suspension", 30), ("termination", 0), ("closure", 180)],
)
def test_conek_data_retention(ended: str, days: int) -> None:
    """ "Account data may be retained for 180 days after cancellation" / "Account data is
    retained for 30 days before permanent deletion" / "may be deleted immediately"."""
    m = merchant("conek")
    at = local(m, 2026, 4, 1, 10)
    until, clause = retention_until(m, ended, at)
    assert until == at + timedelta(days=days)
    assert clause == "conek/data-retention"


@pytest.mark.parametrize("policy_id", ["qomon", "voip", "emailconsul", "kalenner"])
def test_no_retention_limit_without_a_clause(policy_id: str) -> None:
    m = merchant(policy_id)
    assert retention_until(m, "cancellation", local(m, 2026, 4, 1)) == (None, None)
