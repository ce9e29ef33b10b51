"""Where a merchant is: its currency, its timezone and its country, each checked against
what the engine can compute with. A merchant created with country ``ZZ`` made every
business-day deadline of its refunds raise (``holidays`` knows no such country): these
checks run where a policy is validated and where a merchant is created.

Each function returns why the value is refused, or None when it is fine.
"""

from __future__ import annotations

from functools import cache
from zoneinfo import available_timezones

from fairbill.calendar.windows import known_country, supported_countries
from fairbill.money import iso_currencies, known_currency

__all__ = [
    "country_problem",
    "currency_problem",
    "iso_currencies",
    "supported_countries",
    "timezone_problem",
    "timezones",
]


def currency_problem(code: str) -> str | None:
    if known_currency(code):
        return None
    return f"unknown currency {code!r}: an ISO 4217 code, e.g. EUR"


def country_problem(code: str) -> str | None:
    if known_country(code):
        return None
    return (
        f"unknown country {code!r}: an ISO 3166 code whose public holidays are known "
        "(business days skip them), e.g. FR"
    )


def timezone_problem(name: str) -> str | None:
    if name in timezones():
        return None
    return f"unknown timezone {name!r}: an IANA time zone, e.g. Europe/Paris"


@cache
def timezones() -> frozenset[str]:
    """The IANA names ``zoneinfo`` has (from the system or the ``tzdata`` package)."""
    return frozenset(available_timezones())
