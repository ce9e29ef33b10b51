"""Properties that hold for every policy, whatever the facts (Hypothesis).

- a refund or cancellation never pays more than the payment's amount minus what was
  already refunded (interpretation.md, "Refund amount ceiling"), recommendations included;
- decision amounts are never negative and are rounded to the currency's minor unit;
- a review never pays more than is refundable, and a fee never exceeds the policy's limit.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fairbill.decisions.cancellation import decide_cancel
from fairbill.decisions.decision import Decision, DecisionOutcome, Recommendation
from fairbill.decisions.facts import Merchant
from fairbill.decisions.refund import decide_refund
from fairbill.decisions.review import decide_review
from fairbill.money import Money
from fairbill.policy.model import Destination, Fees, ItemKind, RequestKind

from .helpers import POLICY_IDS, customer, local, merchant, outage, request, subscription

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MERCHANTS = {pid: merchant(pid) for pid in POLICY_IDS}


def rounded(m: Merchant, amount: Money) -> bool:
    """Rounded to the currency's minor unit: ``minor`` raises on a fraction of a cent."""
    return (
        amount.round(m.rounding) == amount and Money.from_minor(amount.minor, m.currency) == amount
    )


def well_formed(m: Merchant, d: Decision) -> None:
    assert d.amount.currency == m.currency
    assert not d.amount.is_negative
    assert rounded(m, d.amount)
    if d.recommendation is not None:
        assert not d.recommendation.amount.is_negative
        assert rounded(m, d.recommendation.amount)
    if d.fee is not None:
        assert not d.fee.is_negative
        assert rounded(m, d.fee)


@st.composite
def story(draw: st.DrawFn) -> tuple[Merchant, datetime, int, int, int]:
    """A merchant, a subscription anchor, its price in minor units, its interval and the
    minutes from the anchor to "now"."""
    m = MERCHANTS[draw(st.sampled_from(POLICY_IDS))]
    day = draw(
        st.dates(min_value=datetime(2025, 1, 1).date(), max_value=datetime(2027, 12, 31).date())
    )
    anchor = local(
        m, day.year, day.month, day.day, draw(st.integers(0, 23)), draw(st.integers(0, 59))
    )
    price = draw(st.integers(min_value=1, max_value=2_000_000))
    months = draw(st.sampled_from([1, 1, 12]))
    minutes = draw(st.integers(min_value=0, max_value=400 * 24 * 60))
    return m, anchor, price, months, minutes


@given(data=st.data(), facts=story())
@SETTINGS
def test_refund_never_exceeds_what_is_left_of_the_payment(
    data: st.DataObject, facts: tuple[Merchant, datetime, int, int, int]
) -> None:
    m, anchor, price_minor, months, minutes = facts
    now = anchor + timedelta(minutes=minutes)
    price = Money.from_minor(price_minor, m.currency)
    sub = subscription(m, anchor, price.text(), now, months=months)
    index = data.draw(st.integers(0, len(sub.payments) - 1))
    base = sub.payments[index]
    amount_minor = data.draw(
        st.one_of(st.just(price_minor), st.integers(min_value=1, max_value=3 * price_minor))
    )
    amount = Money.from_minor(amount_minor, m.currency)
    refunded = Money.from_minor(data.draw(st.integers(0, amount_minor)), m.currency)
    over = data.draw(st.none() | st.integers(0, 2 * amount_minor))
    pay = replace(
        base,
        amount=amount,
        refunded=refunded,
        item=data.draw(st.sampled_from(list(ItemKind))),
        is_duplicate=data.draw(st.booleans()),
        overcharge=Money.from_minor(over, m.currency) if over is not None else None,
    )
    start = anchor + timedelta(minutes=data.draw(st.integers(0, minutes)))
    o = outage(
        start,
        start + timedelta(minutes=data.draw(st.integers(0, 200 * 60))),
        data.draw(st.sampled_from(["internal", "third_party", "force_majeure"])),
        start + timedelta(minutes=data.draw(st.integers(0, 72 * 60))),
    )
    notice = anchor + timedelta(days=data.draw(st.integers(0, 60)))
    req = request(
        data.draw(st.sampled_from(list(RequestKind))),
        now,
        payment=pay,
        subscription=sub,
        reason=data.draw(st.sampled_from([None, "because", "because", "because"])),
        refund_to=data.draw(st.sampled_from([None, None, "card_1", "card_2"])),
        documents=data.draw(st.sampled_from([(), ("doc.pdf",)])),
        order_numbers=data.draw(st.sampled_from([(), ("9",)])),
        used_since_payment=data.draw(st.booleans()),
        outage=o,
    )
    who = customer(
        type=data.draw(st.sampled_from(["consumer", "business"])),
        acquisition=data.draw(st.sampled_from(["self_serve", "direct_marketing"])),
        flags=data.draw(st.sampled_from([frozenset(), frozenset({"aml_review"})])),
        in_violation=data.draw(st.sampled_from([False, False, False, True])),
        terms_notice_at=notice,
        terms_declined_at=notice + timedelta(days=data.draw(st.integers(0, 20))),
    )
    d = decide_refund(m, req, who, now)
    event(f"refund {d.outcome}")
    well_formed(m, d)
    ceiling = pay.refundable
    assert d.amount <= ceiling
    if d.recommendation is not None:
        assert d.recommendation.amount <= ceiling
    if d.outcome == DecisionOutcome.DECLINED:
        assert d.amount.is_zero


@given(data=st.data(), facts=story())
@SETTINGS
def test_cancellation_never_refunds_more_than_was_paid(
    data: st.DataObject, facts: tuple[Merchant, datetime, int, int, int]
) -> None:
    m, anchor, price_minor, months, minutes = facts
    now = anchor + timedelta(minutes=minutes)
    price = Money.from_minor(price_minor, m.currency)
    probe = subscription(m, anchor, price.text(), now, months=months)
    refunded = {
        p.number: Money.from_minor(data.draw(st.integers(0, price_minor)), m.currency).text()
        for p in probe.payments
    }
    sub = subscription(
        m,
        anchor,
        price.text(),
        now,
        months=months,
        refunded=refunded,
        is_first=data.draw(st.booleans()),
    )
    out = decide_cancel(m, sub, now, immediately=data.draw(st.booleans()))
    event(f"cancel refunds {len(out.refunds)}")
    well_formed(m, out.decision)
    left: dict[int, Money] = {p.number: p.refundable for p in sub.payments}
    total = Money.zero(m.currency)
    for refund in out.refunds:
        assert not refund.amount.is_zero
        assert rounded(m, refund.amount)
        assert refund.amount <= left[refund.payment]
        total = total + refund.amount
    assert out.decision.amount == total
    assert out.ends_at >= now or out.ends_now


def _fee_limit(m: Merchant) -> Decimal | None:
    rule = m.policy.first(Fees)
    return rule.flat_fee_max_percent if rule else None


@given(
    policy_id=st.sampled_from(POLICY_IDS),
    full_minor=st.integers(min_value=1, max_value=1_000_000),
    data=st.data(),
)
@SETTINGS
def test_review_is_bounded_by_refundable_and_the_fee_limit(
    policy_id: str, full_minor: int, data: st.DataObject
) -> None:
    m = MERCHANTS[policy_id]
    full = Money.from_minor(full_minor, m.currency)
    refundable = Money.from_minor(data.draw(st.integers(0, full_minor)), m.currency)
    rec_amount = Money.from_minor(data.draw(st.integers(0, 2 * full_minor)), m.currency)
    pend = Decision(
        action="refund_request",
        outcome=DecisionOutcome.NEEDS_REVIEW,
        amount=rec_amount,
        destination=Destination.ORIGINAL_METHOD,
        recommendation=Recommendation(
            DecisionOutcome.APPROVED, rec_amount, Destination.ORIGINAL_METHOD
        ),
    )
    asked = data.draw(st.none() | st.integers(0, 3 * full_minor))
    fee_percent = data.draw(
        st.none() | st.decimals(min_value=0, max_value=100, places=2, allow_nan=False)
    )
    d = decide_review(
        m,
        pend,
        verdict=data.draw(st.sampled_from(["accept", "approve", "decline"])),
        refundable=refundable,
        full=full,
        amount=Money.from_minor(asked, m.currency) if asked is not None else None,
        fee_percent=fee_percent,
    )
    well_formed(m, d)
    fee = d.fee or Money.zero(m.currency)
    assert d.amount + fee <= refundable
    limit = _fee_limit(m)
    if limit is None:
        assert fee.is_zero
    else:
        granted = d.amount + fee
        assert fee <= granted.ratio(limit, 100).round(m.rounding)
