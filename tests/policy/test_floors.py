"""The legal floors file: it loads, every floor names its source, errors name a line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairbill.errors import PolicyError
from fairbill.policy.floors import bundled_floors, parse_floors

# The 27 member states, Greece as ISO GR.
EU_MEMBER_STATES = {
    *("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE"),
    *("IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"),
}
DOC = Path(__file__).resolve().parents[2] / "docs" / "policy-lint.md"


def test_the_floors_load_and_each_names_its_source() -> None:
    floors = bundled_floors()
    assert {f.id for f in floors} >= {"eu-withdrawal", "za-cpa-direct-marketing"}
    for floor in floors:
        assert floor.source.law and floor.source.article, floor.id
        assert floor.source.url.startswith("https://"), floor.id
        if floor.waiver is not None:
            assert floor.waiver.source.url.startswith("https://"), floor.id


def test_the_periods_the_laws_set() -> None:
    by_id = {f.id: f for f in bundled_floors()}
    eu = by_id["eu-withdrawal"]
    assert set(eu.countries) == EU_MEMBER_STATES
    assert (eu.days, eu.unit) == (14, "calendar")
    assert eu.waiver is not None and "Article 16(m)" in eu.waiver.source.article
    cpa = by_id["za-cpa-direct-marketing"]
    assert (cpa.days, cpa.unit, cpa.acquisition) == (5, "business", ("direct_marketing",))
    assert "68 of 2008" in cpa.source.law and cpa.source.article == "Section 16(3)"
    assert (by_id["za-ecta-cooling-off"].days, by_id["gb-cancellation"].days) == (7, 14)


def test_every_floor_is_in_the_documented_table() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for floor in bundled_floors():
        assert f"| `{floor.id}` |" in doc, floor.id


def test_a_floor_without_a_source_is_reported_with_its_line() -> None:
    text = (
        "floors:\n"  # 1
        "  - id: xx-test\n"  # 2
        "    name: Test\n"  # 3
        "    countries: [XX]\n"  # 4
        "    customer_types: [consumer]\n"  # 5
        "    acquisition: [self_serve]\n"  # 6
        "    days: 14\n"  # 7
        "    unit: calendar\n"  # 8
        "    counted_from: the sale\n"  # 9
    )
    with pytest.raises(PolicyError) as info:
        parse_floors(text, "floors.yaml")
    ((where, message),) = info.value.problems
    assert (where.path, where.line, where.field, message) == (
        "floors.yaml",
        2,
        "floors.0.source",
        "Field required",
    )
