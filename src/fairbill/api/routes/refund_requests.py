"""Refund requests: file one, list them (and the review queue), review, appeal.

A request is decided by the merchant's policy when it is filed: approved and paid,
declined, or ``needs_review`` with the engine's recommendation, which a reviewer accepts
or overrides. Ids are ``req_<n>``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import and_, or_, select

from fairbill.api.deps import Caller, Db, Principal, customer_for, merchant_ctx, need, runtime
from fairbill.api.mutation import Body, merchant_work, mutate
from fairbill.api.pagination import decode, page
from fairbill.api.problems import GATEWAY_RESPONSES, Problem, not_found
from fairbill.api.routes.billing import (
    BOUND_SCHEMA,
    Limit,
    To,
    in_range,
    load_invoice,
    load_payment,
    number_of,
    owner,
    refund_out,
    scoped,
)
from fairbill.api.schemas import AppealIn, RefundRequestIn, ReviewIn, dec
from fairbill.api.settings import Runtime
from fairbill.api.strict import QueryBool
from fairbill.errors import InvalidAmount
from fairbill.ids import Prefix
from fairbill.lifecycle import RequestStatus
from fairbill.money import Money
from fairbill.services import refunds
from fairbill.services.context import Ctx
from fairbill.services.views import Fmt, decision_view, request_view
from fairbill.store.tables import (
    CustomerRow,
    InvoiceRow,
    PaymentRow,
    RefundRow,
    RequestRow,
)

router = APIRouter(prefix="/v1", tags=["refund requests"], responses=GATEWAY_RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


def made(ctx: Ctx, customer: CustomerRow | None = None) -> list[dict[str, Any]]:
    """The decisions the services took in this unit of work (for one customer), in order,
    each with its destination (the stored row has none)."""
    t = Fmt(ctx)
    return [decision_view(t, d) for cid, d in ctx.decided if customer is None or cid == customer.id]


def load_request(ctx: Ctx, who: Principal, req_id: str) -> tuple[CustomerRow, RequestRow]:
    row = ctx.session.get(RequestRow, number_of(ctx.ids, Prefix.REQUEST, req_id, "refund request"))
    if row is None:
        raise not_found(f"no refund request {req_id!r}")
    return owner(ctx, who, row.customer_id, "refund request", req_id), row


def request_out(ctx: Ctx, customer: CustomerRow, row: RequestRow) -> dict[str, Any]:
    paid = ctx.session.scalars(
        select(RefundRow).where(RefundRow.request_id == row.id).order_by(RefundRow.id)
    )
    return (
        {"id": ctx.ids.public(Prefix.REQUEST, row.id), "customer": customer.code}
        | request_view(Fmt(ctx), row)
        | {
            "payment_id": (
                ctx.ids.public(Prefix.PAYMENT, row.payment_id) if row.payment_id else None
            ),
            "refunds": [refund_out(ctx, r) for r in paid],
        }
    )


def _refs(
    ctx: Ctx, who: Principal, customer: CustomerRow, body: RefundRequestIn
) -> tuple[PaymentRow | None, InvoiceRow | None]:
    """The payment and invoice named in the body; each must be the customer's own."""
    payment = invoice = None
    if body.payment is not None:
        owner_, payment = load_payment(ctx, who, body.payment)
        if owner_.id != customer.id:
            raise not_found(f"no payment {body.payment!r} for customer {customer.code!r}")
    if body.invoice is not None:
        owner_, invoice = load_invoice(ctx, who, body.invoice)
        if owner_.id != customer.id:
            raise not_found(f"no invoice {body.invoice!r} for customer {customer.code!r}")
    return payment, invoice


@router.post("/refund_requests", status_code=201)
def create(body: RefundRequestIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """File a request; the policy decides it at once (or sends it to review)."""
    need(who, "request_refund")

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer = customer_for(ctx, who, body.customer)
        payment, invoice = _refs(ctx, who, customer, body)
        row = refunds.request_refund(
            ctx,
            customer,
            body.kind,
            payment=payment,
            invoice=invoice,
            reason=body.reason,
            refund_to=body.refund_to,
            documents=tuple(body.documents),
            order_numbers=tuple(body.order_numbers),
        )
        ctx.session.flush()
        decided = made(ctx, customer)
        return (
            f"refund_request:{ctx.ids.public(Prefix.REQUEST, row.id)}",
            lambda: request_out(ctx, customer, row) | {"decisions": decided},
        )

    return mutate(
        request,
        rt,
        who,
        "refund_request.create",
        body.model_dump(),
        merchant_work(rt, who, work),
        201,
    )


@router.get("/refund_requests")
def list_requests(
    session: Db,
    rt: Rt,
    who: Caller,
    status: str | None = None,
    kind: str | None = None,
    customer: str | None = None,
    created_from: Annotated[
        str | None,
        Query(
            description="A date (YYYY-MM-DD, local) or a time with an offset; inclusive.",
            json_schema_extra=BOUND_SCHEMA,
        ),
    ] = None,
    created_to: To = None,
    queue: Annotated[
        QueryBool,
        Query(description="The review queue: requests in review, soonest review_due first."),
    ] = False,
    limit: Limit = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = scoped(ctx, who, RequestRow, customer)
    if status:
        query = query.where(RequestRow.status == status)
    if kind:
        query = query.where(RequestRow.kind == kind)
    query = in_range(
        ctx, query, RequestRow.at, created_from, created_to, ("created_from", "created_to")
    )

    def render(r: RequestRow) -> dict[str, Any]:
        return request_out(ctx, session.get_one(CustomerRow, r.customer_id), r)

    if not queue:
        return page(ctx, query, RequestRow, limit, cursor, render)
    # The queue: by review_due (requests without a deadline last), then id; the cursor
    # is the last row's id and the page after it is found by its (review_due, id).
    query = query.where(RequestRow.status == RequestStatus.IN_REVIEW)
    if cursor:
        last = session.get(RequestRow, decode(ctx.ids, cursor))
        if last is None or session.get_one(CustomerRow, last.customer_id).merchant_id != (
            ctx.merchant_row.id
        ):
            raise Problem(
                422,
                "invalid_cursor",
                "Invalid cursor",
                "the cursor is not one we issued",
                errors=[{"field": "cursor", "message": "invalid cursor"}],
            )
        due = RequestRow.review_due
        if last.review_due is None:
            query = query.where(due.is_(None), RequestRow.id > last.id)
        else:
            query = query.where(
                or_(
                    due > last.review_due,
                    and_(due == last.review_due, RequestRow.id > last.id),
                    due.is_(None),
                )
            )
    rows = list(
        session.scalars(
            query.order_by(
                RequestRow.review_due.is_(None), RequestRow.review_due, RequestRow.id
            ).limit(limit + 1)
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "data": [render(r) for r in rows],
        "has_more": more,
        "next_cursor": ctx.ids.public(Prefix.CURSOR, rows[-1].id) if more and rows else None,
    }


@router.get("/refund_requests/{request_id}")
def get_request(request_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    customer, row = load_request(ctx, who, request_id)
    return request_out(ctx, customer, row)


def _amount(ctx: Ctx, text: str | None) -> Money | None:
    if text is None:
        return None
    try:
        return Money.parse(text, ctx.currency)
    except InvalidAmount as exc:
        raise Problem(
            422,
            "validation_error",
            "Validation error",
            "invalid field: amount",
            errors=[{"field": "amount", "message": str(exc)}],
        ) from exc


@router.post("/refund_requests/{request_id}/review")
def review(request_id: str, body: ReviewIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """A reviewer decides a request in review: ``accept`` the recommendation, ``approve``
    another amount or destination (bounded by what is refundable and the policy's fee
    limit), or ``decline``. A request not in review is left as it is (declined decision)."""
    need(who, "review")

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer, row = load_request(ctx, who, request_id)
        amount = _amount(ctx, body.amount)
        refunds.review(
            ctx,
            customer,
            row,
            body.decision,
            amount=amount.amount if amount is not None else None,
            destination=str(body.destination) if body.destination else None,
            fee_percent=dec(body.fee_percent),
        )
        ctx.session.flush()
        decided = made(ctx, customer)
        return (
            f"refund_request:{ctx.ids.public(Prefix.REQUEST, row.id)}",
            lambda: request_out(ctx, customer, row) | {"decisions": decided},
        )

    return mutate(
        request,
        rt,
        who,
        "refund_request.review",
        body.model_dump(),
        merchant_work(rt, who, work),
    )


@router.post("/refund_requests/{request_id}/appeal")
def appeal(request_id: str, body: AppealIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """The customer contests a decision: back to review, unless the policy makes refund
    decisions final (then the appeal is declined with ``appeal_not_allowed``)."""
    need(who, "request_refund")

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer, row = load_request(ctx, who, request_id)
        refunds.appeal(ctx, customer, row)
        ctx.session.flush()
        decided = made(ctx, customer)
        return (
            f"refund_request:{ctx.ids.public(Prefix.REQUEST, row.id)}",
            lambda: request_out(ctx, customer, row) | {"decisions": decided},
        )

    return mutate(
        request,
        rt,
        who,
        "refund_request.appeal",
        body.model_dump(),
        merchant_work(rt, who, work),
    )
