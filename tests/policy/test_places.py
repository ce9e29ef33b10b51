"""A policy's (and a merchant's) currency, timezone and country are ones the engine can
compute with: country ``ZZ`` made every business-day deadline raise (``holidays`` knows
no such country), so every refund request of that merchant was a 500."""

from __future__ import annotations

from datetime import date

import pytest

from fairbill.calendar.windows import add_business_days, known_country, supported_countries
from fairbill.errors import PolicyError
from fairbill.policy.load import parse_policy
from fairbill.policy.places import country_problem, currency_problem, timezone_problem

from .test_load_errors import APPEALS, HEAD, only


@pytest.mark.parametrize(
    ("field", "good", "bad", "line"),
    [
        ("country", "FR", "ZZ", 8),
        ("currency", "EUR", "ZZZ", 6),
        ("timezone", "Europe/Paris", "Europe/Atlantis", 7),
    ],
)
def test_a_policy_with_an_unknown_place_names_its_line_and_field(
    field: str, good: str, bad: str, line: int
) -> None:
    found_line, found_field, message = only(
        HEAD.replace(f"{field}: {good}", f"{field}: {bad}") + APPEALS
    )
    assert (found_line, found_field) == (line, field)
    assert f"unknown {field} {bad!r}" in message


def test_every_supported_country_counts_business_days() -> None:
    assert {"FR", "US", "ZA", "ES", "DE", "GB"} <= supported_countries()
    assert not known_country("ZZ") and not known_country("FRA")  # two letters only
    for country in sorted(supported_countries()):
        assert add_business_days(date(2026, 12, 24), 3, country) > date(2026, 12, 24)


def test_the_checks_say_why() -> None:
    assert country_problem("FR") is None and currency_problem("JPY") is None
    assert timezone_problem("America/New_York") is None
    assert "ISO 4217" in (currency_problem("EURO") or "")
    assert "IANA" in (timezone_problem("../../etc/passwd") or "")
    with pytest.raises(PolicyError):
        parse_policy(HEAD.replace("country: FR", "country: ZZ") + APPEALS, "p.yaml")
