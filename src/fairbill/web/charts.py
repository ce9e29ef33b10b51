"""Bar charts drawn on the server as SVG: one bar per label, stacked by series.

Pure: plain values in, markup out; no script and no ``style`` attribute (the pages' CSP
allows neither inline), colours are presentation attributes.

Invariants:
- the chart is an image (``role="img"``) named by its ``<title>`` and described by its
  ``<desc>``, which states every non-zero value in words: a screen reader gets the data,
  not the drawing (the pages show the same data as a table too);
- every text is escaped; a value is an integer (minor units or a count), never a float;
- the scale starts at 0 and ends on a round step (1, 2 or 5 × 10ⁿ) above the tallest bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 72, 8, 12, 28
TICKS = 4
# Text-grade contrast on white (at least 4.5:1), one per series, then again.
COLOURS = ("#0b57d0", "#b42318", "#0f6b3a", "#8a4b00", "#6b21a8", "#334155")
INK, GRID = "#1a1a1a", "#c8c8c8"


@dataclass(frozen=True, slots=True)
class Chart:
    id: str  # unique on the page: names the title and description
    title: str
    summary: str  # one sentence before the values in the description
    labels: list[str]  # one per bar, left to right
    series: list[tuple[str, list[int]]]  # (name, one value per label), stacked in order
    fmt: Callable[[int], str]  # a value (and the scale's ticks) as words
    every: int = 1  # label every n-th bar, counted back from the last
    least: int = 1  # the smallest step of the scale (money: one major unit)


def step_for(top: int, least: int = 1) -> int:
    """The smallest round step (1, 2 or 5 × 10ⁿ, at least ``least``) with which ``TICKS``
    steps reach ``top``."""
    magnitude = 1
    while True:
        for base in (1, 2, 5):
            step = base * magnitude
            if step >= least and step * TICKS >= top:
                return step
        magnitude *= 10


def colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def describe(chart: Chart) -> str:
    """The description: the summary, then each bar's non-zero values."""
    parts = []
    for i, label in enumerate(chart.labels):
        values = [f"{name} {chart.fmt(vs[i])}" for name, vs in chart.series if vs[i]]
        if values:
            parts.append(f"{label}: {', '.join(values)}")
    return " ".join([chart.summary, *(p + "." for p in parts)])


def bar_chart(chart: Chart) -> Markup:
    totals = [sum(vs[i] for _, vs in chart.series) for i in range(len(chart.labels))]
    step = step_for(max(totals, default=0), chart.least)
    top = step * TICKS
    plot_h = HEIGHT - TOP - BOTTOM
    band = (WIDTH - LEFT - RIGHT) / max(len(chart.labels), 1)

    def y(value: int) -> float:  # float-ok: SVG coordinates
        return TOP + plot_h - plot_h * value / top

    out = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart.id}-title" aria-describedby="{chart.id}-desc" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{chart.id}-title">{escape(chart.title)}</title>',
        f'<desc id="{chart.id}-desc">{escape(describe(chart))}</desc>',
    ]
    out += _scale(chart, step, y)
    for i, label in enumerate(chart.labels):
        out += _bar(chart, i, LEFT + band * i, band, y)
        if (len(chart.labels) - 1 - i) % chart.every == 0:
            x = LEFT + band * (i + 0.5)
            out.append(_text(x, HEIGHT - 8, label, "middle"))
    out.append("</svg>")
    return Markup("".join(out))


def _scale(chart: Chart, step: int, y: Callable[[int], float]) -> list[str]:  # float-ok
    lines = []
    for n in range(TICKS + 1):
        at = y(step * n)
        lines.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at:.1f}" y2="{at:.1f}" '
            f'stroke="{INK if n == 0 else GRID}" stroke-width="1"/>'
        )
        lines.append(_text(LEFT - 6, at + 4, chart.fmt(step * n), "end"))
    return lines


def _bar(
    chart: Chart,
    index: int,
    x: float,  # float-ok: SVG coordinates
    band: float,  # float-ok
    y: Callable[[int], float],  # float-ok
) -> list[str]:
    rects, base = [], 0
    for n, (name, values) in enumerate(chart.series):
        value = values[index]
        if value <= 0:
            continue
        top, bottom = y(base + value), y(base)
        rects.append(
            f'<rect x="{x + band * 0.15:.1f}" y="{top:.1f}" width="{band * 0.7:.1f}" '
            f'height="{bottom - top:.1f}" fill="{colour(n)}">'
            f"<title>{escape(chart.labels[index])}: {escape(name)} "
            f"{escape(chart.fmt(value))}</title></rect>"
        )
        base += value
    return rects


def _text(x: float, y: float, text: str, anchor: str) -> str:  # float-ok: SVG coordinates
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12" '
        f'fill="{INK}">{escape(text)}</text>'
    )


def legend(chart: Chart) -> Markup:
    """The series' names beside their colours (an HTML list under the chart)."""
    items = "".join(
        f'<li><svg width="12" height="12" aria-hidden="true" focusable="false">'
        f'<rect width="12" height="12" fill="{colour(n)}"/></svg> {escape(name)}</li>'
        for n, (name, _) in enumerate(chart.series)
    )
    return Markup(f'<ul class="legend">{items}</ul>')
