"""Tests for ``fairbill.calendar.windows``: calendar-day and business-day windows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairbill.calendar.windows import (
    add_business_days,
    business_deadline,
    end_of_day,
    is_business_day,
    within_business_days,
    within_days,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
JOBURG = ZoneInfo("Africa/Johannesburg")
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


# -- within N calendar days --------------------------------------------------------------


class TestWithinDays:
    @pytest.mark.parametrize("hour", [0, 9, 23])
    def test_thirty_day_window_ends_at_end_of_march_31(self, hour: int) -> None:
        paid = datetime(2026, 3, 1, hour, 0, tzinfo=PARIS)
        assert within_days(paid, datetime(2026, 3, 31, 23, 59, tzinfo=PARIS), 30, PARIS)
        assert within_days(paid, datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=PARIS), 30, PARIS)
        assert not within_days(paid, datetime(2026, 4, 1, 0, 0, tzinfo=PARIS), 30, PARIS)
        assert not within_days(paid, datetime(2026, 4, 15, tzinfo=PARIS), 30, PARIS)

    def test_request_before_event_and_same_day(self) -> None:
        paid = datetime(2026, 3, 1, 12, tzinfo=PARIS)
        assert within_days(paid, datetime(2026, 3, 1, 12, 5, tzinfo=PARIS), 30, PARIS)
        assert within_days(paid, datetime(2026, 2, 20, tzinfo=PARIS), 30, PARIS)
        assert within_days(paid, datetime(2026, 3, 1, 23, 59, tzinfo=PARIS), 0, PARIS)
        assert not within_days(paid, datetime(2026, 3, 2, 0, 0, tzinfo=PARIS), 0, PARIS)

    def test_request_local_date_matters(self) -> None:
        paid = datetime(2026, 3, 1, 10, tzinfo=PARIS)
        # 2026-03-31 22:30 UTC is already 2026-04-01 00:30 in Paris (CEST, +02:00)
        assert not within_days(paid, datetime(2026, 3, 31, 22, 30, tzinfo=UTC), 30, PARIS)
        # 2026-03-31 21:59 UTC is 23:59 in Paris
        assert within_days(paid, datetime(2026, 3, 31, 21, 59, tzinfo=UTC), 30, PARIS)

    def test_event_local_date_matters(self) -> None:
        # 2026-02-28 23:30 UTC is 2026-03-01 00:30 in Paris: the window runs to Mar 31
        paid = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
        assert within_days(paid, datetime(2026, 3, 31, 23, 0, tzinfo=PARIS), 30, PARIS)
        assert not within_days(paid, datetime(2026, 4, 1, 0, 0, tzinfo=PARIS), 30, PARIS)
        # in New York the same instant is still Feb 28: the window ends on Mar 30
        assert within_days(paid, datetime(2026, 3, 30, 23, 0, tzinfo=NEW_YORK), 30, NEW_YORK)
        assert not within_days(paid, datetime(2026, 3, 31, 0, 0, tzinfo=NEW_YORK), 30, NEW_YORK)

    def test_fourteen_day_guarantee(self) -> None:
        start = datetime(2026, 5, 20, 18, tzinfo=PARIS)
        assert within_days(start, datetime(2026, 6, 3, 23, 59, tzinfo=PARIS), 14, PARIS)
        assert not within_days(start, datetime(2026, 6, 4, 0, 1, tzinfo=PARIS), 14, PARIS)


# -- business days -----------------------------------------------------------------------


class TestBusinessDays:
    def test_conek_cooling_off_example(self) -> None:
        sale = date(2026, 4, 1)  # Wednesday
        assert sale.weekday() == 2
        assert add_business_days(sale, 5, "ZA") == date(2026, 4, 10)
        steps = [add_business_days(sale, n, "ZA") for n in range(1, 6)]
        assert steps == [
            date(2026, 4, 2),
            date(2026, 4, 7),
            date(2026, 4, 8),
            date(2026, 4, 9),
            date(2026, 4, 10),
        ]

    def test_za_holidays(self) -> None:
        assert not is_business_day(date(2026, 4, 3), "ZA")  # Good Friday
        assert not is_business_day(date(2026, 4, 6), "ZA")  # Family Day
        assert not is_business_day(date(2026, 4, 27), "ZA")  # Freedom Day
        assert is_business_day(date(2026, 4, 2), "ZA")
        assert is_business_day(date(2026, 4, 7), "ZA")

    def test_conek_within_business_days(self) -> None:
        sale = datetime(2026, 4, 1, 11, tzinfo=JOBURG)
        assert within_business_days(
            sale, datetime(2026, 4, 10, 23, 0, tzinfo=JOBURG), 5, JOBURG, "ZA"
        )
        assert within_business_days(
            sale, datetime(2026, 4, 3, 9, 0, tzinfo=JOBURG), 5, JOBURG, "ZA"
        )
        assert not within_business_days(
            sale, datetime(2026, 4, 11, 0, 0, tzinfo=JOBURG), 5, JOBURG, "ZA"
        )
        assert not within_business_days(
            sale, datetime(2026, 4, 13, 9, 0, tzinfo=JOBURG), 5, JOBURG, "ZA"
        )

    def test_within_business_days_uses_local_dates(self) -> None:
        sale = datetime(2026, 4, 1, 11, tzinfo=JOBURG)
        # 2026-04-10 21:30 UTC is 23:30 in Johannesburg (+02:00): still Friday the 10th
        assert within_business_days(
            sale, datetime(2026, 4, 10, 21, 30, tzinfo=UTC), 5, JOBURG, "ZA"
        )
        # 2026-04-10 22:30 UTC is already Saturday 00:30 in Johannesburg
        assert not within_business_days(
            sale, datetime(2026, 4, 10, 22, 30, tzinfo=UTC), 5, JOBURG, "ZA"
        )
        # an event at 2026-03-31 22:30 UTC is Wednesday Apr 1 00:30 locally
        event = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
        assert within_business_days(
            event, datetime(2026, 4, 10, 23, tzinfo=JOBURG), 5, JOBURG, "ZA"
        )

    @pytest.mark.parametrize(
        ("start", "count", "expected"),
        [
            (date(2026, 4, 30), 1, date(2026, 5, 4)),  # May 1 Labour Day (Fri), weekend
            (date(2026, 5, 7), 1, date(2026, 5, 11)),  # May 8 Victory Day (Fri), weekend
            (date(2026, 5, 13), 1, date(2026, 5, 15)),  # May 14 Ascension
            (date(2026, 5, 7), 5, date(2026, 5, 18)),  # 11, 12, 13, 15, 18
            (date(2026, 5, 22), 1, date(2026, 5, 26)),  # May 25 Whit Monday
            (date(2026, 4, 3), 1, date(2026, 4, 7)),  # Apr 6 Easter Monday
            (date(2026, 12, 24), 2, date(2026, 12, 29)),  # Christmas (Fri), weekend
            (date(2026, 12, 31), 1, date(2027, 1, 4)),  # New Year 2027 (Fri), weekend
        ],
    )
    def test_fr(self, start: date, count: int, expected: date) -> None:
        assert add_business_days(start, count, "FR") == expected

    @pytest.mark.parametrize(
        ("day", "country"),
        [
            (date(2026, 5, 1), "FR"),
            (date(2026, 5, 8), "FR"),
            (date(2026, 5, 14), "FR"),
            (date(2026, 7, 3), "US"),
            (date(2026, 11, 26), "US"),
            (date(2027, 1, 1), "FR"),
        ],
    )
    def test_holiday_is_not_a_business_day(self, day: date, country: str) -> None:
        assert day.weekday() < 5
        assert not is_business_day(day, country)

    def test_holidays_are_per_country(self) -> None:
        assert is_business_day(date(2026, 5, 14), "ZA")  # Ascension is not a ZA holiday
        assert is_business_day(date(2026, 11, 26), "FR")  # nor Thanksgiving in France
        assert not is_business_day(date(2026, 5, 1), "ZA")  # Workers' Day in ZA too

    @pytest.mark.parametrize(
        ("start", "count", "expected"),
        [
            (date(2026, 7, 2), 1, date(2026, 7, 6)),  # Jul 3 observed Independence Day
            (date(2026, 11, 25), 1, date(2026, 11, 27)),  # Thanksgiving Nov 26
            (date(2026, 11, 24), 3, date(2026, 11, 30)),  # 25, 27, 30
            (date(2026, 9, 4), 1, date(2026, 9, 8)),  # Labor Day Sep 7
        ],
    )
    def test_us(self, start: date, count: int, expected: date) -> None:
        assert add_business_days(start, count, "US") == expected

    def test_weekend_skipped(self) -> None:
        friday, saturday, sunday = date(2026, 3, 6), date(2026, 3, 7), date(2026, 3, 8)
        assert friday.weekday() == 4
        assert not is_business_day(saturday, "FR")
        assert not is_business_day(sunday, "FR")
        assert add_business_days(friday, 1, "FR") == date(2026, 3, 9)
        assert add_business_days(saturday, 1, "FR") == date(2026, 3, 9)
        assert add_business_days(sunday, 1, "FR") == date(2026, 3, 9)
        assert add_business_days(friday, 5, "FR") == date(2026, 3, 13)
        assert add_business_days(friday, 10, "FR") == date(2026, 3, 20)

    @pytest.mark.parametrize(
        "day", [date(2026, 4, 1), date(2026, 4, 3), date(2026, 4, 4), date(2026, 12, 25)]
    )
    def test_zero_returns_same_date(self, day: date) -> None:
        assert add_business_days(day, 0, "ZA") == day

    def test_negative_count(self) -> None:
        with pytest.raises(ValueError):
            add_business_days(date(2026, 4, 1), -1, "ZA")


class TestDeadline:
    def test_end_of_day(self) -> None:
        result = end_of_day(date(2026, 4, 10), JOBURG)
        assert result == datetime(2026, 4, 10, 23, 59, 59, tzinfo=JOBURG)
        assert result.astimezone(UTC) == datetime(2026, 4, 10, 21, 59, 59, tzinfo=UTC)

    def test_conek_deadline(self) -> None:
        sale = datetime(2026, 4, 1, 11, tzinfo=JOBURG)
        deadline = business_deadline(sale, 5, JOBURG, "ZA")
        assert deadline.isoformat() == "2026-04-10T23:59:59+02:00"
        assert deadline.astimezone(UTC) == datetime(2026, 4, 10, 21, 59, 59, tzinfo=UTC)
        assert within_business_days(sale, deadline, 5, JOBURG, "ZA")
        assert not within_business_days(sale, deadline + timedelta(seconds=1), 5, JOBURG, "ZA")

    def test_deadline_from_utc_event_uses_local_date(self) -> None:
        # 2026-03-31 22:30 UTC is Apr 1 00:30 in Johannesburg; counted from Mar 31 it
        # would end on Apr 9.
        event = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
        deadline = business_deadline(event, 5, JOBURG, "ZA")
        assert deadline == datetime(2026, 4, 10, 23, 59, 59, tzinfo=JOBURG)

    def test_deadline_keeps_local_time_across_dst(self) -> None:
        # Paris: event Fri 2026-03-27, 1 business day → Mon 2026-03-30 (after the DST change)
        deadline = business_deadline(datetime(2026, 3, 27, 10, tzinfo=PARIS), 1, PARIS, "FR")
        assert deadline.isoformat() == "2026-03-30T23:59:59+02:00"

    def test_deadline_us(self) -> None:
        event = datetime(2026, 11, 25, 9, tzinfo=NEW_YORK)
        deadline = business_deadline(event, 2, NEW_YORK, "US")
        assert deadline.isoformat() == "2026-11-30T23:59:59-05:00"

    def test_zero_day_deadline_is_end_of_event_day(self) -> None:
        event = datetime(2026, 4, 3, 10, tzinfo=JOBURG)
        assert business_deadline(event, 0, JOBURG, "ZA") == end_of_day(date(2026, 4, 3), JOBURG)


# -- properties --------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    start=st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)),
    count=st.integers(0, 40),
    country=st.sampled_from(["ZA", "FR", "US"]),
)
def test_add_business_days_counts_exactly(start: date, count: int, country: str) -> None:
    result = add_business_days(start, count, country)
    if count == 0:
        assert result == start
        return
    assert result > start
    assert is_business_day(result, country)
    span = (result - start).days
    counted = sum(is_business_day(start + timedelta(days=i), country) for i in range(1, span + 1))
    assert counted == count
    # at most two weekend days per five business days, plus a few holidays
    assert span <= count * 7 // 5 + 10


@PROPERTY_SETTINGS
@given(
    event_minutes=st.integers(0, 60 * 24 * 365),
    request_minutes=st.integers(-60 * 24 * 5, 60 * 24 * 60),
    days=st.integers(0, 30),
)
def test_within_business_days_matches_deadline(
    event_minutes: int, request_minutes: int, days: int
) -> None:
    event = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=event_minutes)
    request = event + timedelta(minutes=request_minutes)
    deadline = business_deadline(event, days, JOBURG, "ZA")
    expected = request.astimezone(JOBURG).date() <= deadline.date()
    assert within_business_days(event, request, days, JOBURG, "ZA") == expected
    if request <= deadline:
        assert within_business_days(event, request, days, JOBURG, "ZA")
