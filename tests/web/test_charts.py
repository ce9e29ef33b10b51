"""Server-drawn SVG charts: named and described for screen readers, escaped, scaled."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from fairbill.web.charts import TICKS, Chart, bar_chart, describe, legend, step_for


def a_chart(**changes: object) -> Chart:
    values: dict[str, object] = {
        "id": "c",
        "title": "Refunds <by> clause",
        "summary": "Refunds of 2 months.",
        "labels": ["Feb", "Mar"],
        "series": [("a/one", [0, 300]), ("b&two", [100, 0])],
        "fmt": lambda v: f"{v} cents",
    }
    values.update(changes)
    return Chart(**values)  # type: ignore[arg-type]


def test_the_chart_is_an_image_named_by_its_title_and_described_by_its_values() -> None:
    svg = str(bar_chart(a_chart()))
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg
    assert 'aria-labelledby="c-title"' in svg and 'aria-describedby="c-desc"' in svg
    assert '<title id="c-title">Refunds &lt;by&gt; clause</title>' in svg
    assert "Feb: b&amp;two 100 cents. Mar: a/one 300 cents." in svg
    assert "style=" not in svg and "<script" not in svg  # the pages' CSP allows neither
    assert len(re.findall(r"<rect ", svg)) == 2  # no bar for a zero
    assert "b&amp;two" in str(legend(a_chart()))


def test_the_description_states_every_non_zero_value() -> None:
    assert describe(a_chart(series=[("x", [0, 0])])) == "Refunds of 2 months."


ROUND = sorted(base * 10**power for power in range(14) for base in (1, 2, 5))


@given(st.integers(0, 10**12))
def test_the_scale_is_the_smallest_round_step_that_reaches_the_tallest_bar(top: int) -> None:
    step = step_for(top)
    assert step in ROUND and step * TICKS >= top
    below = [s for s in ROUND if s < step]
    assert not below or below[-1] * TICKS < top


def test_an_empty_chart_still_draws() -> None:
    svg = str(bar_chart(a_chart(labels=[], series=[])))
    assert "<rect" not in svg and "</svg>" in svg


def test_the_scale_never_steps_below_its_least() -> None:
    assert step_for(0) == 1 and step_for(0, least=100) == 100
    assert step_for(5800, least=100) == 2000
