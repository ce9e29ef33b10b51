"""State → the ``fairbill.result/1`` JSON (docs: scenario-format.md). Money as strings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from fairbill.ledger.journal import imbalance
from fairbill.services.context import Ctx
from fairbill.simulator.scenario import Scenario
from fairbill.store.tables import (
    CreditNoteRow,
    CreditPackRow,
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    InvoiceLineRow,
    InvoiceRow,
    JournalEntryRow,
    NotificationRow,
    PaymentRow,
    RefundRow,
    RequestRow,
    SubscriptionRow,
    WalletEntryRow,
)


def build_result(ctx: Ctx, customer: CustomerRow, scenario: Scenario) -> dict[str, Any]:
    s = ctx.session
    t = _Fmt(ctx)
    cid = customer.id
    invoices = s.scalars(
        select(InvoiceRow).where(InvoiceRow.customer_id == cid).order_by(InvoiceRow.number)
    ).all()
    inv_number = {i.id: i.number for i in invoices}
    payments = s.scalars(
        select(PaymentRow).where(PaymentRow.customer_id == cid).order_by(PaymentRow.number)
    ).all()
    pay_number = {p.id: p.number for p in payments}
    requests = s.scalars(
        select(RequestRow).where(RequestRow.customer_id == cid).order_by(RequestRow.number)
    ).all()
    req_number = {r.id: r.number for r in requests}
    return {
        "format": "fairbill.result/1",
        "scenario": scenario.name,
        "policy": {"id": ctx.policy.id, "version": ctx.policy.version},
        "now": t.time(ctx.now),
        "currency": ctx.currency,
        "customer": {
            "id": customer.code,
            "status": customer.status,
            "data_retained_until": t.time(customer.data_retained_until),
            "data_deleted_at": t.time(customer.data_deleted_at),
        },
        "subscriptions": [
            _subscription(t, sub)
            for sub in s.scalars(
                select(SubscriptionRow)
                .where(SubscriptionRow.customer_id == cid)
                .order_by(SubscriptionRow.id)
            ).all()
        ],
        "invoices": [_invoice(ctx, t, inv) for inv in invoices],
        "payments": [
            {
                "number": p.number,
                "at": t.time(p.at),
                "amount": t.money(p.amount_minor),
                "currency": p.currency,
                "method": p.method,
                "invoice": inv_number[p.invoice_id],
                "refunded": t.money(p.refunded_minor),
            }
            for p in payments
        ],
        "failed_payments": [
            {
                "at": t.time(f.at),
                "amount": t.money(f.amount_minor),
                "method": f.method,
                "invoice": inv_number[f.invoice_id],
                "attempt": f.attempt,
            }
            for f in s.scalars(
                select(FailedPaymentRow)
                .where(FailedPaymentRow.customer_id == cid)
                .order_by(FailedPaymentRow.at, FailedPaymentRow.id)
            ).all()
        ],
        "refunds": [
            {
                "at": t.time(r.at),
                "amount": t.money(r.amount_minor),
                "currency": r.currency,
                "destination": r.destination,
                "method": r.method,
                "payment": pay_number.get(r.payment_id) if r.payment_id else None,
                "fee": t.money(r.fee_minor),
                "request": req_number.get(r.request_id) if r.request_id else None,
                "clauses": list(r.clauses),
            }
            for r in s.scalars(
                select(RefundRow)
                .where(RefundRow.customer_id == cid)
                .order_by(RefundRow.at, RefundRow.id)
            ).all()
        ],
        "credit_notes": [
            {
                "at": t.time(n.at),
                "amount": t.money(n.amount_minor),
                "reason": n.reason,
                "invoice": inv_number.get(n.invoice_id) if n.invoice_id else None,
                "applied_to_invoice": inv_number.get(n.applied_to_invoice_id)
                if n.applied_to_invoice_id
                else None,
                "clauses": list(n.clauses),
            }
            for n in s.scalars(
                select(CreditNoteRow)
                .where(CreditNoteRow.customer_id == cid)
                .order_by(CreditNoteRow.id)
            ).all()
        ],
        "wallet": {
            "balance": t.money(customer.wallet_minor),
            "entries": [
                {"at": t.time(w.at), "amount": t.money(w.amount_minor), "reason": w.reason}
                for w in s.scalars(
                    select(WalletEntryRow)
                    .where(WalletEntryRow.customer_id == cid)
                    .order_by(WalletEntryRow.id)
                ).all()
            ],
        },
        "credit_packs": [
            {
                "kind": p.kind,
                "quantity": p.quantity,
                "remaining": p.remaining,
                "forfeited": p.forfeited,
                "purchased_at": t.time(p.purchased_at),
                "expires_at": t.time(p.expires_at),
                "status": p.status,
            }
            for p in s.scalars(
                select(CreditPackRow)
                .where(CreditPackRow.customer_id == cid)
                .order_by(CreditPackRow.id)
            ).all()
        ],
        "requests": [_request(t, r) for r in requests],
        "decisions": [
            {
                "at": t.time(d.at),
                "action": d.action,
                "outcome": d.outcome,
                "amount": t.money(d.amount_minor),
                "reasons": list(d.reasons),
                "clauses": list(d.clauses),
                "explanation": d.explanation,
            }
            for d in s.scalars(
                select(DecisionRow).where(DecisionRow.customer_id == cid).order_by(DecisionRow.id)
            ).all()
        ],
        "notifications": [
            {"at": t.time(n.at), "template": n.template, "language": n.language}
            for n in s.scalars(
                select(NotificationRow)
                .where(NotificationRow.customer_id == cid)
                .order_by(NotificationRow.id)
            ).all()
        ],
        "ledger": {"balanced": ledger_balanced(ctx)},
    }


def ledger_balanced(ctx: Ctx) -> bool:
    """Computed from the stored entries: every transaction sums to zero per currency."""
    rows = ctx.session.execute(
        select(
            JournalEntryRow.transaction_id,
            JournalEntryRow.currency,
            func.sum(JournalEntryRow.amount_minor),
        ).group_by(JournalEntryRow.transaction_id, JournalEntryRow.currency)
    ).all()
    return not imbalance((f"{txn}:{cur}", int(total)) for txn, cur, total in rows)


class _Fmt:
    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx

    def time(self, value: datetime | None) -> str | None:
        return self.ctx.local(value).isoformat() if value is not None else None

    def money(self, minor: int) -> str:
        return self.ctx.money(minor).text()


def _subscription(t: _Fmt, sub: SubscriptionRow) -> dict[str, Any]:
    return {
        "id": f"sub_{sub.id}",
        "plan": sub.plan_code,
        "status": sub.status,
        "started_at": t.time(sub.started_at),
        "current_period_start": t.time(sub.current_period_start),
        "current_period_end": t.time(sub.current_period_end),
        "cancel_at": t.time(sub.cancel_at),
        "ended_at": t.time(sub.ended_at),
    }


def _invoice(ctx: Ctx, t: _Fmt, inv: InvoiceRow) -> dict[str, Any]:
    lines = ctx.session.scalars(
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


def _request(t: _Fmt, r: RequestRow) -> dict[str, Any]:
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
