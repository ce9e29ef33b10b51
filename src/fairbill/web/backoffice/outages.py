"""Outages: declare one merchant-wide (every customer with a live subscription gets the
compensation the policy decides, ``accounts.declare_outage``, as the API's
``POST /v1/outages``), and see what each customer got.

The form's times are the merchant's local times (``datetime-local`` fields); like the
API, an outage must have ended, end after it starts, and not be reported in the future.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request, Response
from fastapi.responses import RedirectResponse

from fairbill.ids import Prefix
from fairbill.policy.model import OutageCause
from fairbill.services import accounts, backoffice
from fairbill.services.context import Ctx
from fairbill.web.actions import act
from fairbill.web.backoffice.common import Posted, Visit, Who, make_router, need, visiting
from fairbill.web.http import Form, check_csrf, secure

router = make_router()
FIELDS = ("start", "end", "cause", "reported_at")


@dataclass(frozen=True)
class Declared:
    start: datetime
    end: datetime
    cause: OutageCause
    reported_at: datetime | None


def local_time(text: str, tz: ZoneInfo) -> datetime | None:
    """A ``datetime-local`` value (``2026-03-02T09:30``) as an instant in ``tz``; None if
    it is not one (or out of the years the engine stores)."""
    try:
        naive = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if naive.tzinfo is not None or not 1900 <= naive.year < 9000:
        return None
    return naive.replace(tzinfo=tz)


def read_outage(
    posted: Form, tz: ZoneInfo, now: datetime
) -> tuple[Declared | None, dict[str, str]]:
    """The outage the form declares, or the errors to show (by field, catalogue keys)."""
    errors: dict[str, str] = {}
    start, end = local_time(posted.get("start"), tz), local_time(posted.get("end"), tz)
    reported_text = posted.get("reported_at").strip()
    reported = local_time(reported_text, tz) if reported_text else None
    for name, value in (("start", start), ("end", end)):
        if value is None:
            errors[name] = "app.outages.bad_time"
    if reported_text and reported is None:
        errors["reported_at"] = "app.outages.bad_time"
    if start and end and end <= start:
        errors["end"] = "app.outages.end_before_start"
    elif end and end > now:
        errors["end"] = "app.outages.not_ended"
    if reported and reported > now:
        errors["reported_at"] = "app.outages.in_future"
    cause = posted.get("cause")
    if cause not in set(OutageCause):
        errors["cause"] = "app.outages.bad_cause"
    if errors or start is None or end is None:
        return None, errors
    return Declared(start, end, OutageCause(cause), reported), {}


def incident_view(ctx: Ctx, incident: backoffice.Outage) -> dict[str, Any]:
    """An incident as its pages show it: amounts as text in the merchant's currency."""
    return {
        "id": ctx.ids.public(Prefix.OUTAGE, incident.id),
        "start": incident.start,
        "end": incident.end,
        "cause": incident.cause,
        "reported_at": incident.reported_at,
        "granted": ctx.money(incident.granted_minor).text(),
        "in_review": incident.in_review,
        "compensations": [
            {
                "customer": c.customer,
                "request": c.request,
                "request_id": ctx.ids.public(Prefix.REQUEST, c.request.id) if c.request else None,
                "amount": ctx.money(c.request.amount_minor).text() if c.request else None,
            }
            for c in incident.compensations
        ],
    }


def outages_page(
    v: Visit,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    return v.page(
        "app/outages.html",
        "outages",
        status=status,
        incidents=[incident_view(v.ctx, o) for o in backoffice.outages(v.ctx)],
        causes=[str(c) for c in OutageCause],
        errors=errors or {},
        values=values or {f: "" for f in FIELDS},
        now=v.ctx.now.replace(second=0, microsecond=0, tzinfo=None).isoformat(),
    )


@router.get("/outages")
def outage_list(request: Request, staff: Who) -> Response:
    with visiting(request, staff) as v:
        return outages_page(v)


@router.post("/outages")
def declare(request: Request, staff: Who, posted: Posted) -> Response:
    check_csrf(posted, staff.session)
    need(staff, "outage")
    with visiting(request, staff) as v:
        asked, errors = read_outage(posted, v.ctx.merchant.tz, v.ctx.now)
        if asked is None:
            return outages_page(v, errors, {f: posted.get(f) for f in FIELDS}, status=422)
        v.ctx.session.rollback()  # end the read before the write starts

    def work(ctx: Ctx) -> tuple[str, str]:
        made = accounts.declare_outage(
            ctx, asked.start, asked.end, str(asked.cause), asked.reported_at
        )
        ctx.session.flush()
        first = min((r.details["outage"] for _, r in made), default=None)
        target = f"outage:{asked.start.isoformat()}/{asked.end.isoformat()}"
        return target, ctx.ids.public(Prefix.OUTAGE, first) if first is not None else ""

    details: dict[str, Any] = {
        "start": asked.start.isoformat(),
        "end": asked.end.isoformat(),
        "cause": str(asked.cause),
        "reported_at": asked.reported_at.isoformat() if asked.reported_at else None,
        "customers": None,  # merchant-wide
    }
    first = act(request, staff.session, "outage.report", details, work)
    where = f"/app/outages/{first}" if first else "/app/outages"
    return secure(RedirectResponse(where, status_code=303))


@router.get("/outages/{outage_id}")
def outage(outage_id: str, request: Request, staff: Who) -> Response:
    with visiting(request, staff) as v:
        incident = backoffice.outage_of(v.ctx, outage_id)
        return v.page("app/outage.html", "outages", o=incident_view(v.ctx, incident))
