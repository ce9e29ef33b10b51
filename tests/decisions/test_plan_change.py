"""``decide_plan_change`` (upgrades/downgrades by price) and ``decide_tier_move`` (usage
tiers)."""

from __future__ import annotations

import pytest

from fairbill.decisions.decision import DecisionOutcome
from fairbill.decisions.plan_change import decide_plan_change, decide_tier_move
from fairbill.decisions.reasons import Reason
from fairbill.policy.model import UsageTiers

from .helpers import cash, local, merchant, subscription


class TestKalenner:
    """« Mises à niveau : ... le changement prendra effet immédiatement avec une
    facturation au prorata » / « Rétrogradations : ... vous devez annuler votre abonnement
    actuel et vous abonner à un plan inférieur au début de votre prochain cycle »."""

    def setup_method(self) -> None:
        self.m = merchant("kalenner")
        self.anchor = local(self.m, 2026, 2, 5, 9)
        self.now = local(self.m, 2026, 2, 19, 12)

    def test_upgrade_charges_the_prorated_difference_now(self) -> None:
        sub = subscription(self.m, self.anchor, "19.00", self.now)
        out = decide_plan_change(self.m, sub, cash(self.m, "39.00"), "pro-monthly", self.now)
        assert out.mode == "immediate"
        assert out.charge == cash(self.m, "10.00")  # 20 × 14 / 28
        assert out.decision.amount == cash(self.m, "10.00")
        assert out.share is not None
        assert (out.share.numerator_days, out.share.period_days) == (14, 28)
        assert out.decision.reasons == (Reason.UPGRADE_PRORATED,)
        assert out.decision.clauses == ("kalenner/plan-changes",)
        assert "€20.00 × 14 / 28 days = €10.00" in out.decision.explanation
        assert "2026-03-05" in out.decision.explanation

    def test_upgrade_on_the_first_day_charges_the_whole_difference(self) -> None:
        sub = subscription(self.m, self.anchor, "19.00", self.anchor)
        out = decide_plan_change(self.m, sub, cash(self.m, "39.00"), "pro", self.anchor)
        assert out.charge == cash(self.m, "20.00")

    def test_downgrade_is_cancel_and_resubscribe(self) -> None:
        sub = subscription(self.m, self.anchor, "39.00", self.now)
        out = decide_plan_change(self.m, sub, cash(self.m, "19.00"), "basic", self.now)
        assert out.mode == "cancel_and_resubscribe"
        assert out.charge == cash(self.m, "0")
        assert out.decision.reasons == (Reason.DOWNGRADE_AS_CANCEL_AND_RESUBSCRIBE,)

    def test_same_price_switch_charges_nothing(self) -> None:
        sub = subscription(self.m, self.anchor, "19.00", self.now)
        out = decide_plan_change(self.m, sub, cash(self.m, "19.00"), "other", self.now)
        assert out.mode == "immediate"
        assert out.charge == cash(self.m, "0")
        assert out.decision.reasons == (Reason.SAME_PRICE_CHANGE,)


class TestConek:
    """ "The upgrade takes effect immediately / You are charged the pro-rated difference for
    the remainder of the billing cycle" and "Downgrading ... takes effect at the end of your
    current billing cycle / No refund is provided for the difference"."""

    def setup_method(self) -> None:
        self.m = merchant("conek")
        self.anchor = local(self.m, 2026, 4, 1, 10)
        self.now = local(self.m, 2026, 4, 16, 10)

    def test_upgrade(self) -> None:
        sub = subscription(self.m, self.anchor, "499.00", self.now)
        out = decide_plan_change(self.m, sub, cash(self.m, "999.00"), "growth", self.now)
        assert out.mode == "immediate"
        assert out.charge == cash(self.m, "250.00")  # 500 × 15 / 30
        assert out.decision.clauses == ("conek/plan-changes",)

    def test_downgrade_waits_for_the_period_end(self) -> None:
        sub = subscription(self.m, self.anchor, "999.00", self.now)
        out = decide_plan_change(self.m, sub, cash(self.m, "499.00"), "starter", self.now)
        assert out.mode == "end_of_period"
        assert out.charge == cash(self.m, "0")
        assert out.decision.reasons == (Reason.DOWNGRADE_AT_PERIOD_END,)
        assert "2026-05-01" in out.decision.explanation


class TestQomonTiers:
    """ "the additional cost is billed pro rata temporis, based on the remaining time in
    your billing cycle" / "a pro-rated credit note is generated automatically"."""

    def setup_method(self) -> None:
        self.m = merchant("qomon")
        self.anchor = local(self.m, 2026, 3, 1)

    def test_detection_is_within_24_hours(self) -> None:
        rule = self.m.policy.first(UsageTiers)
        assert rule is not None and rule.detection_hours == 24

    def test_tier_up_bills_the_rest_of_the_period_now(self) -> None:
        now = local(self.m, 2026, 3, 11, 10)
        sub = subscription(self.m, self.anchor, "100.00", now)
        out = decide_tier_move(self.m, sub, cash(self.m, "160.00"), now, now)
        assert out.mode == "immediate"
        assert out.charge == cash(self.m, "40.65")  # 60 × 21 / 31
        assert out.decision.reasons == (Reason.TIER_UP_PRORATED,)
        assert out.decision.clauses == ("qomon/usage-tiers",)

    @pytest.mark.parametrize("detected_day", [21, 22])
    def test_tier_down_credit_counts_from_the_day_usage_fell(self, detected_day: int) -> None:
        fell = local(self.m, 2026, 3, 21, 10)
        detected = local(self.m, 2026, 3, detected_day, 9)
        sub = subscription(self.m, self.anchor, "160.00", detected)
        out = decide_tier_move(self.m, sub, cash(self.m, "100.00"), fell, detected)
        assert out.mode == "credit_note"
        assert out.charge == cash(self.m, "21.29")  # 60 × 11 / 31
        assert out.decision.reasons == (Reason.TIER_DOWN_CREDIT_NOTE,)
        assert "2026-03-21" in out.decision.explanation

    def test_same_tier_changes_nothing(self) -> None:
        now = local(self.m, 2026, 3, 11, 10)
        sub = subscription(self.m, self.anchor, "100.00", now)
        out = decide_tier_move(self.m, sub, cash(self.m, "100.00"), now, now)
        assert out.mode == "none"
        assert out.charge == cash(self.m, "0")
        assert out.decision.reasons == (Reason.TIER_UNCHANGED,)
        assert out.decision.outcome == DecisionOutcome.APPROVED
