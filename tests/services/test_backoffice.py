"""The back office's read model: deadlines in business days."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from fairbill.calendar.windows import add_business_days
from fairbill.services.backoffice import business_days_left


def test_business_days_left_count_after_today_up_to_the_due_day() -> None:
    monday = date(2026, 3, 2)
    assert business_days_left(monday, date(2026, 3, 16), "US") == 10  # two weeks
    assert business_days_left(monday, monday, "US") == 0  # due today
    assert business_days_left(date(2026, 3, 13), date(2026, 3, 16), "US") == 1  # Fri → Mon
    assert business_days_left(date(2026, 3, 18), date(2026, 3, 16), "US") == -2  # overdue
    assert business_days_left(date(2026, 3, 15), date(2026, 3, 13), "US") == 0  # a weekend


def test_holidays_are_not_business_days() -> None:
    # Easter Monday 2026 (April 6) is a public holiday in France, not in the US.
    assert business_days_left(date(2026, 4, 3), date(2026, 4, 7), "FR") == 1
    assert business_days_left(date(2026, 4, 3), date(2026, 4, 7), "US") == 2


@given(st.dates(date(2024, 1, 1), date(2028, 12, 31)), st.integers(0, 40))
def test_the_days_left_to_a_deadline_are_the_days_it_was_set_with(start: date, days: int) -> None:
    due = add_business_days(start, days, "DE")
    assert business_days_left(start, due, "DE") == days
    assert business_days_left(due, start, "DE") == -days
    assert business_days_left(due + timedelta(days=0), due, "DE") == 0
