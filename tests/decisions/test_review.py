"""``decide_review`` and ``decide_appeal``: a reviewer's bounded override, and appeals
(refused where "Our decision is final and not subject to appeal")."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fairbill.decisions.decision import Decision, DecisionOutcome, Recommendation
from fairbill.decisions.facts import Merchant
from fairbill.decisions.reasons import Reason
from fairbill.decisions.review import decide_appeal, decide_review
from fairbill.policy.model import Destination

from .helpers import POLICY_IDS, cash, customer, merchant


def pending(m: Merchant, amount: str, destination: Destination | None, clause: str) -> Decision:
    rec_outcome = DecisionOutcome.APPROVED if amount != "0.00" else DecisionOutcome.DECLINED
    return Decision(
        action="refund_request",
        outcome=DecisionOutcome.NEEDS_REVIEW,
        amount=cash(m, amount),
        destination=destination,
        clauses=(clause,),
        recommendation=Recommendation(rec_outcome, cash(m, amount), destination),
    )


class TestQomonFee:
    """ "Refunds may be reduced by applicable processing costs, and a discretionary flat
    fee of up to 18% may apply." """

    def setup_method(self) -> None:
        self.m = merchant("qomon")
        self.pend = pending(self.m, "0.00", Destination.WALLET, "qomon/exceptional-cases")

    def approve(self, amount: str, fee: str | None, refundable: str = "100.00") -> Decision:
        return decide_review(
            self.m,
            self.pend,
            verdict="approve",
            refundable=cash(self.m, refundable),
            full=cash(self.m, "100.00"),
            amount=cash(self.m, amount),
            fee_percent=Decimal(fee) if fee is not None else None,
        )

    @pytest.mark.parametrize(
        ("fee", "paid", "deducted"), [("10", "90.00", "10.00"), ("18", "82.00", "18.00")]
    )
    def test_fee_up_to_18_percent(self, fee: str, paid: str, deducted: str) -> None:
        d = self.approve("100.00", fee)
        assert d.amount == cash(self.m, paid)
        assert d.fee == cash(self.m, deducted)
        assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
        assert d.reasons == (Reason.REVIEW_APPROVED,)
        assert d.clauses[-1] == "qomon/fx-and-fees"
        assert d.destination == Destination.WALLET

    @pytest.mark.parametrize("fee", ["18.01", "25", "100"])
    def test_fee_above_18_percent_is_capped(self, fee: str) -> None:
        d = self.approve("100.00", fee)
        assert d.fee == cash(self.m, "18.00")
        assert d.amount == cash(self.m, "82.00")
        assert d.reasons == (Reason.REVIEW_APPROVED, Reason.REVIEW_FEE_CAPPED)

    def test_fee_is_taken_from_the_capped_amount(self) -> None:
        d = self.approve("100.00", "18", refundable="50.00")
        assert d.reasons == (
            Reason.REVIEW_APPROVED,
            Reason.REVIEW_AMOUNT_CAPPED,
        )
        assert d.fee == cash(self.m, "9.00")
        assert d.amount == cash(self.m, "41.00")

    def test_fee_rounds_half_up_to_the_cent(self) -> None:
        d = self.approve("33.35", "18")  # 6.003 → 6.00
        assert d.fee == cash(self.m, "6.00")
        assert d.amount == cash(self.m, "27.35")

    def test_no_fee_when_none_is_asked(self) -> None:
        d = self.approve("100.00", None)
        assert d.fee == cash(self.m, "0")
        assert d.amount == cash(self.m, "100.00")
        assert d.outcome == DecisionOutcome.APPROVED


@pytest.mark.parametrize("policy_id", ["kalenner", "voip", "conek", "emailconsul"])
def test_flat_fee_not_allowed_without_a_fee_limit(policy_id: str) -> None:
    """Only Qomon's text allows a flat fee; emailconsul's "Processing fee or other bank
    fees" sets no percentage, so no flat fee may be deducted."""
    m = merchant(policy_id)
    pend = pending(m, "29.00", Destination.ORIGINAL_METHOD, f"{policy_id}/x")
    d = decide_review(
        m,
        pend,
        verdict="approve",
        refundable=cash(m, "29.00"),
        full=cash(m, "29.00"),
        amount=cash(m, "29.00"),
        fee_percent=Decimal("10"),
    )
    assert d.fee == cash(m, "0")
    assert d.amount == cash(m, "29.00")
    assert d.reasons == (Reason.REVIEW_APPROVED, Reason.REVIEW_FEE_NOT_ALLOWED)
    assert d.outcome == DecisionOutcome.APPROVED


class TestVerdicts:
    def setup_method(self) -> None:
        self.m = merchant("conek")
        self.pend = pending(self.m, "55.44", Destination.WALLET, "conek/outage-credit")

    def review(self, verdict: str, **kw: object) -> Decision:
        return decide_review(
            self.m,
            self.pend,
            verdict=verdict,
            refundable=cash(self.m, "499.00"),
            full=cash(self.m, "499.00"),
            **kw,  # type: ignore[arg-type]
        )

    def test_accept_takes_the_recommendation(self) -> None:
        d = self.review("accept")
        assert d.amount == cash(self.m, "55.44")
        assert d.destination == Destination.WALLET
        assert d.reasons == (Reason.REVIEW_ACCEPTED_RECOMMENDATION,)
        assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
        assert d.clauses == ("conek/outage-credit",)
        assert "ZAR55.44 to the wallet" in d.explanation

    def test_approve_another_amount_and_destination(self) -> None:
        d = self.review(
            "approve", amount=cash(self.m, "100.00"), destination=Destination.ORIGINAL_METHOD
        )
        assert d.amount == cash(self.m, "100.00")
        assert d.destination == Destination.ORIGINAL_METHOD
        assert d.reasons == (Reason.REVIEW_APPROVED,)

    def test_approve_more_than_refundable_is_capped(self) -> None:
        d = self.review("approve", amount=cash(self.m, "600.00"))
        assert d.amount == cash(self.m, "499.00")
        assert d.outcome == DecisionOutcome.APPROVED
        assert d.reasons == (Reason.REVIEW_APPROVED, Reason.REVIEW_AMOUNT_CAPPED)

    def test_approve_without_amount_takes_the_recommended_amount(self) -> None:
        assert self.review("approve").amount == cash(self.m, "55.44")

    def test_decline(self) -> None:
        d = self.review("decline")
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.amount == cash(self.m, "0")
        assert d.reasons == (Reason.REVIEW_DECLINED,)
        assert d.destination is None


class TestQomonAmlBindsTheReviewer:
    """ "In some cases, anti-fraud or anti–money laundering regulations may require refunds
    to be issued to the original payment method": on a flagged account a reviewer's choice
    of the wallet is corrected, as EmailConsul's same-method rule corrects it."""

    def setup_method(self) -> None:
        self.m = merchant("qomon")
        self.pend = pending(
            self.m, "100.00", Destination.ORIGINAL_METHOD, "qomon/duplicate-charge-correction"
        )

    def review(self, verdict: str, flags: frozenset[str], **kw: object) -> Decision:
        return decide_review(
            self.m,
            self.pend,
            verdict=verdict,
            refundable=cash(self.m, "100.00"),
            full=cash(self.m, "100.00"),
            customer=customer(flags=flags),
            **kw,  # type: ignore[arg-type]
        )

    def test_wallet_on_a_flagged_account_goes_to_the_original_method(self) -> None:
        d = self.review(
            "approve",
            frozenset({"aml_review"}),
            amount=cash(self.m, "100.00"),
            destination=Destination.WALLET,
        )
        assert d.destination == Destination.ORIGINAL_METHOD
        assert d.amount == cash(self.m, "100.00")
        assert d.reasons == (Reason.REVIEW_APPROVED, Reason.REVIEW_DESTINATION_FIXED)
        assert d.clauses == ("qomon/duplicate-charge-correction", "qomon/wallet-corrections")
        assert d.explanation == (
            "A reviewer approved: €100.00 to the original payment method. The wallet the "
            "reviewer chose is corrected to the original payment method: the account is "
            "flagged for anti-fraud/AML handling."
        )

    def test_an_unflagged_account_may_be_credited_to_the_wallet(self) -> None:
        """ "Whenever possible, corrections and refunds are issued as credits in the Qomon
        Wallet": without the flag, the reviewer's wallet stands."""
        d = self.review(
            "approve", frozenset(), amount=cash(self.m, "100.00"), destination=Destination.WALLET
        )
        assert d.destination == Destination.WALLET
        assert d.reasons == (Reason.REVIEW_APPROVED,)

    def test_accepting_a_wallet_recommendation_after_the_account_was_flagged(self) -> None:
        """The flag binds at the moment the money moves: a wallet recommendation made before
        the account was flagged is paid to the original method."""
        self.pend = pending(self.m, "100.00", Destination.WALLET, "qomon/billing-error-correction")
        d = self.review("accept", frozenset({"aml_review"}))
        assert d.destination == Destination.ORIGINAL_METHOD
        assert d.reasons == (
            Reason.REVIEW_ACCEPTED_RECOMMENDATION,
            Reason.REVIEW_DESTINATION_FIXED,
        )


class TestAppeals:
    def test_conek_refuses_appeals(self) -> None:
        """ "Our decision is final and not subject to appeal" """
        m = merchant("conek")
        d = decide_appeal(m, pending(m, "55.44", Destination.WALLET, "conek/outage-credit"))
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.reasons == (Reason.APPEAL_NOT_ALLOWED,)
        assert d.clauses == ("conek/decisions-final",)
        assert d.amount == cash(m, "0")
        assert "final" in d.explanation

    @pytest.mark.parametrize("policy_id", [p for p in POLICY_IDS if p != "conek"])
    def test_other_policies_send_appeals_to_review(self, policy_id: str) -> None:
        m = merchant(policy_id)
        earlier = Decision(
            action="refund_request",
            outcome=DecisionOutcome.DECLINED,
            amount=cash(m, "0"),
            clauses=(f"{policy_id}/x",),
        )
        d = decide_appeal(m, earlier)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.reasons == (Reason.APPEAL_TO_REVIEW,)
        assert d.clauses == ()
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(m, "0"), None)
