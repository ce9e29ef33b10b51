"""Account-level actions: purchases and credits, paying what is due, disputes, outages,
terms changes, closing an account, activity and the customer's data export.

Every response lists the ``decisions`` the policy took while serving it (outcome,
amount, destination, reasons, clauses and explanation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from fairbill.api.deps import Caller, Principal, customer_for, need, runtime
from fairbill.api.mutation import Body, merchant_work, mutate
from fairbill.api.problems import GATEWAY_RESPONSES, Problem, conflict
from fairbill.api.routes.billing import (
    EARLIEST,
    LATEST,
    credit_note_out,
    in_bounds,
    invoice_out,
    load_payment,
    packs_out,
    payment_out,
    refund_out,
    wallet_out,
)
from fairbill.api.routes.customers import full_view
from fairbill.api.routes.refund_requests import made, request_out
from fairbill.api.routes.subscriptions import view as subscription_out
from fairbill.api.schemas import (
    MAX_COUNT,
    ConsumeIn,
    DisputeCloseIn,
    DisputeIn,
    OutageIn,
    PayOutstandingIn,
    PurchaseIn,
    TermsChangeIn,
)
from fairbill.api.settings import Runtime
from fairbill.ids import Prefix
from fairbill.lifecycle import CUSTOMER_ENDED, DisputeStatus, InvoiceStatus
from fairbill.services import accounts, credits
from fairbill.services.billing import amount_due
from fairbill.services.context import Ctx
from fairbill.services.views import Fmt
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    DecisionRow,
    InvoiceRow,
    NotificationRow,
    PaymentMethodRow,
    PaymentRow,
    ProductRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
)

router = APIRouter(prefix="/v1", tags=["account"], responses=GATEWAY_RESPONSES)
Rt = Annotated[Runtime, Depends(runtime)]


def _subscriptions(ctx: Ctx, customer: CustomerRow) -> list[dict[str, Any]]:
    rows = ctx.session.scalars(
        select(SubscriptionRow)
        .where(SubscriptionRow.customer_id == customer.id)
        .order_by(SubscriptionRow.id)
    )
    return [subscription_out(ctx, customer, s) for s in rows]


def _account(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
    """The customer after an action: its state, subscriptions and the decisions taken."""
    ctx.session.flush()
    return {
        "customer": full_view(ctx, customer),
        "subscriptions": _subscriptions(ctx, customer),
        "decisions": made(ctx, customer),
    }


def _open_total(ctx: Ctx, customer: CustomerRow) -> int:
    invoices = ctx.session.scalars(
        select(InvoiceRow).where(
            InvoiceRow.customer_id == customer.id, InvoiceRow.status == InvoiceStatus.OPEN
        )
    )
    return sum(amount_due(i) for i in invoices)


def _customer_action(
    request: Request,
    rt: Runtime,
    who: Principal,
    customer_id: str,
    action: str,
    payload: dict[str, Any],
    act: Callable[[Ctx, CustomerRow], Body],
    status: int = 200,
) -> JSONResponse:
    """Run ``act(ctx, customer) -> extra response fields`` on one customer, through
    ``mutate``."""

    def work(ctx: Ctx) -> tuple[str, Body]:
        customer = customer_for(ctx, who, customer_id)
        extra = act(ctx, customer)

        def render() -> dict[str, Any]:
            # Rendered again once the gateway answered (``mutate``): the money is shown.
            return _account(ctx, customer) | (extra() if callable(extra) else extra)

        return f"customer:{customer.code}", render

    return mutate(request, rt, who, action, payload, merchant_work(rt, who, work), status)


# -- purchases, credits, collection ------------------------------------------------------
@router.post("/customers/{customer_id}/purchases", status_code=201)
def purchase(
    customer_id: str, body: PurchaseIn, request: Request, rt: Rt, who: Caller
) -> JSONResponse:
    """A one-time purchase: invoiced at once, paid from credit notes and the wallet first,
    then the payment method. Without a method, what the wallet does not cover stays open."""
    need(who, "purchase")

    def act(ctx: Ctx, customer: CustomerRow) -> Body:
        product = ctx.session.scalar(
            select(ProductRow).where(
                ProductRow.merchant_id == ctx.merchant_row.id, ProductRow.code == body.product
            )
        )
        if product is not None and (product.quantity or 0) * body.quantity > MAX_COUNT:
            # The credit pack would not fit its column (a 500 before).
            raise _invalid("quantity", f"at most {MAX_COUNT} credits in one purchase")
        invoice = credits.purchase(ctx, customer, body.product, body.quantity, body.payment_method)
        ctx.session.flush()
        return lambda: {
            "invoice": invoice_out(ctx, invoice),
            "credit_packs": packs_out(ctx, customer),
        }

    return _customer_action(
        request, rt, who, customer_id, "customer.purchase", body.model_dump(), act, 201
    )


@router.post("/customers/{customer_id}/credits/consume")
def consume_credits(
    customer_id: str, body: ConsumeIn, request: Request, rt: Rt, who: Caller
) -> JSONResponse:
    """Spend prepaid credits (soonest expiring first); a failed send may give them back."""
    need(who, "usage")

    def act(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
        credits.consume(
            ctx, customer, body.kind, body.quantity, str(body.failed) if body.failed else None
        )
        ctx.session.flush()
        return {"credit_packs": packs_out(ctx, customer)}

    return _customer_action(
        request, rt, who, customer_id, "customer.consume_credits", body.model_dump(), act
    )


@router.post("/customers/{customer_id}/pay_outstanding")
def pay_outstanding(
    customer_id: str, body: PayOutstandingIn, request: Request, rt: Rt, who: Caller
) -> JSONResponse:
    """Pay every open invoice now, oldest first (with ``payment_method`` or each
    subscription's own); a payment that settles a suspended subscription reactivates it."""
    need(who, "purchase")

    def act(ctx: Ctx, customer: CustomerRow) -> Body:
        before = _open_total(ctx, customer)
        accounts.pay_outstanding(ctx, customer, body.payment_method)
        ctx.session.flush()

        def render() -> dict[str, Any]:
            # What this call settled: the open total before, less what is open now (the
            # card's charges are known once the gateway answered).
            still_open = ctx.session.scalars(
                select(InvoiceRow)
                .where(
                    InvoiceRow.customer_id == customer.id,
                    InvoiceRow.status == InvoiceStatus.OPEN,
                )
                .order_by(InvoiceRow.id)
            ).all()
            paid = before - sum(amount_due(i) for i in still_open)
            return {
                "paid": ctx.money(paid).text(),
                "open_invoices": [invoice_out(ctx, i) for i in still_open],
            }

        return render

    return _customer_action(
        request, rt, who, customer_id, "customer.pay_outstanding", body.model_dump(), act
    )


@router.post("/customers/{customer_id}/activity")
def activity(customer_id: str, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """The customer used the service now (it counts as use for "unused service" rules)."""
    need(who, "usage")

    def act(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
        accounts.activity(ctx, customer)
        return {"last_activity_at": Fmt(ctx).time(customer.last_activity_at)}

    return _customer_action(
        request, rt, who, customer_id, "customer.activity", {"customer": customer_id}, act
    )


# -- disputes ----------------------------------------------------------------------------
@router.post("/disputes", status_code=201)
def open_dispute(body: DisputeIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """The customer's bank opened a chargeback on a payment; the policy decides the
    consequence (some suspend the account unless support was contacted first)."""
    need(who, "dispute")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        customer, payment = load_payment(ctx, who, body.payment)
        if payment.disputed is not None:
            raise conflict(
                "already_disputed",
                f"payment {body.payment!r} already has a dispute ({payment.disputed})",
            )
        accounts.chargeback(ctx, customer, payment, body.contacted_support_first)
        return f"payment:{ctx.ids.public(Prefix.PAYMENT, payment.id)}", _account(ctx, customer) | {
            "payment": payment_out(ctx, payment)
        }

    return mutate(
        request,
        rt,
        who,
        "dispute.open",
        body.model_dump(),
        merchant_work(rt, who, work),
        201,
    )


@router.post("/disputes/{payment_id}/close")
def close_dispute(
    payment_id: str, body: DisputeCloseIn, request: Request, rt: Rt, who: Caller
) -> JSONResponse:
    """The dispute ended: ``won`` (the merchant keeps the money) or ``lost`` (the bank
    took back what was left unrefunded)."""
    need(who, "dispute")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        customer, payment = load_payment(ctx, who, payment_id)
        if payment.disputed != DisputeStatus.OPEN:
            raise conflict("no_open_dispute", f"payment {payment_id!r} has no open dispute")
        accounts.dispute_closed(ctx, customer, payment, body.outcome)
        return f"payment:{ctx.ids.public(Prefix.PAYMENT, payment.id)}", _account(ctx, customer) | {
            "payment": payment_out(ctx, payment)
        }

    return mutate(
        request,
        rt,
        who,
        "dispute.close",
        body.model_dump(),
        merchant_work(rt, who, work),
    )


# -- outages and terms -------------------------------------------------------------------
def _invalid(field: str, message: str) -> Problem:
    return Problem(
        422,
        "validation_error",
        "Validation error",
        f"invalid field: {field}",
        errors=[{"field": field, "message": message}],
    )


@router.post("/outages", status_code=201)
def report_outage(body: OutageIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """A service incident that has ended. Each affected customer (the listed ones, or else
    every customer with a live subscription) gets its own ``service_disruption`` request,
    decided by the policy like any other; the response lists them in customer order."""
    need(who, "outage")
    now = rt.clock.now()
    for field, value in (
        ("start", body.start),
        ("end", body.end),
        ("reported_at", body.reported_at),
    ):
        if value is not None and not in_bounds(value):
            raise _invalid(field, f"out of range: between {EARLIEST.year} and {LATEST.year - 1}")
    if body.end <= body.start:
        raise _invalid("end", "the outage must end after it starts")
    if body.end > now:
        raise _invalid("end", f"the outage has not ended yet (now is {now.isoformat()})")
    if body.reported_at is not None and body.reported_at > now:
        raise _invalid("reported_at", f"in the future (now is {now.isoformat()})")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        affected = None
        if body.customers is not None:
            affected = [customer_for(ctx, who, code) for code in dict.fromkeys(body.customers)]
        requests = accounts.declare_outage(
            ctx, body.start, body.end, str(body.cause), body.reported_at, affected
        )
        ctx.session.flush()
        data = [
            request_out(ctx, customer, row) | {"decisions": made(ctx, customer)}
            for customer, row in requests
        ]
        target = f"outage:{body.start.isoformat()}/{body.end.isoformat()}"
        return target, {"data": data, "count": len(data)}

    return mutate(
        request,
        rt,
        who,
        "outage.report",
        body.model_dump(mode="json"),
        merchant_work(rt, who, work),
        201,
    )


@router.post("/terms_changes", status_code=201)
def terms_change(body: TermsChangeIn, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """New terms, published now to every customer of the merchant whose data still exists
    (customers are notified of a material change)."""
    need(who, "terms")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        customers = list(
            ctx.session.scalars(
                select(CustomerRow)
                .where(
                    CustomerRow.merchant_id == ctx.merchant_row.id,
                    CustomerRow.data_deleted_at.is_(None),
                )
                .order_by(CustomerRow.id)
            )
        )
        for customer in customers:
            accounts.terms_change(ctx, customer, body.material)
        ctx.session.flush()
        return "terms", {
            "material": body.material,
            "at": Fmt(ctx).time(ctx.now),
            "customers": len(customers),
            "decisions": made(ctx),
        }

    return mutate(
        request,
        rt,
        who,
        "terms.change",
        body.model_dump(),
        merchant_work(rt, who, work),
        201,
    )


@router.post("/customers/{customer_id}/decline_terms")
def decline_terms(customer_id: str, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """The customer refuses the latest terms: their subscriptions are cancelled as the
    policy says (some refund the unused time)."""
    need(who, "cancel")

    def act(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
        notice, declined = customer.terms_notice_at, customer.terms_declined_at
        if notice is None:
            raise conflict("no_terms_change", f"customer {customer.code!r} has no new terms")
        if declined is not None and declined >= notice:
            raise conflict(
                "terms_already_declined", f"customer {customer.code!r} already declined them"
            )
        accounts.decline_terms(ctx, customer)
        return {}

    return _customer_action(
        request, rt, who, customer_id, "customer.decline_terms", {"customer": customer_id}, act
    )


# -- closing and exporting ---------------------------------------------------------------
@router.post("/customers/{customer_id}/close")
def close_account(customer_id: str, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """Close the account: subscriptions end as the policy says, credits may be forfeited,
    and the data is kept for the policy's retention period."""
    need(who, "close")

    def act(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
        if customer.status in CUSTOMER_ENDED:
            raise conflict("account_closed", f"customer {customer.code!r} is {customer.status}")
        accounts.close_account(ctx, customer)
        return {}

    return _customer_action(
        request, rt, who, customer_id, "customer.close", {"customer": customer_id}, act
    )


def export(ctx: Ctx, customer: CustomerRow) -> dict[str, Any]:
    """Everything the customer owns, as JSON. Payment methods without their tokens."""
    t = Fmt(ctx)
    s = ctx.session

    def rows(model: Any) -> list[Any]:
        return list(
            s.scalars(select(model).where(model.customer_id == customer.id).order_by(model.id))
        )

    return {
        "format": "fairbill.export/1",
        "exported_at": t.time(ctx.now),
        "currency": ctx.currency,
        "customer": full_view(ctx, customer)
        | {
            "last_activity_at": t.time(customer.last_activity_at),
            "terms_notice_at": t.time(customer.terms_notice_at),
            "terms_declined_at": t.time(customer.terms_declined_at),
        },
        "payment_methods": [
            {"id": m.code, "type": m.type, "currency": m.currency} for m in rows(PaymentMethodRow)
        ],
        "subscriptions": _subscriptions(ctx, customer),
        "invoices": [invoice_out(ctx, i) for i in rows(InvoiceRow)],
        "payments": [payment_out(ctx, p) for p in rows(PaymentRow)],
        "refunds": [refund_out(ctx, r) for r in rows(RefundRow)],
        "credit_notes": [credit_note_out(ctx, n) for n in rows(CreditNoteRow)],
        "wallet": wallet_out(ctx, customer),
        "credit_packs": packs_out(ctx, customer),
        "requests": [request_out(ctx, customer, r) for r in rows(RequestRow)],
        "decisions": [
            {
                "at": t.time(d.at),
                "action": d.action,
                "outcome": d.outcome,
                "amount": t.money(d.amount_minor),
                "reasons": list(d.reasons),
                "clauses": list(d.clauses),
                "explanation": d.explanation,
                "policy_version": d.policy_version,
                "policy_version_id": (
                    t.id(Prefix.POLICY_VERSION, d.policy_version_id)
                    if d.policy_version_id
                    else None
                ),
            }
            for d in rows(DecisionRow)
        ],
        "notifications": [
            {
                "at": t.time(n.at),
                "template": n.template,
                "language": n.language,
                "payload": dict(n.payload),
                "sent_at": t.time(n.sent_at),
            }
            for n in rows(NotificationRow)
        ],
    }


@router.get("/customers/{customer_id}/export")
def export_data(customer_id: str, request: Request, rt: Rt, who: Caller) -> JSONResponse:
    """All the customer's data, available until it is deleted. The export is itself
    recorded (a decision and an audit-log entry), so it runs as a state change."""
    need(who, "export")

    def work(ctx: Ctx) -> tuple[str, dict[str, Any]]:
        customer = customer_for(ctx, who, customer_id)
        if customer.data_deleted_at is not None:
            raise conflict(
                "data_deleted", f"customer {customer.code!r}'s data was deleted; nothing to export"
            )
        accounts.export_data(ctx, customer)
        ctx.session.flush()
        return f"customer:{customer.code}", export(ctx, customer)

    return mutate(
        request,
        rt,
        who,
        "customer.export",
        {"customer": customer_id},
        merchant_work(rt, who, work),
    )
