"""Conek's CPA cooling-off (section 10.2): consumers signed up by direct marketing may
cancel in writing within 5 business days (ZA public holidays excluded). The deadline is on
the written cancellation (``CustomerFacts.written_cancel_at``); the refund request may
come later."""

from __future__ import annotations

from datetime import datetime

import pytest

from fairbill.decisions.decision import Decision, DecisionOutcome
from fairbill.decisions.facts import CustomerFacts
from fairbill.decisions.reasons import Reason
from fairbill.decisions.refund import decide_refund
from fairbill.policy.model import Destination, RequestKind

from .helpers import cash, customer, local, merchant, payment, request, subscription

M = merchant("conek")
SALE = local(M, 2026, 4, 1, 10)  # Wednesday
CLAUSES = ("conek/cooling-off", "conek/refund-destination")
# Business days after Wed 04-01: Apr 2, 7, 8, 9, 10 (Good Friday 04-03 and Family Day 04-06
# are holidays): the period ends at the end of Fri 2026-04-10.


def consumer(written_cancel_at: datetime | None) -> CustomerFacts:
    return customer(
        type="consumer", acquisition="direct_marketing", written_cancel_at=written_cancel_at
    )


def cool(
    at: datetime,
    who: CustomerFacts | None = None,
    *,
    used: bool = False,
    price: str = "499.00",
) -> Decision:
    """A cooling-off request at ``at``; unless ``who`` says otherwise, the consumer
    cancelled in writing at the moment of the request."""
    sub = subscription(M, SALE, price, at)
    pay = sub.payments[0]
    if price != "499.00":
        pay = payment(M, 1, SALE, price, period=sub.current_period, period_price=cash(M, price))
    req = request(
        RequestKind.COOLING_OFF, at, payment=pay, subscription=sub, used_since_payment=used
    )
    return decide_refund(M, req, who or consumer(at), at)


@pytest.mark.parametrize(
    ("day", "hour", "minute"),
    [(2, 9, 0), (9, 12, 0), (10, 0, 0), (10, 23, 59)],
)
def test_inside_five_business_days(day: int, hour: int, minute: int) -> None:
    """Written cancellation and request together, up to the end of Fri 04-10. The cash
    refund to the card cites the policy's destination rule ("Refunds are issued to the
    original payment method") after the cooling-off clause."""
    d = cool(local(M, 2026, 4, day, hour, minute))
    assert d.outcome == DecisionOutcome.APPROVED
    assert d.amount == cash(M, "499.00")
    assert d.reasons == (Reason.COOLING_OFF_FULL,)
    assert d.clauses == CLAUSES
    assert d.destination == Destination.ORIGINAL_METHOD


@pytest.mark.parametrize(("day", "hour"), [(11, 9), (13, 0), (13, 9)])
def test_after_the_last_business_day(day: int, hour: int) -> None:
    """Written cancellation (and request) on Sat 04-11 or Mon 04-13: too late."""
    at = local(M, 2026, 4, day, hour)
    d = cool(at)
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.amount == cash(M, "0")
    assert d.reasons == (Reason.COOLING_OFF_WINDOW_EXPIRED,)
    assert d.clauses == ("conek/cooling-off",)
    assert "from 2026-04-01 had ended" in d.explanation
    assert f"(2026-04-{day:02d})" in d.explanation


@pytest.mark.parametrize(
    "asked", [local(M, 2026, 4, 11, 9), local(M, 2026, 4, 13, 9), local(M, 2026, 4, 30, 18)]
)
def test_written_cancel_on_day_5_with_the_request_later_is_approved(asked: datetime) -> None:
    """ "You have 5 business days to cancel" / "You must notify us in writing of your
    cancellation": the deadline is on the written cancellation (Fri 04-10, business day
    5), not on the refund request that follows (Sat 04-11, Mon 04-13 = business day 6,
    or later)."""
    d = cool(asked, consumer(local(M, 2026, 4, 10, 16)))
    assert d.outcome == DecisionOutcome.APPROVED
    assert d.amount == cash(M, "499.00")
    assert d.reasons == (Reason.COOLING_OFF_FULL,)
    assert d.clauses == CLAUSES


def test_written_cancel_on_day_6_is_late_even_if_the_request_is_dated_earlier() -> None:
    """The request's own date does not save a written cancellation that came too late."""
    d = cool(local(M, 2026, 4, 9, 12), consumer(local(M, 2026, 4, 13, 0)))
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.reasons == (Reason.COOLING_OFF_WINDOW_EXPIRED,)
    assert "(2026-04-13)" in d.explanation


def test_used_service_refunds_the_unused_part_by_days() -> None:
    """ "Pro-rated refund may apply if some services were used": 499 × 22 / 30."""
    d = cool(local(M, 2026, 4, 9, 12), used=True)
    assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
    assert d.amount == cash(M, "365.93")
    assert d.reasons == (Reason.COOLING_OFF_PRORATED,)
    assert d.clauses == CLAUSES
    assert d.destination == Destination.ORIGINAL_METHOD
    assert "ZAR499.00 × 22 / 30 days = ZAR365.93" in d.explanation


@pytest.mark.parametrize(("unused", "amount"), [(None, "365.93"), ("100.00", "265.93")])
def test_after_use_only_earlier_refunds_of_unused_time_reduce_the_refund(
    unused: str | None, amount: str
) -> None:
    """ "Pro-rated refund may apply if some services were used": 499 × 22 / 30 = 365.93.
    An outage credit of 100.00 paid earlier for time that was used leaves it whole (the
    399.00 left of the payment bounds it); 100.00 already refunded for unused time counts."""
    at = local(M, 2026, 4, 9, 12)
    sub = subscription(
        M,
        SALE,
        "499.00",
        at,
        refunded={1: "100.00"},
        refunded_unused={1: unused} if unused else None,
    )
    req = request(
        RequestKind.COOLING_OFF,
        at,
        payment=sub.payments[0],
        subscription=sub,
        used_since_payment=True,
    )
    d = decide_refund(M, req, consumer(at), at)
    assert d.outcome == DecisionOutcome.PARTIALLY_APPROVED
    assert d.amount == cash(M, amount)
    assert d.reasons == (Reason.COOLING_OFF_PRORATED,)


@pytest.mark.parametrize(
    "who",
    [
        customer(type="business", acquisition="direct_marketing"),
        customer(type="consumer", acquisition="self_serve"),
    ],
)
def test_only_consumers_from_direct_marketing(who: CustomerFacts) -> None:
    """ "If you signed up as a result of direct marketing" / "Business-to-business
    transactions" are excluded."""
    d = cool(local(M, 2026, 4, 2, 10), who)
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.reasons == (Reason.COOLING_OFF_NOT_ELIGIBLE,)


def test_transactions_up_to_one_million_rand() -> None:
    """ "CPA Does Not Apply To: Transactions over R1,000,000" """
    ok = cool(local(M, 2026, 4, 2, 10), price="1000000.00")
    assert ok.outcome == DecisionOutcome.APPROVED
    assert ok.amount == cash(M, "1000000.00")
    over = cool(local(M, 2026, 4, 2, 10), price="1000000.01")
    assert over.outcome == DecisionOutcome.DECLINED
    assert over.reasons == (Reason.COOLING_OFF_OVER_LIMIT,)


def test_cancellation_must_be_in_writing() -> None:
    """ "You must notify us in writing of your cancellation": a request inside the window
    with no written cancellation on record is declined."""
    d = cool(local(M, 2026, 4, 2, 10), consumer(None))
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.amount == cash(M, "0")
    assert d.reasons == (Reason.COOLING_OFF_NOT_WRITTEN,)
    assert d.clauses == ("conek/cooling-off",)
    assert d.recommendation is None


def test_a_written_notice_from_before_the_sale_does_not_count() -> None:
    """A written cancellation dated before the sale cancels nothing of this sale."""
    d = cool(local(M, 2026, 4, 2, 10), consumer(local(M, 2026, 3, 31, 10)))
    assert d.outcome == DecisionOutcome.DECLINED
    assert d.reasons == (Reason.COOLING_OFF_NOT_WRITTEN,)
