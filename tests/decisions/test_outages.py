"""Service-disruption compensation (``decide_refund`` with kind ``service_disruption``):
Conek's "more than 72 consecutive hours" and the VoIP 4-hour / 48-hour thresholds."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from fairbill.decisions.decision import Decision, DecisionOutcome, Recommendation
from fairbill.decisions.facts import Merchant
from fairbill.decisions.reasons import Reason
from fairbill.decisions.refund import decide_refund
from fairbill.policy.model import Destination, RequestKind

from .helpers import cash, customer, local, merchant, outage, request, subscription


def disruption(
    m: Merchant,
    start: datetime,
    end: datetime,
    *,
    cause: str = "internal",
    reported_at: datetime | None = None,
    price: str = "50.00",
) -> Decision:
    anchor = local(m, 2026, 4, 1)
    sub = subscription(m, anchor, price, start)
    at = reported_at or end
    req = request(
        RequestKind.SERVICE_DISRUPTION,
        at,
        payment=sub.payments[0],
        subscription=sub,
        reason=None,  # opened by the merchant on the customer's behalf
        outage=outage(start, end, cause, reported_at),
    )
    return decide_refund(m, req, customer(), at)


class TestConekOutage:
    """ "In cases of extended service outages (more than 72 consecutive hours) caused by
    issues within our control, we may provide: Pro-rated account credits ..." """

    def setup_method(self) -> None:
        self.m = merchant("conek")
        self.start = local(self.m, 2026, 4, 10)

    def test_exactly_72_hours_is_not_more_than_72(self) -> None:
        d = disruption(self.m, self.start, self.start + timedelta(hours=72), price="499.00")
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.reasons == (Reason.OUTAGE_TOO_SHORT,)
        assert d.clauses == ("conek/outage-credit",)
        assert "after 72 hours" in d.explanation

    def test_72_hours_and_one_minute_is_compensated(self) -> None:
        end = self.start + timedelta(hours=72, minutes=1)
        d = disruption(self.m, self.start, end, price="499.00")
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        # 499.00 × 259 260 s / 2 592 000 s = 49.9115…
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "49.91"), Destination.WALLET
        )
        assert d.reasons[0] == Reason.OUTAGE_COMPENSATED

    def test_credit_goes_to_the_account_by_default(self) -> None:
        """The outage clause sends the credit to the account (wallet), not to the policy's
        default destination ("Refunds are issued to the original payment method"), so
        conek/refund-destination is not cited."""
        end = self.start + timedelta(hours=80)
        d = disruption(self.m, self.start, end, price="499.00")
        assert d.destination == Destination.WALLET
        assert d.amount == cash(self.m, "55.44")
        assert d.clauses == ("conek/outage-credit",)
        assert d.reasons == (Reason.OUTAGE_COMPENSATED, Reason.DESTINATION_WALLET)

    def test_an_outage_across_a_renewal_is_credited_in_both_periods(self) -> None:
        """04-29 00:00 → 05-02 08:00 = 80 h: 48 h of April (720 h) and 32 h of May (744 h),
        both paid ZAR499.00: 33.2666… + 21.4623… = 54.7290… → 54.73."""
        start, end = local(self.m, 2026, 4, 29), local(self.m, 2026, 5, 2, 8)
        sub = subscription(self.m, local(self.m, 2026, 4, 1), "499.00", end)
        req = request(
            RequestKind.SERVICE_DISRUPTION,
            end,
            payment=sub.payments[0],
            subscription=sub,
            reason=None,
            outage=outage(start, end, "internal", start + timedelta(hours=1)),
            covering=sub.payments,
        )
        d = decide_refund(self.m, req, customer(), end)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "54.73"), Destination.WALLET
        )
        assert d.clauses == ("conek/outage-credit",)
        assert d.explanation == (
            "Service disrupted for 80 hours: ZAR499.00 × 48 / 720 hours + "
            "ZAR499.00 × 32 / 744 hours = ZAR54.73."
        )

    @pytest.mark.parametrize("cause", ["third_party", "force_majeure"])
    def test_causes_outside_conek_control_are_excluded(self, cause: str) -> None:
        """ "This does not apply to outages caused by third-party services including
        WhatsApp/Meta, internet service providers, or force majeure events." """
        end = self.start + timedelta(hours=100)
        d = disruption(self.m, self.start, end, cause=cause, price="499.00")
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.reasons == (Reason.OUTAGE_CAUSE_EXCLUDED,)
        assert d.amount == cash(self.m, "0")

    def test_no_report_deadline(self) -> None:
        end = self.start + timedelta(hours=80)
        late = self.start + timedelta(days=10)
        d = disruption(self.m, self.start, end, reported_at=late, price="499.00")
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW


class TestVoipDisruption:
    """ "In the event of a significant and unresolved service disruption ... a pro-rata
    refund for the affected period may be provided. Customers are required to report
    service disruptions promptly" — at least 4 hours, reported within 48 hours."""

    def setup_method(self) -> None:
        self.m = merchant("voip")
        self.start = local(self.m, 2026, 4, 10)

    def test_3h59_is_not_significant(self) -> None:
        end = self.start + timedelta(hours=3, minutes=59)
        d = disruption(self.m, self.start, end, reported_at=end)
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.reasons == (Reason.OUTAGE_TOO_SHORT,)
        assert "at 4 hours" in d.explanation

    def test_exactly_4_hours_counts(self) -> None:
        end = self.start + timedelta(hours=4)
        d = disruption(self.m, self.start, end, reported_at=end)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.amount == cash(self.m, "0.28")  # 50 × 4 / 720
        assert d.destination == Destination.ORIGINAL_METHOD
        assert d.clauses == ("voip/service-disruption",)

    def test_reported_exactly_48_hours_after_the_start_counts(self) -> None:
        end = self.start + timedelta(hours=72)
        d = disruption(self.m, self.start, end, reported_at=self.start + timedelta(hours=48))
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.amount == cash(self.m, "5.00")

    def test_reported_48_hours_and_one_minute_after_the_start_is_late(self) -> None:
        end = self.start + timedelta(hours=72)
        late = self.start + timedelta(hours=48, minutes=1)
        d = disruption(self.m, self.start, end, reported_at=late)
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.reasons == (Reason.OUTAGE_REPORTED_LATE,)

    def test_without_a_report_time_the_request_time_counts(self) -> None:
        end = self.start + timedelta(hours=72)  # request at the end: 72 h after the start
        d = disruption(self.m, self.start, end)
        assert d.reasons == (Reason.OUTAGE_REPORTED_LATE,)

    @pytest.mark.parametrize("cause", ["internal", "third_party", "force_majeure"])
    def test_every_cause_counts(self, cause: str) -> None:
        end = self.start + timedelta(hours=72)
        soon = self.start + timedelta(hours=1)
        d = disruption(self.m, self.start, end, cause=cause, reported_at=soon)
        assert d.amount == cash(self.m, "5.00")

    def test_only_the_part_inside_the_paid_period_counts(self) -> None:
        """An outage running past the end of April, with only April paid, is prorated on
        its April part."""
        start = local(self.m, 2026, 4, 29)
        end = local(self.m, 2026, 5, 3)
        d = disruption(self.m, start, end, reported_at=start + timedelta(hours=1))
        assert d.amount == cash(self.m, "3.33")  # 50 × 48 / 720

    def test_the_sum_over_the_periods_is_rounded_once(self) -> None:
        """04-30 19:00 → 05-01 05:00: 5 h of April (720 h) and 5 h of May (744 h):
        0.3472… + 0.3360… = 0.6832… → $0.68 (rounding each part first would give $0.69)."""
        start, end = local(self.m, 2026, 4, 30, 19), local(self.m, 2026, 5, 1, 5)
        sub = subscription(self.m, local(self.m, 2026, 4, 1), "50.00", end)
        req = request(
            RequestKind.SERVICE_DISRUPTION,
            end,
            payment=sub.payments[0],
            subscription=sub,
            reason=None,
            outage=outage(start, end, "internal", start + timedelta(hours=1)),
            covering=sub.payments,
        )
        d = decide_refund(self.m, req, customer(), end)
        assert d.amount == cash(self.m, "0.68")
        assert d.clauses == ("voip/service-disruption",)
        assert "$50.00 × 5 / 720 hours + $50.00 × 5 / 744 hours = $0.68." in d.explanation

    def test_covering_periods_the_outage_misses_add_nothing(self) -> None:
        """A paid period listed as covering but outside the outage contributes zero."""
        start, end = local(self.m, 2026, 5, 10), local(self.m, 2026, 5, 13)
        sub = subscription(self.m, local(self.m, 2026, 4, 1), "50.00", end)
        req = request(
            RequestKind.SERVICE_DISRUPTION,
            end,
            payment=sub.payments[1],
            subscription=sub,
            reason=None,
            outage=outage(start, end, "internal", start + timedelta(hours=1)),
            covering=sub.payments,
        )
        d = decide_refund(self.m, req, customer(), end)
        assert d.amount == cash(self.m, "4.84")  # 50 × 72 / 744 = 4.8387…
        assert d.explanation == ("Service disrupted for 72 hours: $50.00 × 72 / 744 hours = $4.84.")
