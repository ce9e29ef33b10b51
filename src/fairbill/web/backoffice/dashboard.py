"""The dashboard (the back office's home): the merchant's figures now, and two charts, drawn
on the server (``web.charts``), each with its data as a table too."""

from __future__ import annotations

from datetime import date
from typing import Any

from babel.dates import format_skeleton
from fastapi import Request, Response

from fairbill.money import Money, minor_units
from fairbill.notify.render import money
from fairbill.services.dashboard import NO_CLAUSE, Series, dashboard
from fairbill.web.backoffice.common import Visit, Who, make_router, visiting
from fairbill.web.charts import Chart, bar_chart, legend
from fairbill.web.words import word

router = make_router()


def _day(day: date, skeleton: str, language: str) -> str:
    return str(format_skeleton(skeleton, day, locale=language))


def refunds_chart(v: Visit, series: Series) -> Chart:
    def amount(minor: int) -> str:
        values = {"currency": v.ctx.currency, "locale": v.language}
        return money(values, Money.from_minor(minor, v.ctx.currency).text())

    return Chart(
        id="refunds-chart",
        title=word(v.language, "app.dash.refunds_chart"),
        summary=word(v.language, "app.dash.refunds_chart_summary", months=len(series.labels)),
        labels=[_day(m, "yMMM", v.language) for m in series.labels],
        series=[
            (clause or word(v.language, "app.dash.no_clause"), values)
            for clause, values in series.values.items()
        ],
        fmt=amount,
        least=10 ** minor_units(v.ctx.currency),
    )


def queue_chart(v: Visit, series: Series) -> Chart:
    return Chart(
        id="queue-chart",
        title=word(v.language, "app.dash.queue_chart"),
        summary=word(v.language, "app.dash.queue_chart_summary", days=len(series.labels)),
        labels=[_day(d, "MMMd", v.language) for d in series.labels],
        series=[(word(v.language, "app.dash.in_review"), series.values["queue"])],
        fmt=str,
        every=7,
    )


def table(chart: Chart) -> dict[str, Any]:
    """The chart's data, row by row, as the page's table shows it."""
    return {
        "labels": chart.labels,
        "series": [(name, [chart.fmt(v) for v in values]) for name, values in chart.series],
    }


@router.get("/")
def home(request: Request, staff: Who) -> Response:
    with visiting(request, staff) as v:
        figures = dashboard(v.ctx)
        charts = [
            refunds_chart(v, figures.refunds_by_month),
            queue_chart(v, figures.queue_by_day),
        ]
        return v.page(
            "app/dashboard.html",
            "dashboard",
            d=figures,
            no_clause=NO_CLAUSE,
            charts=[
                {"chart": c, "svg": bar_chart(c), "legend": legend(c), "data": table(c)}
                for c in charts
            ],
        )
