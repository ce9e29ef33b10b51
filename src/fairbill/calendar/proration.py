"""Proration: the share of a period's price that an event leaves unused.

Two rules (docs/interpretation.md):
- by days: ``remaining_days / days_in_period`` on local calendar dates; the event's own
  date counts as remaining, the period's end date does not;
- by exact duration (outage credits): ``duration / period_duration`` in real elapsed time,
  so a period that crosses a DST change is 1 hour shorter or longer.
Both return exact fractions; the caller rounds the money once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from fairbill.calendar.periods import Period
from fairbill.money import Money


@dataclass(frozen=True, slots=True)
class DayShare:
    """``numerator_days`` of ``period_days`` local calendar days."""

    numerator_days: int
    period_days: int

    def of(self, price: Money) -> Money:
        return price.ratio(self.numerator_days, self.period_days)


def local_date(instant: datetime, tz_source: datetime) -> date:
    """The calendar date of ``instant`` in the timezone of ``tz_source``."""
    return instant.astimezone(tz_source.tzinfo).date()


def days_in_period(period: Period) -> int:
    return (period.end.date() - period.start.date()).days


def remaining_days(period: Period, event: datetime) -> DayShare:
    """Days from the event's local date (inclusive) to the period end date (exclusive),
    clamped to ``[0, days_in_period]``."""
    total = days_in_period(period)
    event_day = local_date(event, period.start)
    remaining = (period.end.date() - event_day).days
    return DayShare(max(0, min(total, remaining)), total)


def overlap(period: Period, start: datetime, end: datetime) -> timedelta:
    lo = max(period.start.astimezone(UTC), start.astimezone(UTC))
    hi = min(period.end.astimezone(UTC), end.astimezone(UTC))
    return max(hi - lo, timedelta(0))


def duration_share(price: Money, period: Period, duration: timedelta) -> Money:
    """``price × duration / period_duration`` in exact elapsed seconds."""
    seconds = Decimal(int(duration.total_seconds()))
    period_seconds = Decimal(int(period.duration.total_seconds()))
    return price.ratio(seconds, period_seconds)
