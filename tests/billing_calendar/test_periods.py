"""Tests for ``fairbill.calendar.periods``: anchoring, clamping, [start, end), DST."""

from __future__ import annotations

import calendar as stdlib_calendar
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairbill.calendar.periods import (
    Interval,
    Period,
    add_months,
    localize,
    period_at,
    period_containing,
    period_index,
    period_start,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
JOBURG = ZoneInfo("Africa/Johannesburg")
UTC_ZONE = ZoneInfo("UTC")
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

DST_DURATION_BUG = (
    "BUG: Period.duration subtracts two datetimes sharing one ZoneInfo, which Python does "
    "in wall time; it must be real elapsed time (interpretation.md: outage credits prorate "
    "by exact duration)"
)
FOLD_COMPARE_BUG = (
    "BUG: period_index compares datetimes that share one ZoneInfo in wall time, ignoring "
    "fold, so an instant in the repeated hour is placed in the wrong period"
)


def real_elapsed(period: Period) -> timedelta:
    return period.end.astimezone(UTC) - period.start.astimezone(UTC)


def offset_hours(instant: datetime) -> float:
    offset = instant.utcoffset()
    assert offset is not None
    return offset.total_seconds() / 3600


# -- Interval ----------------------------------------------------------------------------


class TestInterval:
    def test_constructors(self) -> None:
        assert Interval.month() == Interval(1)
        assert Interval.year() == Interval(12)
        assert Interval.year().months == 12

    @pytest.mark.parametrize("months", [0, -1, -12])
    def test_rejects_non_positive(self, months: int) -> None:
        with pytest.raises(ValueError, match="at least one month"):
            Interval(months)

    @pytest.mark.parametrize(
        ("months", "text"),
        [(1, "month"), (12, "year"), (3, "3 months"), (6, "6 months"), (18, "18 months"),
         (24, "2 years"), (36, "3 years")],
    )  # fmt: skip
    def test_describe(self, months: int, text: str) -> None:
        assert Interval(months).describe() == text


# -- month arithmetic and clamping -------------------------------------------------------


class TestMonthlyClamping:
    def test_jan_31_anchor_does_not_drift(self) -> None:
        anchor = datetime(2026, 1, 31, 10, 0, tzinfo=PARIS)
        starts = [period_start(anchor, Interval.month(), k) for k in range(6)]
        assert [s.date().isoformat() for s in starts] == [
            "2026-01-31",
            "2026-02-28",
            "2026-03-31",
            "2026-04-30",
            "2026-05-31",
            "2026-06-30",
        ]
        assert all(s.hour == 10 and s.minute == 0 for s in starts)

    def test_jan_31_anchor_in_leap_year(self) -> None:
        anchor = datetime(2028, 1, 31, tzinfo=UTC_ZONE)
        starts = [period_start(anchor, Interval.month(), k).date() for k in range(5)]
        assert [s.isoformat() for s in starts] == [
            "2028-01-31",
            "2028-02-29",
            "2028-03-31",
            "2028-04-30",
            "2028-05-31",
        ]

    def test_periods_are_contiguous_through_clamped_months(self) -> None:
        anchor = datetime(2026, 1, 31, tzinfo=UTC_ZONE)
        feb = period_at(anchor, Interval.month(), 1)
        assert feb.start == datetime(2026, 2, 28, tzinfo=UTC_ZONE)
        assert feb.end == datetime(2026, 3, 31, tzinfo=UTC_ZONE)
        assert period_at(anchor, Interval.month(), 0).end == feb.start
        assert period_at(anchor, Interval.month(), 2).start == feb.end

    def test_negative_index_clamps_too(self) -> None:
        anchor = datetime(2026, 3, 31, tzinfo=UTC_ZONE)
        assert period_start(anchor, Interval.month(), -1) == datetime(2026, 2, 28, tzinfo=UTC_ZONE)
        assert period_start(anchor, Interval.month(), -3) == datetime(2025, 12, 31, tzinfo=UTC_ZONE)
        assert period_start(anchor, Interval.month(), -13) == datetime(2025, 2, 28, tzinfo=UTC_ZONE)

    def test_add_months_crosses_year_end(self) -> None:
        anchor = datetime(2026, 11, 30, 8, 15, tzinfo=PARIS)
        assert add_months(anchor, 3) == datetime(2027, 2, 28, 8, 15, tzinfo=PARIS)
        assert add_months(anchor, 14) == datetime(2028, 1, 30, 8, 15, tzinfo=PARIS)
        assert add_months(anchor, 0) == anchor

    def test_add_months_requires_aware_anchor(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            add_months(datetime(2026, 1, 31), 1)

    def test_yearly_feb_29_anchor(self) -> None:
        anchor = datetime(2028, 2, 29, 12, 0, tzinfo=PARIS)
        year = Interval.year()
        assert period_start(anchor, year, 1) == datetime(2029, 2, 28, 12, 0, tzinfo=PARIS)
        assert period_start(anchor, year, 2) == datetime(2030, 2, 28, 12, 0, tzinfo=PARIS)
        assert period_start(anchor, year, 3) == datetime(2031, 2, 28, 12, 0, tzinfo=PARIS)
        assert period_start(anchor, year, 4) == datetime(2032, 2, 29, 12, 0, tzinfo=PARIS)
        assert period_start(anchor, year, -4) == datetime(2024, 2, 29, 12, 0, tzinfo=PARIS)
        assert period_at(anchor, year, 0) == Period(
            datetime(2028, 2, 29, 12, 0, tzinfo=PARIS), datetime(2029, 2, 28, 12, 0, tzinfo=PARIS)
        )

    def test_quarterly(self) -> None:
        anchor = datetime(2026, 1, 31, tzinfo=JOBURG)
        quarter = Interval(3)
        starts = [period_start(anchor, quarter, k).date().isoformat() for k in range(5)]
        assert starts == ["2026-01-31", "2026-04-30", "2026-07-31", "2026-10-31", "2027-01-31"]

    def test_quarterly_from_november_end(self) -> None:
        anchor = datetime(2025, 11, 30, tzinfo=UTC_ZONE)
        quarter = Interval(3)
        assert period_start(anchor, quarter, 1) == datetime(2026, 2, 28, tzinfo=UTC_ZONE)
        assert period_start(anchor, quarter, 2) == datetime(2026, 5, 30, tzinfo=UTC_ZONE)
        assert period_start(anchor, quarter, -1) == datetime(2025, 8, 30, tzinfo=UTC_ZONE)

    def test_multi_year_term(self) -> None:
        anchor = datetime(2026, 6, 15, tzinfo=PARIS)
        term = Interval(36)
        assert period_at(anchor, term, 0).end == datetime(2029, 6, 15, tzinfo=PARIS)


# -- period_index / period_containing ----------------------------------------------------


class TestPeriodIndex:
    anchor = datetime(2026, 1, 15, 10, 0, tzinfo=PARIS)
    month = Interval.month()

    def test_anchor_itself_is_period_zero(self) -> None:
        assert period_index(self.anchor, self.month, self.anchor) == 0

    def test_boundary_belongs_to_next_period(self) -> None:
        boundary = datetime(2026, 2, 15, 10, 0, tzinfo=PARIS)
        assert period_index(self.anchor, self.month, boundary) == 1
        period = period_containing(self.anchor, self.month, boundary)
        assert period.start == boundary
        assert period.end == datetime(2026, 3, 15, 10, 0, tzinfo=PARIS)
        assert period.contains(boundary)

    def test_just_before_boundary(self) -> None:
        before = datetime(2026, 2, 15, 9, 59, 59, 999999, tzinfo=PARIS)
        assert period_index(self.anchor, self.month, before) == 0
        period = period_containing(self.anchor, self.month, before)
        assert period == Period(self.anchor, datetime(2026, 2, 15, 10, 0, tzinfo=PARIS))
        assert not period.contains(datetime(2026, 2, 15, 10, 0, tzinfo=PARIS))

    def test_boundary_given_in_utc(self) -> None:
        # 2026-02-15 10:00 Paris (+01:00) is 09:00 UTC
        assert period_index(self.anchor, self.month, datetime(2026, 2, 15, 9, 0, tzinfo=UTC)) == 1
        just_before = datetime(2026, 2, 15, 8, 59, 59, tzinfo=UTC)
        assert period_index(self.anchor, self.month, just_before) == 0

    def test_utc_instant_in_other_calendar_month(self) -> None:
        # 2026-03-15 09:30 UTC is 10:30 Paris: period 2 (started 10:00 Paris, 09:00 UTC)
        assert period_index(self.anchor, self.month, datetime(2026, 3, 15, 9, 30, tzinfo=UTC)) == 2
        # 2026-03-15 08:30 UTC is 09:30 Paris: still period 1
        assert period_index(self.anchor, self.month, datetime(2026, 3, 15, 8, 30, tzinfo=UTC)) == 1

    def test_before_anchor_is_negative(self) -> None:
        assert (
            period_index(self.anchor, self.month, datetime(2026, 1, 15, 9, 59, tzinfo=PARIS)) == -1
        )
        assert (
            period_index(self.anchor, self.month, datetime(2025, 12, 15, 10, 0, tzinfo=PARIS)) == -1
        )
        assert (
            period_index(self.anchor, self.month, datetime(2025, 12, 15, 9, 59, tzinfo=PARIS)) == -2
        )
        period = period_containing(self.anchor, self.month, datetime(2026, 1, 1, tzinfo=PARIS))
        assert period == Period(datetime(2025, 12, 15, 10, 0, tzinfo=PARIS), self.anchor)

    def test_far_in_the_future(self) -> None:
        instant = datetime(2030, 7, 20, tzinfo=PARIS)
        assert period_index(self.anchor, self.month, instant) == 4 * 12 + 6

    def test_clamped_anchor_index(self) -> None:
        anchor = datetime(2026, 1, 31, tzinfo=UTC_ZONE)
        # Feb 28 starts period 1; Mar 30 is still in it; Mar 31 starts period 2
        assert period_index(anchor, self.month, datetime(2026, 2, 27, 23, tzinfo=UTC_ZONE)) == 0
        assert period_index(anchor, self.month, datetime(2026, 2, 28, tzinfo=UTC_ZONE)) == 1
        assert period_index(anchor, self.month, datetime(2026, 3, 30, 23, tzinfo=UTC_ZONE)) == 1
        assert period_index(anchor, self.month, datetime(2026, 3, 31, tzinfo=UTC_ZONE)) == 2

    def test_yearly_index(self) -> None:
        anchor = datetime(2028, 2, 29, tzinfo=UTC_ZONE)
        year = Interval.year()
        assert period_index(anchor, year, datetime(2029, 2, 28, tzinfo=UTC_ZONE)) == 1
        assert period_index(anchor, year, datetime(2029, 2, 27, 23, tzinfo=UTC_ZONE)) == 0
        assert period_index(anchor, year, datetime(2032, 2, 28, 23, tzinfo=UTC_ZONE)) == 3
        assert period_index(anchor, year, datetime(2032, 2, 29, tzinfo=UTC_ZONE)) == 4
        assert period_index(anchor, year, datetime(2028, 2, 28, tzinfo=UTC_ZONE)) == -1

    def test_quarterly_index(self) -> None:
        anchor = datetime(2026, 1, 31, tzinfo=UTC_ZONE)
        quarter = Interval(3)
        assert period_index(anchor, quarter, datetime(2026, 4, 29, tzinfo=UTC_ZONE)) == 0
        assert period_index(anchor, quarter, datetime(2026, 4, 30, tzinfo=UTC_ZONE)) == 1
        assert period_index(anchor, quarter, datetime(2026, 7, 30, tzinfo=UTC_ZONE)) == 1
        assert period_index(anchor, quarter, datetime(2025, 12, 1, tzinfo=UTC_ZONE)) == -1

    def test_period_contains_is_half_open(self) -> None:
        period = period_at(self.anchor, self.month, 0)
        assert period.contains(period.start)
        assert not period.contains(period.end)
        assert period.contains(period.end - timedelta(microseconds=1))
        assert not period.contains(period.start - timedelta(microseconds=1))


# -- DST ---------------------------------------------------------------------------------


class TestDst:
    def test_paris_spring_keeps_local_hour(self) -> None:
        period = period_at(datetime(2026, 3, 15, 9, 0, tzinfo=PARIS), Interval.month(), 0)
        assert period.start.isoformat() == "2026-03-15T09:00:00+01:00"
        assert period.end.isoformat() == "2026-04-15T09:00:00+02:00"
        assert (period.start.hour, period.end.hour) == (9, 9)
        assert offset_hours(period.start) == 1
        assert offset_hours(period.end) == 2
        assert real_elapsed(period) == timedelta(days=31) - timedelta(hours=1)

    def test_paris_spring_duration(self) -> None:
        period = period_at(datetime(2026, 3, 15, 9, 0, tzinfo=PARIS), Interval.month(), 0)
        assert period.duration == timedelta(days=31) - timedelta(hours=1)

    def test_paris_autumn_keeps_local_hour(self) -> None:
        period = period_at(datetime(2026, 10, 15, 9, 0, tzinfo=PARIS), Interval.month(), 0)
        assert period.start.isoformat() == "2026-10-15T09:00:00+02:00"
        assert period.end.isoformat() == "2026-11-15T09:00:00+01:00"
        assert real_elapsed(period) == timedelta(days=31, hours=1)

    def test_paris_autumn_duration(self) -> None:
        period = period_at(datetime(2026, 10, 15, 9, 0, tzinfo=PARIS), Interval.month(), 0)
        assert period.duration == timedelta(days=31, hours=1)

    def test_new_york_spring_keeps_local_hour(self) -> None:
        anchor = datetime(2026, 2, 8, 9, 0, tzinfo=NEW_YORK)
        period = period_at(anchor, Interval.month(), 0)
        assert period.start.isoformat() == "2026-02-08T09:00:00-05:00"
        assert period.end.isoformat() == "2026-03-08T09:00:00-04:00"
        assert real_elapsed(period) == timedelta(days=28) - timedelta(hours=1)
        following = period_at(anchor, Interval.month(), 1)
        assert following.start == period.end
        assert following.end.isoformat() == "2026-04-08T09:00:00-04:00"
        assert real_elapsed(following) == timedelta(days=31)

    def test_new_york_spring_duration(self) -> None:
        period = period_at(datetime(2026, 2, 8, 9, 0, tzinfo=NEW_YORK), Interval.month(), 0)
        assert period.duration == timedelta(days=28) - timedelta(hours=1)

    def test_duration_without_dst_change(self) -> None:
        period = period_at(datetime(2026, 4, 1, tzinfo=PARIS), Interval.month(), 0)
        assert period.duration == timedelta(days=30)
        period = period_at(datetime(2026, 3, 15, 9, 0, tzinfo=JOBURG), Interval.month(), 0)
        assert period.duration == timedelta(days=31)

    def test_new_york_boundary_in_utc(self) -> None:
        anchor = datetime(2026, 2, 8, 9, 0, tzinfo=NEW_YORK)
        # 2026-03-08 09:00 EDT is 13:00 UTC (not 14:00 as it would be in EST)
        assert period_index(anchor, Interval.month(), datetime(2026, 3, 8, 13, 0, tzinfo=UTC)) == 1
        assert period_index(anchor, Interval.month(), datetime(2026, 3, 8, 12, 59, tzinfo=UTC)) == 0

    def test_localize_nonexistent_time_moves_forward(self) -> None:
        result = localize(datetime(2026, 3, 29, 2, 30), PARIS)
        assert result.isoformat() == "2026-03-29T03:30:00+02:00"
        assert result.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)

    def test_localize_new_york_gap(self) -> None:
        result = localize(datetime(2026, 3, 8, 2, 15), NEW_YORK)
        assert result.isoformat() == "2026-03-08T03:15:00-04:00"

    def test_localize_ambiguous_time_takes_first_occurrence(self) -> None:
        result = localize(datetime(2026, 10, 25, 2, 30), PARIS)
        assert result.isoformat() == "2026-10-25T02:30:00+02:00"
        assert result.fold == 0

    def test_localize_ordinary_time(self) -> None:
        result = localize(datetime(2026, 6, 1, 12, 0), PARIS)
        assert result == datetime(2026, 6, 1, 12, 0, tzinfo=PARIS)
        assert result.tzinfo is PARIS

    def test_anchor_landing_in_gap_does_not_drift(self) -> None:
        anchor = datetime(2026, 1, 29, 2, 30, tzinfo=PARIS)
        month = Interval.month()
        assert period_start(anchor, month, 2).isoformat() == "2026-03-29T03:30:00+02:00"
        assert period_start(anchor, month, 3).isoformat() == "2026-04-29T02:30:00+02:00"

    def test_instant_in_repeated_hour(self) -> None:
        anchor = datetime(2026, 9, 25, 2, 30, tzinfo=PARIS)
        # boundary: 2026-10-25 02:30+02:00 (first occurrence) = 00:30 UTC
        # instant: 2026-10-25 02:15+01:00 (second occurrence) = 01:15 UTC, after the boundary
        instant = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=PARIS)
        assert instant.astimezone(UTC) == datetime(2026, 10, 25, 1, 15, tzinfo=UTC)
        assert period_index(anchor, Interval.month(), instant) == 1


# -- properties --------------------------------------------------------------------------

anchors = st.builds(
    lambda d, h, m, tz: localize(
        datetime.combine(d, datetime.min.time()).replace(hour=h, minute=m), tz
    ),
    st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2060, 12, 31).date()),
    st.integers(0, 23),
    st.sampled_from([0, 30]),
    st.sampled_from([PARIS, NEW_YORK, JOBURG, UTC_ZONE]),
)
intervals = st.sampled_from([Interval(1), Interval(3), Interval(6), Interval(12), Interval(36)])


@PROPERTY_SETTINGS
@given(anchor=anchors, interval=intervals, index=st.integers(-60, 60))
def test_periods_are_contiguous_and_never_drift(
    anchor: datetime, interval: Interval, index: int
) -> None:
    period = period_at(anchor, interval, index)
    assert period.end == period_at(anchor, interval, index + 1).start
    assert period.start.astimezone(UTC) < period.end.astimezone(UTC)
    # day of month is the anchor's, clamped; never drifts
    start = period.start
    last_day = stdlib_calendar.monthrange(start.year, start.month)[1]
    assert start.day == min(anchor.day, last_day)
    months = (start.year - anchor.year) * 12 + start.month - anchor.month
    assert months == interval.months * index


@PROPERTY_SETTINGS
@given(
    anchor=anchors,
    interval=intervals,
    offset_seconds=st.integers(-(10**9), 10**9),
)
def test_period_containing_contains_the_instant(
    anchor: datetime, interval: Interval, offset_seconds: int
) -> None:
    # instants are given in UTC, so comparisons are in real time
    instant = anchor.astimezone(UTC) + timedelta(seconds=offset_seconds)
    index = period_index(anchor, interval, instant)
    period = period_containing(anchor, interval, instant)
    assert period == period_at(anchor, interval, index)
    assert period.contains(instant)
    assert (index < 0) == (instant < anchor)
    assert period_index(anchor, interval, period.start.astimezone(UTC)) == index
