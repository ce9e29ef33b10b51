"""``decide_refund`` per policy and request kind: requirements, automatic declines,
exception refunds, the ceiling and the destination."""

from __future__ import annotations

from datetime import datetime

import pytest

from fairbill.decisions.cancellation import decide_cancel
from fairbill.decisions.decision import Decision, DecisionOutcome, PaymentRefund, Recommendation
from fairbill.decisions.facts import CustomerFacts, Merchant, PaymentFacts, SubscriptionFacts
from fairbill.decisions.reasons import Reason
from fairbill.decisions.refund import decide_refund
from fairbill.policy.model import Destination, ItemKind, RequestKind

from .helpers import cash, customer, local, merchant, outage, payment, request, subscription

K = RequestKind


def ask(
    m: Merchant,
    kind: RequestKind,
    at: datetime,
    pay: PaymentFacts | None,
    sub: SubscriptionFacts | None = None,
    who: CustomerFacts | None = None,
    **kw: object,
) -> Decision:
    req = request(kind, at, payment=pay, subscription=sub, **kw)  # type: ignore[arg-type]
    return decide_refund(m, req, who or customer(), at)


def declined(d: Decision, reason: Reason, clause: str | None) -> None:
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.amount.is_zero
    assert d.reasons == (reason,)
    assert d.clauses == ((clause,) if clause else ())
    assert d.recommendation is None


# -- emailconsul ------------------------------------------------------------------------------


class TestEmailConsul:
    def setup_method(self) -> None:
        self.m = merchant("emailconsul")
        self.anchor = local(self.m, 2026, 3, 1)
        self.now = local(self.m, 2026, 3, 10)
        self.sub = subscription(self.m, self.anchor, "30.00", self.now)
        self.pay = self.sub.payments[0]

    def r(self, kind: RequestKind = K.MONEY_BACK, **kw: object) -> Decision:
        at = kw.pop("at", self.now)
        pay = kw.pop("pay", self.pay)
        who = kw.pop("who", None)
        return ask(self.m, kind, at, pay, self.sub, who, **kw)  # type: ignore[arg-type]

    # "EmailConsul can decline the refund request due to the following reasons:"
    @pytest.mark.parametrize("reason", [None, "", "   "])
    def test_decline_no_reason(self, reason: str | None) -> None:
        """ "If no refund request reason is provided;" """
        declined(self.r(reason=reason), Reason.REASON_MISSING, "emailconsul/decline-no-reason")

    @pytest.mark.parametrize("kind", list(RequestKind))
    @pytest.mark.parametrize("used", [False, True])
    def test_decline_on_go_funds(self, kind: RequestKind, used: bool) -> None:
        """ "Refund is requested for “on go” plan funds;" — interpretation.md: a payment for
        a one-time message_credits product; any request about it is declined under that
        clause, whatever its kind, whether or not the credits were used."""
        credits = payment(
            self.m, 2, local(self.m, 2026, 3, 5), "20.00", item=ItemKind.MESSAGE_CREDITS
        )
        d = self.r(kind, pay=credits, used_since_payment=used)
        declined(d, Reason.ON_GO_FUNDS, "emailconsul/decline-on-go-funds")
        assert d.explanation == (
            'Payment 2 bought message credits: "on go" plan funds, which are not refunded.'
        )

    def test_on_go_funds_decline_comes_before_a_missing_reason(self) -> None:
        """A reason would not change the answer, so the customer is told the one that holds."""
        credits = payment(
            self.m, 2, local(self.m, 2026, 3, 5), "20.00", item=ItemKind.MESSAGE_CREDITS
        )
        declined(
            self.r(pay=credits, reason=None), Reason.ON_GO_FUNDS, "emailconsul/decline-on-go-funds"
        )

    @pytest.mark.parametrize("item", [i for i in ItemKind if i != ItemKind.MESSAGE_CREDITS])
    def test_other_payments_are_not_on_go_funds(self, item: ItemKind) -> None:
        pay = payment(self.m, 2, local(self.m, 2026, 3, 5), "20.00", item=item)
        assert Reason.ON_GO_FUNDS not in self.r(pay=pay).reasons

    def test_decline_different_payment_method(self) -> None:
        """ "Payment method in the refund request is different from the one used ..." """
        d = self.r(refund_to="paypal_9")
        declined(d, Reason.DIFFERENT_PAYMENT_METHOD, "emailconsul/decline-different-method")
        assert "card_1" in d.explanation and "paypal_9" in d.explanation

    def test_same_payment_method_is_not_a_ground(self) -> None:
        assert self.r(refund_to="card_1").outcome == DecisionOutcome.NEEDS_REVIEW

    def test_decline_violation(self) -> None:
        """ "In case of violation of applicable laws, terms and conditions ..." """
        d = self.r(who=customer(in_violation=True))
        declined(d, Reason.ACCOUNT_IN_VIOLATION, "emailconsul/decline-violation")

    @pytest.mark.parametrize(
        "kind", [K.MONEY_BACK, K.BILLING_ERROR, K.OVERPAYMENT, K.PAYMENT_BY_MISTAKE]
    )
    def test_decline_window_expired_day_31(self, kind: RequestKind) -> None:
        """ "If the 30-day period from the service payment date has expired, even if the
        service was not used during this period." Paid 03-01: 04-01 is out."""
        d = self.r(kind, at=local(self.m, 2026, 4, 1, 0, 0), order_numbers=("1", "2"))
        declined(d, Reason.REQUEST_WINDOW_EXPIRED, "emailconsul/decline-window-expired")

    @pytest.mark.parametrize(("hour", "minute"), [(0, 0), (23, 59)])
    def test_window_day_30_is_in(self, hour: int, minute: int) -> None:
        d = self.r(at=local(self.m, 2026, 3, 31, hour, minute))
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "30.00"), Destination.ORIGINAL_METHOD
        )

    def test_grounds_are_checked_before_the_window(self) -> None:
        d = self.r(at=local(self.m, 2026, 5, 1), reason=None)
        assert d.reasons == (Reason.REASON_MISSING,)

    def test_decline_no_order_number(self) -> None:
        """ "Order number, you wish to receive refund for." """
        d = self.r(K.EXCEPTIONAL, pay=None)
        declined(d, Reason.ORDER_NUMBER_MISSING, "emailconsul/request-contents")

    # "Anytime during the 30-day period from the payment date, you are eligible for a full
    # or a partial refund for unused service."
    def test_money_back_unused_recommends_full_refund(self) -> None:
        d = self.r()
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.amount == cash(self.m, "30.00")
        assert d.reasons == (Reason.UNUSED_SINCE_PAYMENT_FULL,)
        # "Refund is processed strictly via the same payment method": cited after the rule.
        assert d.clauses == ("emailconsul/money-back-guarantee", "emailconsul/same-method")
        assert d.destination == Destination.ORIGINAL_METHOD

    def test_money_back_used_recommends_unused_days(self) -> None:
        d = self.r(at=local(self.m, 2026, 3, 20), used_since_payment=True)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.PARTIALLY_APPROVED, cash(self.m, "11.61"), Destination.ORIGINAL_METHOD
        )
        assert d.reasons == (Reason.USED_SINCE_PAYMENT_PRORATED,)
        assert "$30.00 × 12 / 31 days = $11.61" in d.explanation

    @pytest.mark.parametrize(
        ("kind", "day", "amount"),
        [
            (K.MONEY_BACK, 20, "11.61"),  # 30 × 12 / 31, from the request on 03-20
            (K.TERMS_DECLINED, 16, "16.45"),  # 30 × 17 / 31, from the decline on 03-15
        ],
    )
    def test_an_earlier_refund_for_used_time_does_not_reduce_the_unused_days(
        self, kind: RequestKind, day: int, amount: str
    ) -> None:
        """ "a full or a partial refund for unused service" / "prorated to the unused
        service time from the date of a decline": $5.00 given back earlier for time that was
        used (say, at EmailConsul's discretion) leaves the unused days whole."""
        at = local(self.m, 2026, 3, day)
        sub = subscription(self.m, self.anchor, "30.00", at, refunded={1: "5.00"})
        who = customer(
            terms_notice_at=local(self.m, 2026, 3, 5), terms_declined_at=local(self.m, 2026, 3, 15)
        )
        d = ask(self.m, kind, at, sub.payments[0], sub, who, used_since_payment=True)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation is not None
        assert d.recommendation.amount == cash(self.m, amount)
        assert "already refunded" not in d.explanation

    def test_money_back_window_counts_from_each_payment(self) -> None:
        """A renewal paid on 04-01 is covered on 04-20 although the first payment is not."""
        now = local(self.m, 2026, 4, 20)
        sub = subscription(self.m, self.anchor, "30.00", now)
        d = ask(self.m, K.MONEY_BACK, now, sub.payments[1], sub, used_since_payment=True)
        assert d.recommendation is not None
        assert d.recommendation.amount == cash(self.m, "11.00")  # 30 × 11 / 30

    def test_money_back_for_a_renewal_not_used_recommends_it_in_full(self) -> None:
        """ "... or was processed automatically and the service is no longer used" """
        now = local(self.m, 2026, 4, 3)
        sub = subscription(self.m, self.anchor, "30.00", now)
        d = ask(self.m, K.MONEY_BACK, now, sub.payments[1], sub)
        assert d.recommendation is not None
        assert d.recommendation.amount == cash(self.m, "30.00")
        assert d.recommendation.outcome == DecisionOutcome.APPROVED

    def test_billing_error_for_unused_automatic_renewal_recommends_full_refund(self) -> None:
        """ "... or was processed automatically and the service is no longer used": an
        automatic renewal with no use since is a payment in error, refundable in full."""
        now = local(self.m, 2026, 4, 3)
        sub = subscription(self.m, self.anchor, "30.00", now)
        d = ask(self.m, K.BILLING_ERROR, now, sub.payments[1], sub)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.amount == cash(self.m, "30.00")
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "30.00"), Destination.ORIGINAL_METHOD
        )
        assert d.reasons == (Reason.UNUSED_SINCE_PAYMENT_FULL,)
        assert d.clauses[-1] == "emailconsul/same-method"
        assert "automatic renewal" in d.explanation

    def test_billing_error_for_a_used_renewal_is_not_an_error(self) -> None:
        """Used since the renewal: nothing was charged in error; a reviewer decides, with
        a decline recommended and no destination rule cited."""
        now = local(self.m, 2026, 4, 3)
        sub = subscription(self.m, self.anchor, "30.00", now)
        d = ask(self.m, K.BILLING_ERROR, now, sub.payments[1], sub, used_since_payment=True)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.reasons == (Reason.BILLING_ERROR_NOT_FOUND,)
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(self.m, "0"), None)
        assert "emailconsul/same-method" not in d.clauses

    def test_billing_error_for_the_first_payment_is_not_an_automatic_renewal(self) -> None:
        d = self.r(K.BILLING_ERROR)
        assert d.reasons == (Reason.BILLING_ERROR_NOT_FOUND,)
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(self.m, "0"), None)

    def test_a_sign_up_after_an_earlier_purchase_is_not_an_automatic_renewal(self) -> None:
        """ "processed automatically" is about renewals, not the customer's payment number:
        the sign-up is the customer's payment 2 (a purchase came first) but no renewal."""
        sign_up = payment(
            self.m,
            2,
            self.anchor,
            "30.00",
            period=self.sub.current_period,
            period_price=cash(self.m, "30.00"),
            is_renewal=False,
        )
        d = self.r(K.BILLING_ERROR, pay=sign_up)
        assert d.reasons == (Reason.BILLING_ERROR_NOT_FOUND,)
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(self.m, "0"), None)

    def test_overpayment_recommends_the_excess(self) -> None:
        """ "If payment sum exceeds the required by the subscription plan;" """
        pay = payment(self.m, 1, self.anchor, "45.00", overcharge="15.00")
        d = self.r(K.OVERPAYMENT, pay=pay)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "15.00"), Destination.ORIGINAL_METHOD
        )
        assert d.reasons == (Reason.OVERPAYMENT_CONFIRMED,)
        assert d.clauses == ("emailconsul/overpayment", "emailconsul/same-method")

    def test_overpayment_not_on_record_recommends_decline(self) -> None:
        d = self.r(K.OVERPAYMENT)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(self.m, "0"), None)

    def test_payment_by_mistake_needs_both_order_numbers(self) -> None:
        """ "Provide both order numbers. Start with the order you wish to be refunded for." """
        d = self.r(K.PAYMENT_BY_MISTAKE)
        declined(d, Reason.ORDER_NUMBER_MISSING, "emailconsul/payment-by-mistake")
        d = self.r(K.PAYMENT_BY_MISTAKE, order_numbers=("7",))
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.reasons == (Reason.PAYMENT_BY_MISTAKE,)
        assert d.amount == cash(self.m, "30.00")

    def test_duplicate_payment_recommends_full_refund(self) -> None:
        dup = payment(self.m, 2, self.anchor, "30.00", is_duplicate=True)
        d = self.r(K.DUPLICATE_CHARGE, pay=dup)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.amount == cash(self.m, "30.00")
        assert d.clauses == ("emailconsul/duplicate-payment", "emailconsul/same-method")

    # "... during the 10-day period from being informed of such, a decline to re-accept new
    # Terms and Conditions ... prorated to the unused service time from the date of a decline."
    def test_terms_declined_on_day_10_refunds_from_the_decline_date(self) -> None:
        who = customer(
            terms_notice_at=local(self.m, 2026, 3, 5), terms_declined_at=local(self.m, 2026, 3, 15)
        )
        d = self.r(K.TERMS_DECLINED, who=who)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.amount == cash(self.m, "16.45")  # 30 × 17 / 31, from 03-15
        assert d.reasons == (Reason.TERMS_DECLINED_IN_WINDOW,)
        assert d.clauses == ("emailconsul/terms-declined", "emailconsul/same-method")

    def test_terms_declined_on_day_11_is_declined(self) -> None:
        who = customer(
            terms_notice_at=local(self.m, 2026, 3, 5), terms_declined_at=local(self.m, 2026, 3, 16)
        )
        d = self.r(K.TERMS_DECLINED, who=who)
        declined(d, Reason.TERMS_DECLINE_WINDOW_EXPIRED, "emailconsul/terms-declined")

    def test_terms_declined_without_a_notice(self) -> None:
        declined(self.r(K.TERMS_DECLINED), Reason.NO_TERMS_NOTICE, "emailconsul/terms-declined")

    def test_other_scenarios_are_left_to_emailconsul(self) -> None:
        """ "In other scenarios, refund will be approved if deemed appropriate" """
        d = self.r(K.EXCEPTIONAL)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.reasons == (Reason.EXCEPTIONAL_AT_DISCRETION,)
        assert d.clauses == ("emailconsul/other-scenarios",)
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(self.m, "0"), None)


# -- conek ------------------------------------------------------------------------------------


class TestConek:
    def setup_method(self) -> None:
        self.m = merchant("conek")
        self.anchor = local(self.m, 2026, 3, 1, 10)
        self.now = local(self.m, 2026, 3, 10, 10)
        self.sub = subscription(self.m, self.anchor, "499.00", self.now)
        self.pay = self.sub.payments[0]

    def r(self, kind: RequestKind, pay: PaymentFacts | None = None, **kw: object) -> Decision:
        at = kw.pop("at", self.now)
        return ask(self.m, kind, at, pay or self.pay, self.sub, **kw)  # type: ignore[arg-type]

    @pytest.mark.parametrize("kind", [K.MONEY_BACK, K.UNUSED_PERIOD])
    def test_subscription_fees_are_not_refundable(self, kind: RequestKind) -> None:
        """ "As a general rule, all payments made for Conek services are non-refundable." """
        d = self.r(kind)
        declined(d, Reason.NON_REFUNDABLE_PERIOD_STARTED, "conek/no-refund-general")

    @pytest.mark.parametrize(
        "item", [ItemKind.MESSAGE_CREDITS, ItemKind.SETUP_FEE, ItemKind.ADD_ON, ItemKind.OVERAGE]
    )
    def test_other_items_are_not_refundable(self, item: ItemKind) -> None:
        pay = payment(self.m, 2, self.anchor, "300.00", item=item)
        declined(self.r(K.MONEY_BACK, pay), Reason.NON_REFUNDABLE_ITEM, "conek/no-refund-general")

    def test_every_request_needs_a_reason(self) -> None:
        d = self.r(K.DUPLICATE_CHARGE, reason=None)
        declined(d, Reason.REASON_MISSING, "conek/request-process")

    def test_request_window_30_days_from_the_charge(self) -> None:
        """ "Contact us within 30 days of the charge": charged 03-01, 03-31 in, 04-01 out."""
        dup = payment(self.m, 2, self.anchor, "499.00", is_duplicate=True)
        assert self.r(K.DUPLICATE_CHARGE, dup, at=local(self.m, 2026, 3, 31, 23, 59)).pays_now
        d = self.r(K.DUPLICATE_CHARGE, dup, at=local(self.m, 2026, 4, 1))
        declined(d, Reason.REQUEST_WINDOW_EXPIRED, "conek/request-process")

    def test_duplicate_charge_is_refunded_in_full_automatically(self) -> None:
        """ "we will refund the duplicate charge(s) in full." """
        dup = payment(self.m, 2, self.anchor, "499.00", is_duplicate=True)
        d = self.r(K.DUPLICATE_CHARGE, dup)
        assert d.outcome == DecisionOutcome.APPROVED
        assert d.amount == cash(self.m, "499.00")
        assert d.destination == Destination.ORIGINAL_METHOD
        # "Refunds are issued to the original payment method": cited after the rule.
        assert d.clauses == ("conek/duplicate-charges", "conek/refund-destination")

    def test_duplicate_not_on_record_is_declined(self) -> None:
        d = self.r(K.DUPLICATE_CHARGE)
        declined(d, Reason.DUPLICATE_CHARGE_NOT_FOUND, "conek/duplicate-charges")

    @pytest.mark.parametrize(
        ("kind", "reason"),
        [
            (K.BILLING_ERROR, Reason.BILLING_ERROR_CONFIRMED),
            (K.OVERPAYMENT, Reason.OVERPAYMENT_CONFIRMED),
        ],
    )
    def test_billing_error_refunds_the_overcharge(self, kind: RequestKind, reason: Reason) -> None:
        """ "we will correct the error and refund any overcharge." """
        pay = payment(self.m, 1, self.anchor, "599.00", overcharge="100.00")
        d = self.r(kind, pay)
        assert d.outcome == DecisionOutcome.APPROVED
        assert d.amount == cash(self.m, "100.00")
        assert d.reasons == (reason,)
        assert d.clauses == ("conek/billing-errors", "conek/refund-destination")

    @pytest.mark.parametrize("kind", [K.BILLING_ERROR, K.OVERPAYMENT])
    def test_overcharge_taken_as_its_own_payment_is_refunded_exactly_and_once(
        self, kind: RequestKind
    ) -> None:
        """ "refund any overcharge": an overcharge is charged as a payment of its own
        (``accounts.billing_mistake``, ``is_duplicate``), so a claim naming it gets that
        payment back, which is exactly the excess; once given back, nothing is left."""
        excess = payment(self.m, 2, self.anchor, "100.00", is_duplicate=True)
        d = self.r(kind, excess)
        assert d.outcome == DecisionOutcome.APPROVED
        assert d.amount == cash(self.m, "100.00")
        assert d.clauses == ("conek/billing-errors", "conek/refund-destination")
        corrected = payment(self.m, 2, self.anchor, "100.00", refunded="100.00", is_duplicate=True)
        d = self.r(kind, corrected)
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.amount.is_zero
        assert d.reasons[-1] == Reason.NOTHING_LEFT_TO_REFUND

    def test_unauthorized_needs_documents(self) -> None:
        """ "... report this to us within 30 days with supporting documentation" """
        declined(self.r(K.UNAUTHORIZED), Reason.DOCUMENTS_MISSING, "conek/unauthorized")
        d = self.r(K.UNAUTHORIZED, documents=("bank-letter.pdf",))
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "499.00"), Destination.ORIGINAL_METHOD
        )
        assert d.reasons == (Reason.UNAUTHORIZED_TO_INVESTIGATE,)

    def test_non_delivery_after_14_days(self) -> None:
        """ "... unable to resolve the issue within 14 days, you may be eligible for a full
        or partial refund." """
        start = local(self.m, 2026, 3, 2, 10)
        long = outage(start, local(self.m, 2026, 3, 16, 10, 1))
        d = self.r(K.NON_DELIVERY, outage=long)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.reasons == (Reason.NON_DELIVERY_CONFIRMED,)
        assert d.amount == cash(self.m, "499.00")
        # a refund is recommended: the destination rule is cited
        assert d.clauses == ("conek/non-delivery", "conek/refund-destination")

    @pytest.mark.parametrize("minute", [0, 59])
    def test_non_delivery_resolved_at_exactly_14_days_was_resolved_within_them(
        self, minute: int
    ) -> None:
        """ "unable to resolve the issue within 14 days": resolved 14 days to the minute
        after it began (or sooner), it was resolved within 14 days: strictly longer is
        needed, as for "more than 72 consecutive hours"."""
        start = local(self.m, 2026, 3, 2, 10)
        end = local(self.m, 2026, 3, 16, 10) if minute == 0 else local(self.m, 2026, 3, 16, 9, 59)
        d = self.r(K.NON_DELIVERY, outage=outage(start, end))
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.reasons == (Reason.NON_DELIVERY_NOT_ESTABLISHED,)
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(self.m, "0"), None)
        assert "No failure to deliver lasting more than 14 days is on record" in d.explanation
        assert d.recommendation == Recommendation(DecisionOutcome.DECLINED, cash(self.m, "0"), None)
        # nothing is recommended: no destination rule fired
        assert d.clauses == ("conek/non-delivery",)

    def test_extraordinary_is_left_to_a_reviewer(self) -> None:
        d = self.r(K.EXCEPTIONAL)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.clauses == ("conek/extraordinary",)  # nothing recommended: no destination
        assert d.amount == cash(self.m, "0")

    def test_failed_delivery_is_not_a_money_refund(self) -> None:
        declined(self.r(K.FAILED_DELIVERY), Reason.FAILED_DELIVERY_NOT_RETURNED, None)


# -- qomon ------------------------------------------------------------------------------------


class TestQomon:
    def setup_method(self) -> None:
        self.m = merchant("qomon")
        self.anchor = local(self.m, 2026, 3, 1)
        self.now = local(self.m, 2026, 3, 10)
        self.sub = subscription(self.m, self.anchor, "100.00", self.now)
        self.pay = self.sub.payments[0]

    def r(self, kind: RequestKind, pay: PaymentFacts | None = None, **kw: object) -> Decision:
        return ask(self.m, kind, self.now, pay or self.pay, self.sub, **kw)  # type: ignore[arg-type]

    @pytest.mark.parametrize("kind", [K.MONEY_BACK, K.UNUSED_PERIOD])
    def test_started_period_is_not_refundable(self, kind: RequestKind) -> None:
        """ "subscription fees are non-refundable once the billing period has started" """
        d = self.r(kind, who=customer(type="consumer", acquisition="direct_marketing"))
        declined(d, Reason.NON_REFUNDABLE_PERIOD_STARTED, "qomon/subscription-fees-non-refundable")

    def test_withdrawal_is_declined_citing_the_waiver(self) -> None:
        """ "by subscribing and completing payment, you expressly waive your right of
        withdrawal" """
        d = self.r(K.COOLING_OFF, who=customer(type="consumer", acquisition="direct_marketing"))
        declined(d, Reason.WITHDRAWAL_WAIVED, "qomon/withdrawal-waived")

    @pytest.mark.parametrize(
        "item",
        [ItemKind.MESSAGE_CREDITS, ItemKind.TRAINING, ItemKind.ADD_ON, ItemKind.DATA_PRODUCT],
    )
    def test_listed_items_are_not_refundable(self, item: ItemKind) -> None:
        """ "SMS, MMS, and email credits / training and onboarding services / one-time
        add-ons / data products" """
        pay = payment(self.m, 2, self.anchor, "50.00", item=item)
        declined(
            self.r(K.MONEY_BACK, pay), Reason.NON_REFUNDABLE_ITEM, "qomon/non-refundable-items"
        )

    def test_duplicate_charge_goes_to_the_wallet_after_review(self) -> None:
        """ "Whenever possible, corrections and refunds are issued as credits in the Qomon
        Wallet" """
        dup = payment(self.m, 2, local(self.m, 2026, 3, 1, 0, 5), "100.00", is_duplicate=True)
        d = self.r(K.DUPLICATE_CHARGE, dup)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "100.00"), Destination.WALLET
        )
        assert d.reasons == (Reason.DUPLICATE_CHARGE_CONFIRMED, Reason.DESTINATION_WALLET)
        assert d.clauses == ("qomon/duplicate-charge-correction", "qomon/wallet-corrections")

    def test_aml_flag_sends_corrections_to_the_original_method(self) -> None:
        """ "anti-fraud or anti–money laundering regulations may require refunds to be
        issued to the original payment method" """
        dup = payment(self.m, 2, self.anchor, "100.00", is_duplicate=True)
        d = self.r(K.DUPLICATE_CHARGE, dup, who=customer(flags=frozenset({"aml_review"})))
        assert d.destination == Destination.ORIGINAL_METHOD
        assert d.recommendation is not None
        assert d.recommendation.destination == Destination.ORIGINAL_METHOD
        assert d.reasons[-1] == Reason.DESTINATION_AML_ORIGINAL_METHOD

    def test_billing_error_corrects_the_overcharge_to_the_wallet(self) -> None:
        pay = payment(self.m, 1, self.anchor, "160.00", overcharge="60.00")
        d = self.r(K.BILLING_ERROR, pay)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "60.00"), Destination.WALLET
        )
        assert d.clauses[0] == "qomon/billing-error-correction"

    def test_exceptional_cases_are_at_qomons_discretion(self) -> None:
        d = self.r(K.EXCEPTIONAL)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.reasons[0] == Reason.EXCEPTIONAL_AT_DISCRETION
        assert d.clauses[0] == "qomon/exceptional-cases"

    def test_service_disruption_has_no_clause(self) -> None:
        o = outage(local(self.m, 2026, 3, 2), local(self.m, 2026, 3, 8))
        declined(self.r(K.SERVICE_DISRUPTION, outage=o), Reason.NO_CLAUSE_GRANTS_REFUND, None)


# -- voip -------------------------------------------------------------------------------------


class TestVoip:
    def setup_method(self) -> None:
        self.m = merchant("voip")
        self.anchor = local(self.m, 2026, 3, 1)
        self.now = local(self.m, 2026, 3, 10)
        self.sub = subscription(self.m, self.anchor, "50.00", self.now)

    @pytest.mark.parametrize(
        ("kind", "clause", "reason"),
        [
            (K.BILLING_ERROR, "voip/billing-errors", Reason.BILLING_ERROR_CONFIRMED),
            (K.OVERPAYMENT, "voip/overbilling", Reason.OVERPAYMENT_CONFIRMED),
        ],
    )
    def test_billing_errors_are_investigated(
        self, kind: RequestKind, clause: str, reason: Reason
    ) -> None:
        """ "we will investigate the matter promptly. If an error is confirmed, a refund or
        credit will be issued to the customer for the overcharged amount." """
        pay = payment(self.m, 1, self.anchor, "65.00", overcharge="15.00")
        d = ask(self.m, kind, self.now, pay, self.sub)
        assert d.outcome == DecisionOutcome.NEEDS_REVIEW
        assert d.recommendation == Recommendation(
            DecisionOutcome.APPROVED, cash(self.m, "15.00"), Destination.ORIGINAL_METHOD
        )
        assert d.clauses == (clause,)
        assert d.reasons == (reason,)

    def test_unused_period_request_refunds_unused_days(self) -> None:
        d = ask(self.m, K.UNUSED_PERIOD, self.now, self.sub.payments[0], self.sub)
        assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
        assert d.amount == cash(self.m, "35.48")  # 50 × 22 / 31
        assert d.clauses == ("voip/unused-period-request",)

    def test_unused_days_are_not_refunded_twice(self) -> None:
        """After an immediate cancellation refunded the 21 unused days ($33.87), an
        unused-period request pays nothing more: the used part stays paid."""
        now = local(self.m, 2026, 3, 11, 10)
        sub = subscription(
            self.m, self.anchor, "50.00", now, refunded={1: "33.87"}, refunded_unused={1: "33.87"}
        )
        d = ask(self.m, K.UNUSED_PERIOD, now, sub.payments[0], sub)
        assert d.amount == cash(self.m, "0")
        assert d.outcome == DecisionOutcome.DECLINED
        assert d.clauses == ("voip/unused-period-request",)
        assert (
            "$50.00 × 21 / 31 days = $33.87; less $33.87 already refunded for unused days: "
            "$0.00." in d.explanation
        )

    def test_unused_days_net_of_an_earlier_refund_of_unused_days(self) -> None:
        """$50 × 22 / 31 = $35.48 unused, $10.00 of it already refunded: $25.48 (not the
        $35.48 the ceiling of $40.00 left would allow)."""
        sub = subscription(
            self.m,
            self.anchor,
            "50.00",
            self.now,
            refunded={1: "10.00"},
            refunded_unused={1: "10.00"},
        )
        d = ask(self.m, K.UNUSED_PERIOD, self.now, sub.payments[0], sub)
        assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
        assert d.amount == cash(self.m, "25.48")
        assert d.reasons == (Reason.REFUND_UNUSED_DAYS,)
        assert "= $35.48; less $10.00 already refunded for unused days: $25.48." in d.explanation

    def test_a_disruption_refund_does_not_reduce_the_unused_days(self) -> None:
        """ "a pro-rata refund for the affected period" paid $5.00 for days that were used;
        "a pro-rata refund for the unused portion" still refunds every unused day:
        $50 × 22 / 31 = $35.48, within the $45.00 left of the payment."""
        sub = subscription(self.m, self.anchor, "50.00", self.now, refunded={1: "5.00"})
        d = ask(self.m, K.UNUSED_PERIOD, self.now, sub.payments[0], sub)
        assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
        assert d.amount == cash(self.m, "35.48")
        assert d.reasons == (Reason.REFUND_UNUSED_DAYS,)
        assert "already refunded" not in d.explanation

    def test_after_a_disruption_refund_only_the_ceiling_bounds_the_unused_days(self) -> None:
        """$20.00 of disruption refunds leave $30.00 of the payment: the $35.48 of unused
        days is capped there, not reduced by the $20.00."""
        sub = subscription(self.m, self.anchor, "50.00", self.now, refunded={1: "20.00"})
        d = ask(self.m, K.UNUSED_PERIOD, self.now, sub.payments[0], sub)
        assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
        assert d.amount == cash(self.m, "30.00")
        assert d.reasons == (Reason.REFUND_UNUSED_DAYS, Reason.CAPPED_AT_AMOUNT_PAID)
        assert "= $35.48. Capped at $30.00" in d.explanation

    @pytest.mark.parametrize("disruption", ["0.00", "5.00", "20.00"])
    def test_a_request_pays_what_an_immediate_cancel_pays_on_the_same_history(
        self, disruption: str
    ) -> None:
        """voip/unused-period-request reading: the request is "the same outcome as
        cancelling immediately on that date"."""
        sub = subscription(self.m, self.anchor, "50.00", self.now, refunded={1: disruption})
        asked = ask(self.m, K.UNUSED_PERIOD, self.now, sub.payments[0], sub)
        cancelled = decide_cancel(self.m, sub, self.now, immediately=True)
        assert asked.amount == cancelled.decision.amount

    def test_money_back_has_no_clause(self) -> None:
        d = ask(self.m, K.MONEY_BACK, self.now, self.sub.payments[0], self.sub)
        declined(d, Reason.NO_CLAUSE_GRANTS_REFUND, None)


# -- kalenner ----------------------------------------------------------------------------------


class TestKalenner:
    def test_refund_request_inside_the_guarantee_needs_no_reason(self) -> None:
        """« pour toute raison » / « la raison de l'annulation (facultatif) »."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 3, 5, 10)
        now = local(m, 2026, 3, 19, 20)
        sub = subscription(m, anchor, "29.00", now)
        d = ask(m, K.MONEY_BACK, now, sub.payments[0], sub, reason=None)
        assert d.outcome == DecisionOutcome.APPROVED
        assert d.amount == cash(m, "29.00")
        assert d.reasons == (Reason.GUARANTEE_FULL_REFUND,)
        assert d.clauses == ("kalenner/guarantee",)

    @pytest.mark.parametrize("named", [1, 2])
    def test_money_back_inside_the_guarantee_refunds_the_upgrade_too(self, named: int) -> None:
        """interpretation.md: « un remboursement à 100% » is everything paid for the
        subscription inside the 14 days — an upgrade charged then too — whichever way the
        customer asks: a money-back request naming any one of those payments refunds both,
        as cancelling would. 19.00 on 02-05, upgrade 10.00 on 02-19 (day 14)."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 2, 5, 9)
        now = local(m, 2026, 2, 19, 18)
        upgrade = payment(m, 2, local(m, 2026, 2, 19, 12), "10.00", subscription_id=1)
        sub = subscription(m, anchor, "19.00", now, extra_payments=(upgrade,))
        d = ask(m, K.MONEY_BACK, now, sub.payments[named - 1], sub, reason=None)
        assert d.outcome == DecisionOutcome.APPROVED
        assert d.amount == cash(m, "29.00")
        assert d.refunds == (PaymentRefund(1, cash(m, "19.00")), PaymentRefund(2, cash(m, "10.00")))
        assert d.reasons == (Reason.GUARANTEE_FULL_REFUND,)
        assert d.clauses == ("kalenner/guarantee",)
        assert d.destination == Destination.ORIGINAL_METHOD
        assert d.explanation == (
            "Within the 14-day guarantee from the subscription on 2026-02-05: everything paid "
            "for it is refunded in full: €19.00 (payment 1) + €10.00 (payment 2) = €29.00."
        )
        cancelled = decide_cancel(m, sub, now)
        assert cancelled.refunds == d.refunds
        assert cancelled.decision.amount == d.amount

    def test_money_back_inside_the_guarantee_refunds_what_is_left_of_each_payment(self) -> None:
        """Never beyond the ceiling: 5.00 of the 19.00 already went back."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 2, 5, 9)
        now = local(m, 2026, 2, 12, 9)
        upgrade = payment(m, 2, local(m, 2026, 2, 8, 12), "17.86", subscription_id=1)
        sub = subscription(m, anchor, "19.00", now, refunded={1: "5.00"}, extra_payments=(upgrade,))
        d = ask(m, K.MONEY_BACK, now, upgrade, sub)
        assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
        assert d.amount == cash(m, "31.86")
        assert d.refunds == (PaymentRefund(1, cash(m, "14.00")), PaymentRefund(2, cash(m, "17.86")))
        assert d.reasons == (Reason.GUARANTEE_FULL_REFUND,)

    def test_refund_request_on_day_15_is_declined(self) -> None:
        m = merchant("kalenner")
        anchor = local(m, 2026, 3, 5, 10)
        now = local(m, 2026, 3, 20, 0)
        sub = subscription(m, anchor, "29.00", now)
        d = ask(m, K.MONEY_BACK, now, sub.payments[0], sub)
        declined(d, Reason.GUARANTEE_WINDOW_EXPIRED, "kalenner/guarantee")

    def test_refund_request_on_a_later_subscription_is_not_covered(self) -> None:
        """interpretation.md: the guarantee applies only to the initial subscription."""
        m = merchant("kalenner")
        anchor = local(m, 2026, 3, 5, 10)
        now = local(m, 2026, 3, 8, 10)
        sub = subscription(m, anchor, "29.00", now, is_first=False)
        d = ask(m, K.MONEY_BACK, now, sub.payments[0], sub)
        declined(d, Reason.GUARANTEE_NOT_FIRST_PURCHASE, "kalenner/guarantee")


# -- the ceiling -----------------------------------------------------------------------------


def test_ceiling_caps_an_approved_refund_at_what_is_left() -> None:
    m = merchant("conek")
    anchor = local(m, 2026, 4, 1, 10)
    now = local(m, 2026, 4, 9, 12)
    sub = subscription(m, anchor, "499.00", now, refunded={1: "200.00"})
    who = customer(type="consumer", acquisition="direct_marketing", written_cancel_at=now)
    d = ask(m, K.COOLING_OFF, now, sub.payments[0], sub, who)
    assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
    assert d.amount == cash(m, "299.00")
    assert d.reasons == (Reason.COOLING_OFF_FULL, Reason.CAPPED_AT_AMOUNT_PAID)
    assert d.clauses == ("conek/cooling-off", "conek/refund-destination")
    assert "Capped at ZAR299.00, what remains of the payment after earlier refunds." in (
        d.explanation
    )


def test_ceiling_at_zero_declines_with_nothing_left() -> None:
    m = merchant("conek")
    anchor = local(m, 2026, 4, 1, 10)
    now = local(m, 2026, 4, 9, 12)
    sub = subscription(m, anchor, "499.00", now, refunded={1: "499.00"})
    who = customer(type="consumer", acquisition="direct_marketing", written_cancel_at=now)
    d = ask(m, K.COOLING_OFF, now, sub.payments[0], sub, who)
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.amount == cash(m, "0")
    assert d.reasons == (Reason.COOLING_OFF_FULL, Reason.NOTHING_LEFT_TO_REFUND)
    # nothing is paid: the destination rule is not cited
    assert d.clauses == ("conek/cooling-off",)


def test_ceiling_caps_a_recommendation_too() -> None:
    m = merchant("qomon")
    anchor = local(m, 2026, 3, 1)
    now = local(m, 2026, 3, 3)
    dup = payment(m, 2, anchor, "100.00", refunded="70.00", is_duplicate=True)
    sub = subscription(m, anchor, "100.00", now)
    d = ask(m, K.DUPLICATE_CHARGE, now, dup, sub)
    assert d.outcome == DecisionOutcome.NEEDS_REVIEW
    assert d.amount == cash(m, "30.00")
    assert d.recommendation == Recommendation(
        DecisionOutcome.APPROVED, cash(m, "30.00"), Destination.WALLET
    )
    assert Reason.CAPPED_AT_AMOUNT_PAID in d.reasons
