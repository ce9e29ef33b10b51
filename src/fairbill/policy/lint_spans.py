"""How many calendar days N business days can span, to compare rights stated in business
days with rights stated in calendar days.

A period of N business days counts from the next business day after the sale and ends at
the end of the N-th (``calendar.windows``). Its calendar length depends on the weekday of
the sale and on public holidays:

- ``shortest_span``: the fewest calendar days N business days can take, whatever the
  country (a sale on a Sunday, no holiday): ``N + 2 × ((N − 1) // 5)``;
- ``longest_span``: the most they take in a country, over the sales of a year and the next
  (that country's public holidays, ``holidays`` package); for a country the package does
  not know, weekends only: ``N + 2 × ceil(N / 5)`` (a sale on a Friday).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from fairbill.calendar.windows import add_business_days


def shortest_span(business_days: int) -> int:
    return business_days + 2 * ((business_days - 1) // 5)


@lru_cache(maxsize=64)
def longest_span(business_days: int, country: str, year: int) -> int:
    start = date(year, 1, 1)
    sales = (start + timedelta(days=i) for i in range((date(year + 2, 1, 1) - start).days))
    try:
        return max((add_business_days(d, business_days, country) - d).days for d in sales)
    except NotImplementedError:  # a country the holidays package does not cover
        return business_days + 2 * -(-business_days // 5)
