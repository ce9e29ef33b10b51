"""Read models: stored rows rendered as the plain JSON shapes every adapter shows
(simulator result, API responses). Money as strings with the currency's minor digits,
times as ISO 8601 in the merchant's timezone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from fairbill.decisions.decision import Decision
from fairbill.ids import Prefix
from fairbill.lifecycle import OperationKind
from fairbill.money import Money
from fairbill.services.context import Ctx
from fairbill.store.tables import (
    CreditNoteRow,
    CreditPackRow,
    CustomerRow,
    DecisionRow,
    GatewayOperationRow,
    InvoiceLineRow,
    InvoiceRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
)

# The row kinds job failures and alerts name, by the word they use.
TARGETS = {
    "subscription": Prefix.SUBSCRIPTION,
    "invoice": Prefix.INVOICE,
    "payment": Prefix.PAYMENT,
    "operation": Prefix.OPERATION,
    "request": Prefix.REQUEST,
}


class Fmt:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    def id(self, prefix: Prefix, row_id: int) -> str:
        """The row's public id (``fairbill.ids``)."""
        return self.ctx.ids.public(prefix, row_id)

    def target(self, text: str) -> str:
        """What a job failure or an alert names (``subscription:<row id>``), with the
        row's public id; a customer is named by its own code already."""
        kind, sep, rest = text.partition(":")
        prefix = TARGETS.get(kind)
        if not sep or prefix is None or not rest.isdigit():
            return text
        return f"{kind}:{self.id(prefix, int(rest))}"

    def time(self, value: datetime | None) -> str | None:
        return self.ctx.local(value).isoformat() if value is not None else None

    def money(self, minor: int) -> str:
        return self.ctx.money(minor).text()


def customer_view(t: Fmt, c: CustomerRow) -> dict[str, Any]:
    return {
        "id": c.code,
        "status": c.status,
        "data_retained_until": t.time(c.data_retained_until),
        "data_deleted_at": t.time(c.data_deleted_at),
    }


def subscription_view(t: Fmt, sub: SubscriptionRow) -> dict[str, Any]:
    return {
        "id": t.id(Prefix.SUBSCRIPTION, sub.id),
        "plan": sub.plan_code,
        "status": sub.status,
        "started_at": t.time(sub.started_at),
        "current_period_start": t.time(sub.current_period_start),
        "current_period_end": t.time(sub.current_period_end),
        "cancel_at": t.time(sub.cancel_at),
        "ended_at": t.time(sub.ended_at),
    }


def invoice_view(t: Fmt, inv: InvoiceRow) -> dict[str, Any]:
    lines = t.ctx.session.scalars(
        select(InvoiceLineRow)
        .where(InvoiceLineRow.invoice_id == inv.id)
        .order_by(InvoiceLineRow.id)
    ).all()
    return {
        "number": inv.number,
        "issued_at": t.time(inv.issued_at),
        "total": t.money(inv.total_minor),
        "wallet_applied": t.money(inv.wallet_applied_minor),
        "credit_applied": t.money(inv.credit_applied_minor),
        "amount_paid": t.money(inv.amount_paid_minor),
        "status": inv.status,
        "lines": [
            {
                "kind": ln.kind,
                "description": ln.description,
                "amount": t.money(ln.amount_minor),
                "period_start": t.time(ln.period_start),
                "period_end": t.time(ln.period_end),
            }
            for ln in lines
        ],
    }


def collection(t: Fmt, inv: InvoiceRow) -> dict[str, Any] | None:
    """The invoice's latest charge at the gateway, if any: a charge sent and not yet
    answered shows here (``pending``/``unknown``) while the invoice stays open."""
    op = t.ctx.session.scalar(
        select(GatewayOperationRow)
        .where(
            GatewayOperationRow.invoice_id == inv.id,
            GatewayOperationRow.kind == OperationKind.CHARGE,
        )
        .order_by(GatewayOperationRow.id.desc())
        .limit(1)
    )
    return operation_view(t, op) if op is not None else None


def operation_view(t: Fmt, op: GatewayOperationRow) -> dict[str, Any]:
    return {
        "id": t.id(Prefix.OPERATION, op.id),
        "kind": op.kind,
        "purpose": op.purpose,
        "status": op.status,
        "key": public_key(t, op),
        "amount": Money.from_minor(op.amount_minor, op.currency).text(),
        "currency": op.currency,
        "attempt": op.attempt,
        "tries": op.tries,
        "created_at": t.time(op.created_at),
        "updated_at": t.time(op.updated_at),
        "next_attempt_at": t.time(op.next_attempt_at),
        "reference": op.reference,
        "error": op.error,
    }


def public_key(t: Fmt, op: GatewayOperationRow) -> str:
    """The operation's idempotency key as the API shows it: the key the gateway was
    given names row ids (``charge:<invoice id>:<attempt>``), shown with public ids."""
    if op.refund_id is not None:
        return f"refund:{t.id(Prefix.REFUND, op.refund_id)}:{op.attempt}"
    if op.invoice_id is not None:
        return f"charge:{t.id(Prefix.INVOICE, op.invoice_id)}:{op.attempt}"
    return op.kind


def payment_view(t: Fmt, p: PaymentRow, invoice_number: int) -> dict[str, Any]:
    return {
        "number": p.number,
        "at": t.time(p.at),
        "amount": Money.from_minor(p.amount_minor, p.currency).text(),
        "currency": p.currency,
        "method": p.method,
        "invoice": invoice_number,
        "refunded": Money.from_minor(p.refunded_minor, p.currency).text(),
    }


def refund_view(
    t: Fmt, r: RefundRow, payment_number: int | None, request_number: int | None
) -> dict[str, Any]:
    return {
        "at": t.time(r.at),
        "amount": Money.from_minor(r.amount_minor, r.currency).text(),
        "currency": r.currency,
        "destination": r.destination,
        "method": r.method,
        "payment": payment_number,
        "fee": t.money(r.fee_minor),
        "request": request_number,
        "clauses": list(r.clauses),
    }


def refund_state(r: RefundRow) -> dict[str, Any]:
    """Where a refund is at the gateway (the API shows it; a scenario's result does not):
    pending, the gateway has not paid it yet; failed, it never will (the merchant's
    finance address was told): ``lifecycle.RefundStatus``."""
    return {"status": r.status, "gateway_reference": r.gateway_ref}


def credit_note_view(
    t: Fmt, n: CreditNoteRow, invoice_number: int | None, applied_to: int | None
) -> dict[str, Any]:
    return {
        "at": t.time(n.at),
        "amount": t.money(n.amount_minor),
        "reason": n.reason,
        "invoice": invoice_number,
        "applied_to_invoice": applied_to,
        "clauses": list(n.clauses),
    }


def pack_view(t: Fmt, p: CreditPackRow) -> dict[str, Any]:
    return {
        "kind": p.kind,
        "quantity": p.quantity,
        "remaining": p.remaining,
        "forfeited": p.forfeited,
        "purchased_at": t.time(p.purchased_at),
        "expires_at": t.time(p.expires_at),
        "status": p.status,
    }


def request_view(t: Fmt, r: RequestRow) -> dict[str, Any]:
    return {
        "number": r.number,
        "at": t.time(r.at),
        "kind": r.kind,
        "status": r.status,
        "decision": r.decision,
        "recommendation": r.recommendation,
        "amount": t.money(r.amount_minor),
        "destination": r.destination,
        "reasons": list(r.reasons),
        "clauses": list(r.clauses),
        "explanation": r.explanation,
        "review_due": t.time(r.review_due),
        "paid_due": t.time(r.paid_due),
    }


def decision_view(t: Fmt, d: Decision) -> dict[str, Any]:
    """An unsaved decision (a preview): what would happen, with its reasons."""
    rec = d.recommendation
    return {
        "action": d.action,
        "outcome": str(d.outcome),
        "amount": d.amount.text(),
        "destination": str(d.destination) if d.destination else None,
        "reasons": [str(r) for r in d.reasons],
        "clauses": list(d.clauses),
        "explanation": d.explanation,
        "recommendation": {
            "decision": str(rec.outcome),
            "amount": rec.amount.text(),
            "destination": str(rec.destination) if rec.destination else None,
        }
        if rec
        else None,
        "service_ends_at": t.time(d.service_ends_at),
    }


def decision_row_view(t: Fmt, d: DecisionRow) -> dict[str, Any]:
    """A stored decision, as the customer and the support agent read it."""
    return {
        "id": t.id(Prefix.DECISION, d.id),
        "at": t.time(d.at),
        "action": d.action,
        "outcome": d.outcome,
        "amount": t.money(d.amount_minor),
        "reasons": list(d.reasons),
        "clauses": list(d.clauses),
        "explanation": d.explanation,
        "policy_version": d.policy_version,
    }
