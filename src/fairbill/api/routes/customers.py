"""Customers, their payment methods (tokens only) and portal tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from fairbill.api.deps import Caller, Db, customer_for, merchant_ctx, need, runtime
from fairbill.api.mutation import merchant_work, mutate
from fairbill.api.pagination import page
from fairbill.api.problems import RESPONSES
from fairbill.api.routes.api_keys import utc_text
from fairbill.api.schemas import CustomerIn, PaymentMethodIn, PortalTokenIn
from fairbill.api.settings import Runtime
from fairbill.services import merchants as service
from fairbill.services.context import Ctx
from fairbill.services.views import Fmt, customer_view
from fairbill.store.tables import CustomerRow, PaymentMethodRow, PortalTokenRow

router = APIRouter(prefix="/v1", tags=["customers"], responses=RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


def full_view(ctx: Ctx, c: CustomerRow) -> dict[str, Any]:
    methods = ctx.session.scalars(
        select(PaymentMethodRow)
        .where(PaymentMethodRow.customer_id == c.id)
        .order_by(PaymentMethodRow.id)
    )
    return customer_view(Fmt(ctx), c) | {
        "email": c.email,
        "type": c.type,
        "acquisition": c.acquisition,
        "flags": list(c.flags),
        "language": c.language,
        "wallet_balance": ctx.money(c.wallet_minor).text(),
        "payment_methods": [
            {"id": m.code, "type": m.type, "currency": m.currency} for m in methods
        ],
    }


@router.post("/customers", status_code=201)
def create_customer(body: CustomerIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    need(who, "customers")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        row = service.create_customer(ctx.session, ctx.merchant_row, body.model_dump())
        for pm in body.payment_methods:
            service.add_payment_method(ctx.session, ctx.merchant_row, row, pm.model_dump())
        ctx.session.flush()
        return f"customer:{row.code}", full_view(ctx, row)

    return mutate(
        request, rt, who, "customer.create", body.model_dump(), merchant_work(rt, who, work), 201
    )


@router.get("/customers")
def list_customers(
    session: Db,
    rt: Rt,
    who: Caller,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = select(CustomerRow).where(CustomerRow.merchant_id == ctx.merchant_row.id)
    if who.kind == "portal":
        query = query.where(CustomerRow.id == who.customer_id)
    if status:
        query = query.where(CustomerRow.status == status)
    return page(ctx, query, CustomerRow, limit, cursor, lambda c: full_view(ctx, c))


@router.get("/customers/{customer_id}")
def get_customer(customer_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    return full_view(ctx, customer_for(ctx, who, customer_id))


@router.post("/customers/{customer_id}/payment_methods", status_code=201)
def add_payment_method(
    customer_id: str, body: PaymentMethodIn, request: Request, rt: Rt, who: Caller
) -> JSONResponse:
    need(who, "customers")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        customer = customer_for(ctx, who, customer_id)
        row = service.add_payment_method(ctx.session, ctx.merchant_row, customer, body.model_dump())
        return f"payment_method:{customer.code}/{row.code}", {
            "id": row.code,
            "type": row.type,
            "currency": row.currency,
        }

    return mutate(
        request,
        rt,
        who,
        "payment_method.create",
        body.model_dump(),
        merchant_work(rt, who, work),
        201,
    )


@router.post("/customers/{customer_id}/portal_tokens", status_code=201)
def create_portal_token(
    customer_id: str,
    request: Request,
    rt: Rt,
    who: Caller,
    body: PortalTokenIn | None = None,
) -> JSONResponse:
    """A self-service token for one customer, shown once; it expires after
    ``expires_in_days`` (30 unless told, at most 365)."""
    need(who, "customers")
    days = (body or PortalTokenIn()).expires_in_days

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        customer = customer_for(ctx, who, customer_id)
        issued = service.issue_portal_token(ctx.session, customer, ctx.now, days)
        return f"portal_token:{customer.code}", {
            "customer": customer.code,
            "token": issued.token,
            "prefix": issued.prefix,
            "expires_at": utc_text(issued.expires_at),
        }

    return mutate(
        request,
        rt,
        who,
        "portal_token.create",
        {"customer": customer_id, "expires_in_days": days},
        merchant_work(rt, who, work),
        201,
    )


def portal_token_view(customer: CustomerRow, row: PortalTokenRow) -> dict[str, Any]:
    return {
        "customer": customer.code,
        "prefix": row.prefix,
        "created_at": utc_text(row.created_at),
        "expires_at": utc_text(row.expires_at) if row.expires_at else None,
        "revoked_at": utc_text(row.revoked_at) if row.revoked_at else None,
    }


@router.post("/customers/{customer_id}/portal_tokens/{token_prefix}/revoke")
def revoke_portal_token(
    customer_id: str, token_prefix: str, request: Request, rt: Rt, who: Caller
) -> JSONResponse:
    """Revoke a portal token at once, by the prefix its issuing showed (a link sent to the
    wrong address, a lost device): every later call with it is a 401, and the portal
    sessions it opened end. Closing the account revokes all of the customer's tokens."""
    need(who, "customers")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        customer = customer_for(ctx, who, customer_id)
        row = service.revoke_portal_token(ctx.session, customer, token_prefix, ctx.now)
        return f"portal_token:{row.prefix}", portal_token_view(customer, row)

    return mutate(
        request,
        rt,
        who,
        "portal_token.revoke",
        {"customer": customer_id, "prefix": token_prefix},
        merchant_work(rt, who, work),
    )
