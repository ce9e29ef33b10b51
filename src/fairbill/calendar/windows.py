"""Windows in calendar days and business days, asked in the merchant's timezone.

- "within N days of X": the local date of the request ≤ local date of X + N days.
- "within N business days": count from the next business day after X; the window ends at
  the end of the N-th business day. Business days are Monday–Friday minus the public
  holidays of the merchant's country (``holidays`` package).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays


@cache
def supported_countries() -> frozenset[str]:
    """The two-letter codes whose public holidays the ``holidays`` package knows: business
    days can be counted for those countries only (any other raises in
    ``_country_holidays``)."""
    return frozenset(c for c in holidays.list_supported_countries() if len(c) == 2)


def known_country(country: str) -> bool:
    return country in supported_countries()


@lru_cache(maxsize=32)
def _country_holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


def is_business_day(day: date, country: str) -> bool:
    return day.weekday() < 5 and day not in _country_holidays(country, day.year)


def add_business_days(day: date, count: int, country: str) -> date:
    """The ``count``-th business day after ``day`` (``day`` itself never counts)."""
    if count < 0:
        raise ValueError("count must be zero or more")
    current = day
    found = 0
    while found < count:
        current += timedelta(days=1)
        if is_business_day(current, country):
            found += 1
    return current


def within_days(event: datetime, request: datetime, days: int, tz: ZoneInfo) -> bool:
    return request.astimezone(tz).date() <= event.astimezone(tz).date() + timedelta(days=days)


def within_business_days(
    event: datetime, request: datetime, days: int, tz: ZoneInfo, country: str
) -> bool:
    last = add_business_days(event.astimezone(tz).date(), days, country)
    return request.astimezone(tz).date() <= last


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The last second of a local day (what a person reads as "by the end of the day")."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz)


def business_deadline(event: datetime, days: int, tz: ZoneInfo, country: str) -> datetime:
    """The instant a "within N business days" deadline from ``event`` runs out: the end of
    the N-th business day, reported as the last second of that local day."""
    return end_of_day(add_business_days(event.astimezone(tz).date(), days, country), tz)
