"""The dashboard's pure aggregations: monthly recurring revenue, refunds per month and
clause, the review queue read back in time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fairbill.services.dashboard import (
    backlog,
    by_month_and_clause,
    last_months,
    mrr_minor,
    settled_minor,
)


def test_mrr_spreads_each_price_over_its_months_and_rounds_once() -> None:
    assert mrr_minor([]) == 0
    assert mrr_minor([(2900, 1), (24000, 12)]) == 2900 + 2000
    assert mrr_minor([(100, 3), (100, 3), (100, 3)]) == 100  # 33.33… × 3, not 33 × 3
    assert mrr_minor([(1, 2)]) == 1  # half up


@given(st.lists(st.tuples(st.integers(0, 10**9), st.sampled_from([1, 3, 6, 12, 24]))))
def test_mrr_is_within_half_a_minor_unit_of_the_exact_sum(subs: list[tuple[int, int]]) -> None:
    from fractions import Fraction

    exact = sum((Fraction(p, m) for p, m in subs), Fraction(0))
    assert abs(mrr_minor(subs) - exact) <= Fraction(1, 2)


def test_a_refund_in_another_currency_counts_at_its_payments_rate() -> None:
    assert settled_minor(1000, 1000, 1000) == 1000
    assert settled_minor(500, 1000, 920) == 460  # half the payment, half its settlement
    assert settled_minor(1, 3, 2) == 1  # 0.67 rounds up


def test_refunds_are_summed_per_clause_and_month_the_largest_clause_first() -> None:
    months = last_months(date(2026, 3, 15), 3)
    assert months == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]
    sums = by_month_and_clause(
        [
            (date(2026, 3, 2), "a/guarantee", 2900),
            (date(2026, 3, 31), "a/guarantee", 2900),
            (date(2026, 1, 31), "a/outage", 9000),
            (date(2025, 12, 31), "a/outage", 100),  # before the window: left out
        ],
        months,
    )
    assert list(sums) == ["a/outage", "a/guarantee"]
    assert sums == {"a/outage": [9000, 0, 0], "a/guarantee": [0, 0, 5800]}
    assert last_months(date(2026, 1, 31), 2) == [date(2025, 12, 1), date(2026, 1, 1)]


def test_the_queue_is_read_back_from_now() -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    ends = [t0 + timedelta(days=n) for n in range(4)]  # the ends of four days
    entered = [t0 + timedelta(days=1, hours=2), t0 + timedelta(days=2, hours=1)]
    left = [t0 + timedelta(days=2, hours=5)]
    # Now one is in review: one entered on day 1 (it left on day 2), the other on day 2.
    assert backlog(ends, entered, left, 1) == [0, 0, 1, 1]
    assert backlog(ends, [], [], 3) == [3, 3, 3, 3]
    assert backlog(ends, entered * 3, [], 1) == [0, 0, 0, 1]  # never below zero
