"""Tests for ``fairbill.calendar.proration``: by local days and by exact duration."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairbill.calendar.periods import Interval, Period, period_at
from fairbill.calendar.proration import (
    DayShare,
    days_in_period,
    duration_share,
    local_date,
    overlap,
    remaining_days,
)
from fairbill.money import Money, Rounding

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
JOBURG = ZoneInfo("Africa/Johannesburg")
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

DST_DURATION_BUG = (
    "BUG: Period.duration / overlap subtract datetimes sharing one ZoneInfo, which Python "
    "does in wall time; outage credits must use real elapsed time (interpretation.md)"
)


def march(tz: ZoneInfo = PARIS) -> Period:
    """The interpretation.md example period: 2026-03-01 → 2026-04-01 (31 days)."""
    return period_at(datetime(2026, 3, 1, tzinfo=tz), Interval.month(), 0)


def april(tz: ZoneInfo) -> Period:
    return period_at(datetime(2026, 4, 1, tzinfo=tz), Interval.month(), 0)


# -- by days -----------------------------------------------------------------------------


class TestRemainingDays:
    def test_days_in_period(self) -> None:
        assert days_in_period(march()) == 31
        assert days_in_period(april(JOBURG)) == 30
        feb = period_at(datetime(2028, 2, 1, tzinfo=PARIS), Interval.month(), 0)
        assert days_in_period(feb) == 29
        year = period_at(datetime(2028, 2, 29, tzinfo=PARIS), Interval.year(), 0)
        assert days_in_period(year) == 365

    def test_days_in_period_across_dst_is_calendar_days(self) -> None:
        period = period_at(datetime(2026, 3, 15, 9, tzinfo=PARIS), Interval.month(), 0)
        assert days_in_period(period) == 31

    @pytest.mark.parametrize(
        ("hour", "minute"), [(0, 0), (0, 1), (9, 30), (12, 0), (23, 0), (23, 59)]
    )
    def test_interpretation_example_any_hour(self, hour: int, minute: int) -> None:
        event = datetime(2026, 3, 11, hour, minute, tzinfo=PARIS)
        assert remaining_days(march(), event) == DayShare(21, 31)

    def test_event_on_period_start_leaves_all_days(self) -> None:
        period = march()
        assert remaining_days(period, period.start) == DayShare(31, 31)
        assert remaining_days(period, datetime(2026, 3, 1, 23, 59, tzinfo=PARIS)) == DayShare(
            31, 31
        )

    def test_event_on_last_day_leaves_one(self) -> None:
        assert remaining_days(march(), datetime(2026, 3, 31, tzinfo=PARIS)).numerator_days == 1
        assert remaining_days(march(), datetime(2026, 3, 31, 23, 59, 59, tzinfo=PARIS)) == (
            DayShare(1, 31)
        )

    def test_event_on_second_day(self) -> None:
        assert remaining_days(march(), datetime(2026, 3, 2, 8, tzinfo=PARIS)) == DayShare(30, 31)

    @pytest.mark.parametrize(
        "event",
        [
            datetime(2026, 2, 28, 23, 59, tzinfo=PARIS),
            datetime(2026, 1, 1, tzinfo=PARIS),
            datetime(2025, 3, 11, tzinfo=PARIS),
        ],
    )
    def test_event_before_period_clamps_to_all_days(self, event: datetime) -> None:
        assert remaining_days(march(), event) == DayShare(31, 31)

    @pytest.mark.parametrize(
        "event",
        [
            datetime(2026, 4, 1, tzinfo=PARIS),
            datetime(2026, 4, 1, 12, tzinfo=PARIS),
            datetime(2026, 5, 20, tzinfo=PARIS),
        ],
    )
    def test_event_at_or_after_period_end_clamps_to_zero(self, event: datetime) -> None:
        assert remaining_days(march(), event) == DayShare(0, 31)

    def test_utc_event_uses_local_date_paris(self) -> None:
        # 2026-03-10 23:30 UTC is 2026-03-11 00:30 in Paris: the local date is the 11th
        event = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)
        assert local_date(event, march().start) == date(2026, 3, 11)
        assert remaining_days(march(), event) == DayShare(21, 31)

    def test_utc_event_uses_local_date_new_york(self) -> None:
        # 2026-03-12 02:00 UTC is 2026-03-11 22:00 in New York (EDT, -04:00)
        event = datetime(2026, 3, 12, 2, 0, tzinfo=UTC)
        assert local_date(event, march(NEW_YORK).start) == date(2026, 3, 11)
        assert remaining_days(march(NEW_YORK), event) == DayShare(21, 31)

    def test_utc_event_before_local_period_start(self) -> None:
        # 2026-02-28 23:30 UTC is already 2026-03-01 00:30 in Paris: the whole period remains
        event = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)
        assert remaining_days(march(), event) == DayShare(31, 31)
        # and 2026-03-31 22:30 UTC is 2026-04-01 00:30 in Paris: nothing remains
        assert remaining_days(march(), datetime(2026, 3, 31, 22, 30, tzinfo=UTC)) == DayShare(0, 31)

    def test_period_with_a_local_hour_counts_dates(self) -> None:
        period = period_at(datetime(2026, 3, 15, 9, tzinfo=PARIS), Interval.month(), 0)
        # the start date counts even before the start hour; the end date never counts
        assert remaining_days(period, datetime(2026, 3, 15, 8, tzinfo=PARIS)) == DayShare(31, 31)
        assert remaining_days(period, datetime(2026, 4, 14, 20, tzinfo=PARIS)) == DayShare(1, 31)
        assert remaining_days(period, datetime(2026, 4, 15, 8, tzinfo=PARIS)) == DayShare(0, 31)


class TestDayShare:
    def test_of_rounds_to_33_87(self) -> None:
        share = DayShare(21, 31).of(Money("50.00", "USD"))
        assert share != Money("33.87", "USD")  # exact until rounded
        assert share.round() == Money("33.87", "USD")
        assert share.round(Rounding.HALF_EVEN) == Money("33.87", "USD")

    def test_interpretation_example_end_to_end(self) -> None:
        share = remaining_days(march(), datetime(2026, 3, 11, 15, tzinfo=PARIS))
        assert share.of(Money("31.00", "EUR")) == Money("21.00", "EUR")
        assert share.of(Money("50.00", "USD")).round().text() == "33.87"

    def test_full_and_empty(self) -> None:
        price = Money("499.00", "ZAR")
        assert DayShare(30, 30).of(price) == price
        assert DayShare(0, 30).of(price).is_zero

    def test_zero_day_period(self) -> None:
        with pytest.raises(ZeroDivisionError):
            DayShare(0, 0).of(Money("1.00", "EUR"))


# -- by duration -------------------------------------------------------------------------


class TestDurationShare:
    def test_zar_80_hours_of_april(self) -> None:
        period = april(JOBURG)
        assert period.duration == timedelta(days=30)
        share = duration_share(Money("499.00", "ZAR"), period, timedelta(hours=80))
        assert share.round() == Money("55.44", "ZAR")
        assert share.currency == "ZAR"

    def test_usd_72_hours_of_april(self) -> None:
        share = duration_share(Money("50.00", "USD"), april(NEW_YORK), timedelta(hours=72))
        assert share == Money("5.00", "USD")
        assert share.round().text() == "5.00"

    def test_zero_and_full_duration_without_dst(self) -> None:
        period = april(JOBURG)
        price = Money("499.00", "ZAR")
        assert duration_share(price, period, timedelta(0)).is_zero
        assert duration_share(price, period, timedelta(days=30)) == price

    def test_sub_second_part_is_ignored(self) -> None:
        period = april(JOBURG)
        price = Money("2592.00", "ZAR")  # 1 ZAR per 1000 seconds
        assert duration_share(price, period, timedelta(seconds=1000, microseconds=999)) == Money(
            "1.00", "ZAR"
        )

    def test_dst_period_real_elapsed_hours(self) -> None:
        period = march(PARIS)
        # 2026-03-01 → 2026-04-01 in Paris is 31 days minus the lost hour: 743 real hours
        assert period.end.astimezone(UTC) - period.start.astimezone(UTC) == timedelta(hours=743)

    def test_dst_period_full_outage_is_full_price(self) -> None:
        period = march(PARIS)
        price = Money("743.00", "EUR")
        assert duration_share(price, period, timedelta(hours=743)) == price

    def test_dst_period_one_hour_is_one_743rd(self) -> None:
        period = march(PARIS)
        assert duration_share(Money("743.00", "EUR"), period, timedelta(hours=1)) == Money(
            "1.00", "EUR"
        )

    def test_autumn_dst_period_is_745_hours(self) -> None:
        period = period_at(datetime(2026, 10, 1, tzinfo=PARIS), Interval.month(), 0)
        assert duration_share(Money("745.00", "EUR"), period, timedelta(hours=5)) == Money(
            "5.00", "EUR"
        )


class TestOverlap:
    def test_inside(self) -> None:
        period = april(JOBURG)
        start = datetime(2026, 4, 10, 12, tzinfo=JOBURG)
        assert overlap(period, start, start + timedelta(hours=80)) == timedelta(hours=80)

    def test_clamped_to_period(self) -> None:
        period = april(JOBURG)
        start = datetime(2026, 3, 31, 12, tzinfo=JOBURG)
        assert overlap(period, start, datetime(2026, 4, 1, 6, tzinfo=JOBURG)) == timedelta(hours=6)
        end = datetime(2026, 5, 3, tzinfo=JOBURG)
        assert overlap(period, datetime(2026, 4, 30, 20, tzinfo=JOBURG), end) == timedelta(hours=4)

    def test_utc_inputs(self) -> None:
        period = april(JOBURG)  # starts 2026-03-31 22:00 UTC
        start = datetime(2026, 3, 31, 20, tzinfo=UTC)
        end = datetime(2026, 4, 1, 1, tzinfo=UTC)
        assert overlap(period, start, end) == timedelta(hours=3)

    def test_disjoint_is_zero(self) -> None:
        period = april(JOBURG)
        start = datetime(2026, 5, 2, tzinfo=JOBURG)
        assert overlap(period, start, start + timedelta(hours=5)) == timedelta(0)
        assert overlap(period, period.end, period.end + timedelta(days=1)) == timedelta(0)

    def test_across_dst_is_real_time(self) -> None:
        period = march(PARIS)
        start = datetime(2026, 3, 28, 12, tzinfo=PARIS)
        end = datetime(2026, 3, 29, 12, tzinfo=PARIS)
        assert overlap(period, start, end) == timedelta(hours=23)


# -- properties --------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    offset_minutes=st.integers(-60 * 24 * 60, 60 * 24 * 120),
    tz=st.sampled_from([PARIS, NEW_YORK, JOBURG]),
)
def test_remaining_days_bounded_and_monotone(offset_minutes: int, tz: ZoneInfo) -> None:
    period = march(tz)
    event = period.start.astimezone(UTC) + timedelta(minutes=offset_minutes)
    share = remaining_days(period, event)
    later = remaining_days(period, event + timedelta(hours=7))
    assert share.period_days == 31
    assert 0 <= share.numerator_days <= 31
    assert later.numerator_days <= share.numerator_days
    # matches the rule on local dates
    local = event.astimezone(tz).date()
    expected = (date(2026, 4, 1) - local).days
    assert share.numerator_days == max(0, min(31, expected))


@PROPERTY_SETTINGS
@given(
    price_minor=st.integers(0, 10**9),
    hours=st.integers(0, 30 * 24),
)
def test_duration_share_never_exceeds_price(price_minor: int, hours: int) -> None:
    price = Money.from_minor(price_minor, "ZAR")
    share = duration_share(price, april(JOBURG), timedelta(hours=hours))
    assert Money.zero("ZAR") <= share <= price
    assert share.round() <= price
