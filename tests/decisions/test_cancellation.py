"""``decide_cancel`` per policy: when a cancellation takes effect and what it refunds.

Each test quotes the seed sentence it checks; boundaries are tested on both sides.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from fairbill.decisions.cancellation import PaymentRefund, decide_cancel
from fairbill.decisions.decision import DecisionOutcome
from fairbill.decisions.reasons import Reason
from fairbill.policy.model import Destination

from .helpers import cash, local, merchant, payment, subscription

# -- kalenner: « Garantie de remboursement de 14 jours » ------------------------------------


class TestKalennerGuarantee:
    """« Vous pouvez annuler votre abonnement pour toute raison dans les 14 jours suivant
    votre date d'abonnement initial et recevoir un remboursement à 100%. »"""

    @pytest.mark.parametrize(("day", "hour", "minute"), [(19, 0, 0), (19, 23, 59)])
    def test_day_14_is_inside_the_guarantee(self, day: int, hour: int, minute: int) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 3, 5, 10)
        now = local(m, 2026, 3, day, hour, minute)  # 2026-03-05 + 14 days
        out = decide_cancel(m, subscription(m, anchor, "29.00", now), now)
        assert out.decision.outcome == DecisionOutcome.APPROVED
        assert out.decision.amount == cash(m, "29.00")
        assert out.decision.reasons == (Reason.GUARANTEE_FULL_REFUND, Reason.CANCEL_IMMEDIATE)
        assert out.decision.clauses == ("kalenner/guarantee",)
        assert out.decision.destination == Destination.ORIGINAL_METHOD
        assert out.ends_now is True
        assert out.ends_at == now
        assert out.refunds == (PaymentRefund(1, cash(m, "29.00")),)

    @pytest.mark.parametrize(("hour", "minute"), [(0, 0), (10, 0)])
    def test_day_15_is_outside_the_guarantee(self, hour: int, minute: int) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 3, 5, 10)
        now = local(m, 2026, 3, 20, hour, minute)
        out = decide_cancel(m, subscription(m, anchor, "29.00", now), now)
        assert out.decision.amount == cash(m, "0")
        assert Reason.GUARANTEE_FULL_REFUND not in out.decision.reasons
        assert out.decision.reasons == (
            Reason.CANCEL_AT_MONTH_PERIOD_END,
            Reason.NO_REFUND_CURRENT_PERIOD,
        )
        assert out.ends_now is False
        assert out.ends_at == local(m, 2026, 4, 5, 10)
        assert out.refunds == ()

    def test_annual_plan_inside_the_guarantee_refunds_the_whole_year(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2026, 1, 24, 18)
        out = decide_cancel(m, subscription(m, anchor, "240.00", now, months=12), now)
        assert out.decision.amount == cash(m, "240.00")
        assert out.ends_at == now
        assert out.refunds == (PaymentRefund(1, cash(m, "240.00")),)

    def test_guarantee_covers_only_the_initial_subscription(self) -> None:
        """interpretation.md: the 14-day guarantee applies only to the initial subscription."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 3, 5, 10)
        now = local(m, 2026, 3, 8, 10)
        sub = subscription(m, anchor, "29.00", now, is_first=False)
        out = decide_cancel(m, sub, now)
        assert out.decision.amount == cash(m, "0")
        assert out.ends_at == local(m, 2026, 4, 5, 10)
        assert out.refunds == ()

    def test_guarantee_refunds_only_what_is_left_of_the_payment(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 3, 5, 10)
        now = local(m, 2026, 3, 6, 10)
        sub = subscription(m, anchor, "29.00", now, refunded={1: "9.00"})
        out = decide_cancel(m, sub, now)
        assert out.decision.amount == cash(m, "20.00")
        assert out.refunds == (PaymentRefund(1, cash(m, "20.00")),)


class TestKalennerAfterGuarantee:
    """« Votre abonnement restera actif jusqu'à la fin de votre période de facturation
    actuelle (fin de la période mensuelle pour les plans mensuels et annuels) »."""

    def test_monthly_runs_to_end_of_month_without_refund(self) -> None:
        """« Abonnements mensuels: Aucun remboursement pour le mois en cours »."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 5, 10)
        now = local(m, 2026, 3, 12, 15)
        out = decide_cancel(m, subscription(m, anchor, "29.00", now), now)
        assert out.decision.outcome == DecisionOutcome.APPROVED
        assert out.decision.amount == cash(m, "0")
        assert out.decision.destination is None
        assert out.ends_at == local(m, 2026, 4, 5, 10)
        assert out.ends_at.isoformat() == "2026-04-05T10:00:00+02:00"
        assert out.decision.clauses == (
            "kalenner/cancel-end-of-month",
            "kalenner/monthly-cancel-refund",
        )

    @pytest.mark.parametrize(
        ("month", "day", "months_left", "amount", "ends"),
        [
            (4, 20, 8, "160.00", (2026, 5, 10)),  # the worked example
            (5, 9, 8, "160.00", (2026, 5, 10)),  # still in the 4th monthly period
            (5, 10, 7, "140.00", (2026, 6, 10)),  # a new monthly period started at 09:00
            (11, 20, 1, "20.00", (2026, 12, 10)),  # one full month left
        ],
    )
    def test_annual_refunds_full_months_after_the_current_one(
        self, month: int, day: int, months_left: int, amount: str, ends: tuple[int, int, int]
    ) -> None:
        """« S'il reste plus d'un mois dans votre abonnement annuel, les mois complets
        restants seront remboursés »: annual_price × months / 12."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2026, month, day, 12)
        out = decide_cancel(m, subscription(m, anchor, "240.00", now, months=12), now)
        assert out.decision.amount == cash(m, amount)
        assert out.ends_at == local(m, *ends, 9)
        assert out.decision.reasons == (
            Reason.CANCEL_AT_MONTH_PERIOD_END,
            Reason.REFUND_REMAINING_MONTHS,
        )
        assert f"× {months_left} / 12 months" in out.decision.explanation
        assert out.refunds == (PaymentRefund(1, cash(m, amount)),)

    def test_annual_cancelled_in_the_last_month_refunds_nothing(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2026, 12, 20, 12)
        out = decide_cancel(m, subscription(m, anchor, "240.00", now, months=12), now)
        assert out.decision.amount == cash(m, "0")
        assert out.decision.reasons[-1] == Reason.NO_FULL_MONTHS_REMAIN
        assert out.ends_at == local(m, 2027, 1, 10, 9)
        assert out.refunds == ()

    def test_annual_refund_is_capped_by_what_is_left_of_the_payment(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2026, 4, 20, 10)
        sub = subscription(m, anchor, "240.00", now, months=12, refunded={1: "100.00"})
        out = decide_cancel(m, sub, now)
        assert out.decision.amount == cash(m, "140.00")
        assert out.refunds == (PaymentRefund(1, cash(m, "140.00")),)

    def test_annual_with_unpaid_current_year_refunds_nothing(self) -> None:
        """Nothing was paid for the current year (the renewal failed): nothing to refund."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2027, 4, 20, 10)
        sub = subscription(m, anchor, "240.00", now, months=12)
        sub = replace(sub, payments=sub.payments[:1], status="past_due")  # renewal failed
        out = decide_cancel(m, sub, now)
        assert out.refunds == ()
        assert out.decision.amount == cash(m, "0")
        assert out.decision.destination is None

    @pytest.mark.parametrize(
        ("refunded", "paid_year2", "amount", "reason", "sentence"),
        [
            (
                "0",
                False,
                "0.00",
                Reason.NOTHING_LEFT_TO_REFUND,
                "Nothing is left to refund on the payments for this period.",
            ),
            (
                "100.00",
                True,
                "140.00",
                Reason.CAPPED_AT_AMOUNT_PAID,
                "Capped at €140.00, what is left of the payments after earlier refunds.",
            ),
        ],
    )
    def test_capped_cancellation_refund_explains_the_capped_amount(
        self, refunded: str, paid_year2: bool, amount: str, reason: Reason, sentence: str
    ) -> None:
        """The computed €240 × 8 / 12 = €160.00 stays in the sentence, followed by what
        the ceiling (what is left of the year's payments) cut it to, with its reason."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2027, 4, 20, 10)
        sub = subscription(m, anchor, "240.00", now, months=12, refunded={2: refunded})
        if not paid_year2:
            sub = replace(sub, payments=sub.payments[:1], status="past_due")
        out = decide_cancel(m, sub, now)
        assert out.decision.amount == cash(m, amount)
        assert out.decision.reasons == (
            Reason.CANCEL_AT_MONTH_PERIOD_END,
            Reason.REFUND_REMAINING_MONTHS,
            reason,
        )
        assert out.decision.explanation.endswith("€240.00 × 8 / 12 months = €160.00. " + sentence)
        expected = (PaymentRefund(2, cash(m, amount)),) if paid_year2 else ()
        assert out.refunds == expected

    def test_uncapped_refund_has_no_ceiling_sentence(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2026, 4, 20, 10)
        out = decide_cancel(m, subscription(m, anchor, "240.00", now, months=12), now)
        assert out.decision.explanation.endswith("€240.00 × 8 / 12 months = €160.00.")
        assert Reason.CAPPED_AT_AMOUNT_PAID not in out.decision.reasons

    def test_annual_refund_is_on_the_price_paid_net_of_the_promotion(self) -> None:
        """interpretation.md: "Promotional discounts ... are never paid out as cash." The
        year was billed €240.00 less a €60.00 promotion: €180.00 × 8 / 12 = €120.00."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2026, 4, 20, 10)
        sub = subscription(m, anchor, "240.00", now, months=12)
        first = replace(
            sub.payments[0],
            amount=cash(m, "180.00"),
            period_price=cash(m, "180.00"),
            discount=cash(m, "60.00"),
        )
        sub = replace(sub, payments=(first,))
        out = decide_cancel(m, sub, now)
        assert out.decision.amount == cash(m, "120.00")
        assert "€180.00 × 8 / 12 months = €120.00." in out.decision.explanation
        assert out.refunds == (PaymentRefund(1, cash(m, "120.00")),)

    def test_after_an_upgrade_the_price_in_force_is_refunded_newest_payment_first(self) -> None:
        """Upgraded from €240 to €360 a year on 03-20 (prorated €100.00 charged then):
        8 months left at the price now in force, €360 × 8 / 12 = €240.00, taken from the
        upgrade charge first (€100.00), then the year's charge (€140.00)."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 10, 9)
        now = local(m, 2026, 4, 20, 10)
        upgrade = payment(m, 2, local(m, 2026, 3, 20, 10), "100.00", subscription_id=1)
        sub = subscription(m, anchor, "360.00", now, months=12, extra_payments=(upgrade,))
        first = replace(sub.payments[0], amount=cash(m, "240.00"), period_price=cash(m, "240.00"))
        sub = replace(sub, payments=(first, upgrade))
        out = decide_cancel(m, sub, now)
        assert out.decision.amount == cash(m, "240.00")
        assert "€360.00 × 8 / 12 months = €240.00." in out.decision.explanation
        assert out.refunds == (
            PaymentRefund(2, cash(m, "100.00")),
            PaymentRefund(1, cash(m, "140.00")),
        )

    def test_immediate_cancellation_is_not_offered(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 5, 10)
        now = local(m, 2026, 3, 12, 15)
        out = decide_cancel(m, subscription(m, anchor, "29.00", now), now, immediately=True)
        assert out.decision.reasons[0] == Reason.CANCEL_IMMEDIATE_NOT_OFFERED
        assert out.ends_now is False
        assert out.ends_at == local(m, 2026, 4, 5, 10)

    def test_already_canceled_is_declined(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 1, 5, 10)
        now = local(m, 2026, 3, 12, 15)
        ends = local(m, 2026, 4, 5, 10)
        sub = subscription(m, anchor, "29.00", now, cancel_at=ends)
        out = decide_cancel(m, sub, now)
        assert out.decision.outcome == DecisionOutcome.DECLINED
        assert out.decision.reasons == (Reason.ALREADY_CANCELED,)
        assert out.ends_at == ends
        assert "2026-04-05" in out.decision.explanation

    @pytest.mark.parametrize("status", ["canceled", "expired", "terminated"])
    def test_ended_statuses_are_already_canceled(self, status: str) -> None:
        m = merchant("kalenner")
        now = local(m, 2026, 3, 12, 15)
        sub = subscription(m, local(m, 2026, 1, 5, 10), "29.00", now, status=status)
        assert decide_cancel(m, sub, now).decision.reasons == (Reason.ALREADY_CANCELED,)


# -- qomon -----------------------------------------------------------------------------------


class TestQomonRenewalCutoff:
    """ "You can cancel directly from the platform up until the last day before your
    renewal date." (cutoff_before_renewal)"""

    def test_day_before_renewal_stops_the_renewal(self) -> None:
        m = merchant("qomon")
        anchor = local(m, 2026, 3, 15, 9)
        now = local(m, 2026, 4, 14, 23, 59)
        out = decide_cancel(m, subscription(m, anchor, "100.00", now), now)
        assert out.ends_at == local(m, 2026, 4, 15, 9)
        assert out.decision.reasons == (
            Reason.CANCEL_AT_PERIOD_END,
            Reason.NO_REFUND_CURRENT_PERIOD,
        )
        assert out.decision.amount == cash(m, "0")

    @pytest.mark.parametrize(("hour", "minute"), [(0, 0), (8, 59)])
    def test_renewal_date_before_the_renewal_instant_renews_first(
        self, hour: int, minute: int
    ) -> None:
        """On the renewal date itself the renewal happens and the cancellation takes
        effect at the end of the new period (interpretation.md)."""
        m = merchant("qomon")
        anchor = local(m, 2026, 3, 15, 9)
        now = local(m, 2026, 4, 15, hour, minute)
        out = decide_cancel(m, subscription(m, anchor, "100.00", now), now)
        assert out.ends_at == local(m, 2026, 5, 15, 9)
        assert out.decision.reasons == (
            Reason.CANCEL_AFTER_RENEWAL_CUTOFF,
            Reason.CANCEL_AT_PERIOD_END,
            Reason.NO_REFUND_CURRENT_PERIOD,
        )
        assert out.decision.clauses == (
            "qomon/cancel-before-renewal",
            "qomon/no-refund-started-period",
        )

    def test_renewal_date_after_the_renewal_ends_with_the_new_period(self) -> None:
        m = merchant("qomon")
        anchor = local(m, 2026, 3, 15, 9)
        now = local(m, 2026, 4, 15, 10)
        out = decide_cancel(m, subscription(m, anchor, "100.00", now), now)
        assert out.ends_at == local(m, 2026, 5, 15, 9)
        assert Reason.CANCEL_AFTER_RENEWAL_CUTOFF not in out.decision.reasons

    def test_annual_runs_to_the_end_of_the_year_without_refund(self) -> None:
        """ "Cancellations take effect at the end of the current billing or commitment
        period." / "subscription fees are non-refundable once the billing period has
        started"."""
        m = merchant("qomon")
        anchor = local(m, 2026, 1, 15, 9)
        now = local(m, 2026, 6, 1, 12)
        out = decide_cancel(m, subscription(m, anchor, "1200.00", now, months=12), now)
        assert out.ends_at.isoformat() == "2027-01-15T09:00:00+01:00"
        assert out.decision.amount == cash(m, "0")
        assert out.refunds == ()

    def test_commitment_plan_runs_to_the_end_of_the_commitment(self) -> None:
        m = merchant("qomon")
        anchor = local(m, 2026, 1, 15, 9)
        now = local(m, 2027, 3, 1, 12)
        sub = subscription(m, anchor, "1200.00", now, months=12, commitment_months=36)
        out = decide_cancel(m, sub, now)
        assert out.ends_at == local(m, 2029, 1, 15, 9)
        assert out.decision.reasons[0] == Reason.CANCEL_AT_COMMITMENT_END
        assert out.decision.amount == cash(m, "0")

    def test_immediate_cancellation_is_not_offered(self) -> None:
        m = merchant("qomon")
        anchor = local(m, 2026, 3, 1)
        now = local(m, 2026, 3, 11, 9)
        out = decide_cancel(m, subscription(m, anchor, "100.00", now), now, immediately=True)
        assert out.decision.reasons[0] == Reason.CANCEL_IMMEDIATE_NOT_OFFERED
        assert out.ends_at == local(m, 2026, 4, 1)
        assert out.decision.amount == cash(m, "0")


# -- voip ------------------------------------------------------------------------------------


class TestVoipCancellation:
    """ "Cancellations will take effect at the end of the current billing cycle." /
    "... they may be eligible for a pro-rata refund for the unused portion"."""

    def test_plain_cancellation_ends_with_the_cycle_without_refund(self) -> None:
        m = merchant("voip")
        anchor = local(m, 2026, 3, 1)
        now = local(m, 2026, 3, 11, 9)
        out = decide_cancel(m, subscription(m, anchor, "50.00", now), now)
        assert out.ends_at == local(m, 2026, 4, 1)
        assert out.decision.amount == cash(m, "0")
        assert out.decision.reasons == (Reason.CANCEL_AT_PERIOD_END,)
        assert out.decision.clauses == ("voip/cancel-end-of-cycle",)

    def test_immediate_cancellation_refunds_unused_days(self) -> None:
        m = merchant("voip")
        anchor = local(m, 2026, 3, 1)
        now = local(m, 2026, 3, 11, 9)
        out = decide_cancel(m, subscription(m, anchor, "50.00", now), now, immediately=True)
        assert out.ends_now is True
        assert out.ends_at == now
        assert out.decision.amount == cash(m, "33.87")  # 50 × 21 / 31
        assert out.decision.reasons == (Reason.CANCEL_IMMEDIATE, Reason.REFUND_UNUSED_DAYS)

    @pytest.mark.parametrize(
        ("day", "hour", "amount"),
        [(1, 0, "50.00"), (31, 23, "1.61"), (16, 12, "25.81")],
    )
    def test_cancellation_day_counts_as_unused(self, day: int, hour: int, amount: str) -> None:
        m = merchant("voip")
        anchor = local(m, 2026, 3, 1)
        now = local(m, 2026, 3, day, hour)
        out = decide_cancel(m, subscription(m, anchor, "50.00", now), now, immediately=True)
        assert out.decision.amount == cash(m, amount)

    def test_immediate_refund_does_not_pay_out_a_promotional_discount(self) -> None:
        """interpretation.md: "Promotional discounts ... are never paid out as cash." Paid
        $40.00 (20% off $50.00) for March; 21 of 31 days unused: $40.00 × 21 / 31."""
        m = merchant("voip")
        anchor = local(m, 2026, 3, 1)
        now = local(m, 2026, 3, 11, 9)
        sub = subscription(m, anchor, "50.00", now)
        first = replace(
            sub.payments[0],
            amount=cash(m, "40.00"),
            period_price=cash(m, "40.00"),
            discount=cash(m, "10.00"),
        )
        sub = replace(sub, payments=(first,))
        out = decide_cancel(m, sub, now, immediately=True)
        assert out.decision.amount == cash(m, "27.10")
        assert "$40.00 × 21 / 31 days = $27.10." in out.decision.explanation

    def test_immediate_refund_is_capped_by_earlier_refunds(self) -> None:
        m = merchant("voip")
        anchor = local(m, 2026, 3, 1)
        now = local(m, 2026, 3, 11, 9)
        sub = subscription(m, anchor, "50.00", now, refunded={1: "40.00"})
        out = decide_cancel(m, sub, now, immediately=True)
        assert out.decision.amount == cash(m, "10.00")
        assert out.refunds == (PaymentRefund(1, cash(m, "10.00")),)

    def test_immediate_capped_refund_explains_the_cap(self) -> None:
        m = merchant("voip")
        anchor = local(m, 2026, 3, 1)
        now = local(m, 2026, 3, 11, 9)
        sub = subscription(m, anchor, "50.00", now, refunded={1: "40.00"})
        out = decide_cancel(m, sub, now, immediately=True)
        assert out.decision.amount == cash(m, "10.00")
        assert out.decision.reasons == (
            Reason.CANCEL_IMMEDIATE,
            Reason.REFUND_UNUSED_DAYS,
            Reason.CAPPED_AT_AMOUNT_PAID,
        )
        assert out.decision.explanation.endswith(
            "$50.00 × 21 / 31 days = $33.87. "
            "Capped at $10.00, what is left of the payments after earlier refunds."
        )


# -- conek and emailconsul ---------------------------------------------------------------------


def test_conek_cancellation_keeps_access_to_period_end_without_refund() -> None:
    """ "Monthly Plans: Access continues until the end of your current billing cycle" /
    "Cancelling your subscription does not entitle you to a refund"."""
    m = merchant("conek")
    anchor = local(m, 2026, 3, 1, 10)
    now = local(m, 2026, 3, 2, 10)
    out = decide_cancel(m, subscription(m, anchor, "499.00", now), now)
    assert out.ends_at == local(m, 2026, 4, 1, 10)
    assert out.decision.amount == cash(m, "0")
    assert out.decision.clauses == ("conek/cancel-end-of-period", "conek/no-refund-on-cancel")
    assert out.decision.reasons == (Reason.CANCEL_AT_PERIOD_END, Reason.NO_REFUND_CURRENT_PERIOD)


def test_emailconsul_has_no_cancellation_clause_and_ends_at_period_end() -> None:
    m = merchant("emailconsul")
    anchor = local(m, 2026, 3, 1)
    now = local(m, 2026, 3, 5)
    out = decide_cancel(m, subscription(m, anchor, "30.00", now), now)
    assert out.ends_at == local(m, 2026, 4, 1)
    assert out.decision.clauses == ()
    assert out.decision.reasons == (Reason.CANCEL_AT_PERIOD_END,)
    assert out.decision.amount == cash(m, "0")
