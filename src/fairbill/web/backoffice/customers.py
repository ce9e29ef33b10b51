"""Customers: a search by code or email, and one customer's timeline (every
subscription, invoice, payment, refund, request, decision, outage and email, in time
order)."""

from __future__ import annotations

from fastapi import Request, Response

from fairbill.services import backoffice, portal
from fairbill.services.views import Fmt, customer_view, subscription_view
from fairbill.web.backoffice.common import Who, make_router, visiting

router = make_router()
MAX_QUERY = 100


@router.get("/customers")
def customers(request: Request, staff: Who, q: str = "") -> Response:
    with visiting(request, staff) as v:
        wanted = q[:MAX_QUERY]
        found = backoffice.find_customers(v.ctx, wanted)
        return v.page(
            "app/customers.html",
            "customers",
            q=wanted,
            customers=found,
            limited=len(found) == backoffice.MAX_FOUND,
        )


@router.get("/customers/{code}")
def customer(code: str, request: Request, staff: Who) -> Response:
    with visiting(request, staff) as v:
        row = backoffice.customer_of(v.ctx, code)
        t = Fmt(v.ctx)
        return v.page(
            "app/customer.html",
            "customers",
            c=customer_view(t, row) | {"email": row.email, "language": row.language},
            wallet=v.ctx.money(row.wallet_minor).text(),
            subscriptions=[
                subscription_view(t, s) for s in portal.subscriptions(v.ctx.session, row)
            ],
            events=backoffice.timeline(v.ctx, row),
        )
