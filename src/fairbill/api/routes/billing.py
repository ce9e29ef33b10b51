"""Billing records, read-only: invoices, payments, refunds, credit notes, wallet, packs.

Ids are opaque public ids (``inv_…``, ``pay_…``: ``fairbill.ids``); the per-customer
``number`` of the shared read models is kept beside them.
A portal token sees only its own customer's records; anything else is a 404.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import Select, select
from sqlalchemy.orm import InstrumentedAttribute

from fairbill.api.deps import Caller, Db, Principal, customer_for, merchant_ctx, need, runtime
from fairbill.api.pagination import page
from fairbill.api.problems import RESPONSES, Problem, not_found
from fairbill.api.settings import Runtime
from fairbill.ids import Ids, Prefix
from fairbill.services.billing import amount_due
from fairbill.services.context import Ctx
from fairbill.services.views import (
    Fmt,
    collection,
    credit_note_view,
    invoice_view,
    operation_view,
    pack_view,
    payment_view,
    refund_state,
    refund_view,
)
from fairbill.store.tables import (
    CreditNoteRow,
    CreditPackRow,
    CustomerRow,
    GatewayOperationRow,
    InvoiceRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    WalletEntryRow,
)

router = APIRouter(prefix="/v1", tags=["billing"], responses=RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]
Limit = Annotated[int, Query(ge=1, le=100)]
# What a time bound may look like (the document says it, ``bound`` holds to it): a date,
# or a time with an offset. An empty ``from=`` was refused though the schema allowed it.
BOUND_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2}))?$"
)
_BOUND = re.compile(BOUND_PATTERN)
# In the schema only: ``bound`` checks it, naming the field as the routes do (``from``).
BOUND_SCHEMA: dict[str, Any] = {"pattern": BOUND_PATTERN}
From = Annotated[
    str | None,
    Query(
        alias="from",
        description="A date (YYYY-MM-DD, from the start of that day in the merchant's "
        "timezone) or an ISO 8601 time with an offset; inclusive.",
        json_schema_extra=BOUND_SCHEMA,
    ),
]
To = Annotated[
    str | None,
    Query(
        description="A date (through the end of that day in the merchant's timezone) or "
        "an ISO 8601 time with an offset; inclusive.",
        json_schema_extra=BOUND_SCHEMA,
    ),
]

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


# -- ids ---------------------------------------------------------------------------------
def number_of(ids: Ids, prefix: Prefix, text: str, what: str) -> int:
    """The row id a public id names (``fairbill.ids``); any other text is a 404 (an id
    we never issued, or another merchant's)."""
    number = ids.private(prefix, text)
    if number is None:
        raise not_found(f"no {what} {text!r}")
    return number


def owner(ctx: Ctx, who: Principal, customer_id: int, what: str, text: str) -> CustomerRow:
    """The customer owning a record, if the caller may see it; else a 404."""
    customer = ctx.session.get(CustomerRow, customer_id)
    if (
        customer is None
        or customer.merchant_id != ctx.merchant_row.id
        or (who.kind == "portal" and customer.id != who.customer_id)
    ):
        raise not_found(f"no {what} {text!r}")
    return customer


def load_invoice(ctx: Ctx, who: Principal, inv_id: str) -> tuple[CustomerRow, InvoiceRow]:
    row = ctx.session.get(InvoiceRow, number_of(ctx.ids, Prefix.INVOICE, inv_id, "invoice"))
    if row is None:
        raise not_found(f"no invoice {inv_id!r}")
    return owner(ctx, who, row.customer_id, "invoice", inv_id), row


def load_payment(ctx: Ctx, who: Principal, pay_id: str) -> tuple[CustomerRow, PaymentRow]:
    row = ctx.session.get(PaymentRow, number_of(ctx.ids, Prefix.PAYMENT, pay_id, "payment"))
    if row is None:
        raise not_found(f"no payment {pay_id!r}")
    return owner(ctx, who, row.customer_id, "payment", pay_id), row


# -- time ranges -------------------------------------------------------------------------
def bound(ctx: Ctx, field: str, text: str, *, end: bool) -> datetime:
    """A query-string bound: a local date, or an aware time. For ``end`` a date means the
    start of the next day (exclusive); a time is returned as given (inclusive)."""

    def invalid(message: str) -> Problem:
        return Problem(
            422,
            "validation_error",
            "Validation error",
            f"invalid field: {field}",
            errors=[{"field": field, "message": message}],
        )

    if _DATE.match(text):
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise invalid("not a calendar date") from exc
        start = datetime.combine(day, time(), tzinfo=ctx.merchant.tz)
        value = start + timedelta(days=1) if end and day < date.max else start
    else:
        try:
            value = datetime.fromisoformat(text)
        except ValueError as exc:
            raise invalid(
                "a date (YYYY-MM-DD) or an ISO 8601 time with an offset (encode + as %2B)"
            ) from exc
        if value.tzinfo is None:
            raise invalid("a time with an offset, e.g. 2026-04-01T00:00:00+02:00")
        if not _BOUND.match(text):  # fromisoformat reads more forms than the schema names
            raise invalid("a time as YYYY-MM-DDThh:mm[:ss[.ffffff]] with an offset")
    if not in_bounds(value):
        raise invalid(f"out of range: between {EARLIEST.year} and {LATEST.year - 1}")
    return value


# Instants the API accepts: wide enough for any billing record, narrow enough that
# converting to UTC or adding a day can never overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def in_bounds(value: datetime) -> bool:
    try:
        return EARLIEST <= value.astimezone(UTC) < LATEST
    except OverflowError:
        return False


def in_range(
    ctx: Ctx,
    query: Select[Any],
    column: InstrumentedAttribute[datetime],
    start: str | None,
    stop: str | None,
    names: tuple[str, str] = ("from", "to"),
) -> Select[Any]:
    if start is not None:
        query = query.where(column >= bound(ctx, names[0], start, end=False))
    if stop is not None:
        until = bound(ctx, names[1], stop, end=True)
        query = query.where(column < until if _DATE.match(stop) else column <= until)
    return query


def scoped(ctx: Ctx, who: Principal, model: Any, customer: str | None) -> Select[Any]:
    """Rows of ``model`` owned by the merchant's customers (the caller's own for a portal
    token), optionally of one customer code."""
    query = (
        select(model)
        .join(CustomerRow, CustomerRow.id == model.customer_id)
        .where(CustomerRow.merchant_id == ctx.merchant_row.id)
    )
    if who.kind == "portal":
        query = query.where(CustomerRow.id == who.customer_id)
    if customer:
        query = query.where(CustomerRow.code == customer)
    return query


# -- renderings --------------------------------------------------------------------------
def _public(ctx: Ctx, prefix: Prefix, row_id: int | None) -> str | None:
    return ctx.ids.public(prefix, row_id) if row_id is not None else None


def _code(ctx: Ctx, customer_id: int) -> str:
    return ctx.session.get_one(CustomerRow, customer_id).code


def invoice_out(ctx: Ctx, inv: InvoiceRow) -> dict[str, Any]:
    return (
        {
            "id": ctx.ids.public(Prefix.INVOICE, inv.id),
            "customer": _code(ctx, inv.customer_id),
            "subscription": _public(ctx, Prefix.SUBSCRIPTION, inv.subscription_id),
            "purpose": inv.purpose,
            "currency": inv.currency,
        }
        | invoice_view(Fmt(ctx), inv)
        | {"amount_due": ctx.money(max(amount_due(inv), 0)).text()}
        | {"collection": collection(Fmt(ctx), inv)}
    )


def payment_out(ctx: Ctx, p: PaymentRow) -> dict[str, Any]:
    invoice = ctx.session.get_one(InvoiceRow, p.invoice_id)
    return (
        {"id": ctx.ids.public(Prefix.PAYMENT, p.id), "customer": _code(ctx, p.customer_id)}
        | payment_view(Fmt(ctx), p, invoice.number)
        | {
            "invoice_id": ctx.ids.public(Prefix.INVOICE, invoice.id),
            "duplicate": p.is_duplicate,
            "disputed": p.disputed,
        }
    )


def refund_out(ctx: Ctx, r: RefundRow) -> dict[str, Any]:
    payment = ctx.session.get(PaymentRow, r.payment_id) if r.payment_id else None
    req = ctx.session.get(RequestRow, r.request_id) if r.request_id else None
    return (
        {"id": ctx.ids.public(Prefix.REFUND, r.id), "customer": _code(ctx, r.customer_id)}
        | refund_view(
            Fmt(ctx),
            r,
            payment.number if payment else None,
            req.number if req else None,
        )
        | refund_state(r)
        | {
            "payment_id": _public(ctx, Prefix.PAYMENT, payment.id if payment else None),
            "request_id": _public(ctx, Prefix.REQUEST, req.id if req else None),
        }
    )


def credit_note_out(ctx: Ctx, n: CreditNoteRow) -> dict[str, Any]:
    issued = ctx.session.get(InvoiceRow, n.invoice_id) if n.invoice_id else None
    applied = (
        ctx.session.get(InvoiceRow, n.applied_to_invoice_id) if n.applied_to_invoice_id else None
    )
    return (
        {"id": ctx.ids.public(Prefix.CREDIT_NOTE, n.id), "customer": _code(ctx, n.customer_id)}
        | credit_note_view(
            Fmt(ctx),
            n,
            issued.number if issued else None,
            applied.number if applied else None,
        )
        | {
            "invoice_id": _public(ctx, Prefix.INVOICE, issued.id if issued else None),
            "applied_to_invoice_id": _public(ctx, Prefix.INVOICE, applied.id if applied else None),
        }
    )


def pack_out(ctx: Ctx, p: CreditPackRow) -> dict[str, Any]:
    return (
        {"id": ctx.ids.public(Prefix.CREDIT_PACK, p.id)}
        | pack_view(Fmt(ctx), p)
        | {"source": p.source}
    )


def wallet_out(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
    t = Fmt(ctx)
    entries = ctx.session.scalars(
        select(WalletEntryRow)
        .where(WalletEntryRow.customer_id == customer.id)
        .order_by(WalletEntryRow.id)
    )
    return {
        "customer": customer.code,
        "currency": ctx.currency,
        "balance": t.money(customer.wallet_minor),
        "entries": [
            {"at": t.time(w.at), "amount": t.money(w.amount_minor), "reason": w.reason}
            for w in entries
        ],
    }


def packs_out(ctx: Ctx, customer: CustomerRow) -> list[dict[str, Any]]:
    rows = ctx.session.scalars(
        select(CreditPackRow)
        .where(CreditPackRow.customer_id == customer.id)
        .order_by(CreditPackRow.id)
    )
    return [pack_out(ctx, p) for p in rows]


# -- routes ------------------------------------------------------------------------------
@router.get("/invoices")
def list_invoices(
    session: Db,
    rt: Rt,
    who: Caller,
    customer: str | None = None,
    status: str | None = None,
    from_: From = None,
    to: To = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Invoices in id order; ``from``/``to`` bound ``issued_at``."""
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = scoped(ctx, who, InvoiceRow, customer)
    if status:
        query = query.where(InvoiceRow.status == status)
    query = in_range(ctx, query, InvoiceRow.issued_at, from_, to)
    return page(ctx, query, InvoiceRow, limit, cursor, lambda r: invoice_out(ctx, r))


@router.get("/invoices/{invoice_id}")
def get_invoice(invoice_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    _, row = load_invoice(ctx, who, invoice_id)
    return invoice_out(ctx, row)


@router.get("/payments")
def list_payments(
    session: Db,
    rt: Rt,
    who: Caller,
    customer: str | None = None,
    from_: From = None,
    to: To = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Successful payments in id order; ``from``/``to`` bound ``at``."""
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = in_range(ctx, scoped(ctx, who, PaymentRow, customer), PaymentRow.at, from_, to)
    return page(ctx, query, PaymentRow, limit, cursor, lambda r: payment_out(ctx, r))


@router.get("/payments/{payment_id}")
def get_payment(payment_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    _, row = load_payment(ctx, who, payment_id)
    return payment_out(ctx, row)


@router.get("/refunds")
def list_refunds(
    session: Db,
    rt: Rt,
    who: Caller,
    customer: str | None = None,
    from_: From = None,
    to: To = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Refunds paid (to the original method or the wallet) in id order."""
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = in_range(ctx, scoped(ctx, who, RefundRow, customer), RefundRow.at, from_, to)
    return page(ctx, query, RefundRow, limit, cursor, lambda r: refund_out(ctx, r))


@router.get("/credit_notes")
def list_credit_notes(
    session: Db,
    rt: Rt,
    who: Caller,
    customer: str | None = None,
    from_: From = None,
    to: To = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = in_range(ctx, scoped(ctx, who, CreditNoteRow, customer), CreditNoteRow.at, from_, to)
    return page(ctx, query, CreditNoteRow, limit, cursor, lambda r: credit_note_out(ctx, r))


@router.get("/customers/{customer_id}/wallet")
def get_wallet(customer_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    """The balance, spent automatically on the next invoice, and every movement."""
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    return wallet_out(ctx, customer_for(ctx, who, customer_id))


@router.get("/customers/{customer_id}/credit_packs")
def get_credit_packs(customer_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    customer = customer_for(ctx, who, customer_id)
    return {"customer": customer.code, "data": packs_out(ctx, customer)}


# -- gateway operations --------------------------------------------------------------------
def operation_out(ctx: Ctx, op: GatewayOperationRow) -> dict[str, Any]:
    invoice = ctx.session.get(InvoiceRow, op.invoice_id) if op.invoice_id else None
    payment = ctx.session.get(PaymentRow, op.payment_id) if op.payment_id else None
    return (
        {"customer": _code(ctx, op.customer_id)}
        | operation_view(Fmt(ctx), op)
        | {
            "invoice": invoice.number if invoice else None,
            "payment": payment.number if payment else None,
            "refund_id": _public(ctx, Prefix.REFUND, op.refund_id),
        }
    )


@router.get("/gateway_operations")
def list_gateway_operations(
    session: Db,
    rt: Rt,
    who: Caller,
    customer: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    limit: Limit = 20,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Every charge and refund sent (or to be sent) to the payment gateway, in id order:
    ``pending`` (committed, not answered yet), ``unknown`` (no answer: asked again at
    ``next_attempt_at``), ``succeeded`` or ``failed``."""
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    query = scoped(ctx, who, GatewayOperationRow, customer)
    if status:
        query = query.where(GatewayOperationRow.status == status)
    if kind:
        query = query.where(GatewayOperationRow.kind == kind)
    return page(ctx, query, GatewayOperationRow, limit, cursor, lambda r: operation_out(ctx, r))


@router.get("/gateway_operations/{operation_id}")
def get_gateway_operation(operation_id: str, session: Db, rt: Rt, who: Caller) -> dict[str, Any]:
    need(who, "read")
    ctx = merchant_ctx(session, rt, who)
    row = ctx.session.get(
        GatewayOperationRow, number_of(ctx.ids, Prefix.OPERATION, operation_id, "gateway operation")
    )
    if row is None:
        raise not_found(f"no gateway operation {operation_id!r}")
    owner(ctx, who, row.customer_id, "gateway operation", operation_id)
    return operation_out(ctx, row)
