"""Billing periods anchored on a start instant.

Invariants:
- periods are ``[start, end)`` and contiguous: period k ends where period k+1 starts;
- period k starts at ``anchor + k × interval`` computed from the anchor every time, so a
  month-end anchor clamps (Jan 31 → Feb 28) without drifting (→ Mar 31, not Mar 28);
- arithmetic is on local wall time in the anchor's timezone, so a period keeps its local
  hour across a DST change; the results are timezone-aware.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Interval:
    """A billing interval or a commitment term, in whole months (a year is 12)."""

    months: int

    def __post_init__(self) -> None:
        if self.months <= 0:
            raise ValueError("an interval is at least one month")

    @classmethod
    def month(cls) -> Interval:
        return _MONTH if cls is Interval else cls(1)

    @classmethod
    def year(cls) -> Interval:
        return _YEAR if cls is Interval else cls(12)

    def describe(self) -> str:
        if self.months == 1:
            return "month"
        if self.months == 12:
            return "year"
        if self.months % 12 == 0:
            return f"{self.months // 12} years"
        return f"{self.months} months"


_MONTH, _YEAR = Interval(1), Interval(12)  # immutable: one of each serves every caller


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        return _utc(self.start) <= _utc(instant) < _utc(self.end)

    @property
    def duration(self) -> timedelta:
        """Real elapsed time (same-zone datetime subtraction would ignore a DST change)."""
        return _utc(self.end) - _utc(self.start)


def _utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC)


def localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """Attach ``tz`` to a wall-clock time. A time in a DST gap moves forward by the gap;
    an ambiguous time takes its first occurrence (fold=0)."""
    aware = naive.replace(tzinfo=tz, fold=0)
    roundtrip = aware.astimezone(UTC).astimezone(tz)
    if roundtrip.replace(tzinfo=None) != naive:  # nonexistent wall time (spring forward)
        return roundtrip
    return aware


def add_months(anchor: datetime, months: int) -> datetime:
    """``anchor`` moved by whole months on the local calendar, clamping the day."""
    if anchor.tzinfo is None:
        raise ValueError("anchor must be timezone-aware")
    index = anchor.year * 12 + (anchor.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    tz = anchor.tzinfo
    assert isinstance(tz, ZoneInfo)
    # ``localize`` of the naive wall time, built in one constructor call: a wall time in a
    # DST gap is the one whose offset changes on the way through UTC (the same test as
    # comparing wall times, since the instant is the same).
    aware = datetime(
        year,
        month,
        min(anchor.day, _last_day(year, month)),
        anchor.hour,
        anchor.minute,
        anchor.second,
        anchor.microsecond,
        tz,
    )
    roundtrip = aware.astimezone(UTC).astimezone(tz)
    return roundtrip if roundtrip.utcoffset() != aware.utcoffset() else aware


_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _last_day(year: int, month: int) -> int:
    """``calendar.monthrange(year, month)[1]`` without the weekday it also computes."""
    if month == 2:
        return 29 if _stdlib_calendar.isleap(year) else 28
    return _DAYS_IN_MONTH[month]


def period_start(anchor: datetime, interval: Interval, index: int) -> datetime:
    return add_months(anchor, interval.months * index)


def period_at(anchor: datetime, interval: Interval, index: int) -> Period:
    return Period(period_start(anchor, interval, index), period_start(anchor, interval, index + 1))


def period_index(anchor: datetime, interval: Interval, instant: datetime) -> int:
    """The index of the period containing ``instant`` (negative before the anchor)."""
    return _locate(anchor, interval, instant)[0]


def period_containing(anchor: datetime, interval: Interval, instant: datetime) -> Period:
    _, start, end = _locate(anchor, interval, instant)
    return Period(start, end)


def _locate(
    anchor: datetime, interval: Interval, instant: datetime
) -> tuple[int, datetime, datetime]:
    """The index of the period containing ``instant``, with the bounds the search computed
    anyway: ``period_at`` of the index would compute both again."""
    months = (instant.year - anchor.year) * 12 + (instant.month - anchor.month)
    index = months // interval.months
    # The month difference can be one too high or too low around clamped/late days.
    when = _utc(instant)
    start = period_start(anchor, interval, index)
    while _utc(start) > when:
        index -= 1
        start = period_start(anchor, interval, index)
    end = period_start(anchor, interval, index + 1)
    while _utc(end) <= when:
        index += 1
        start, end = end, period_start(anchor, interval, index + 1)
    return index, start, end
