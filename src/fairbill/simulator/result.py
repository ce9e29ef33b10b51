"""State → the ``fairbill.result/1`` JSON (docs: scenario-format.md). Money as strings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from fairbill.ledger.journal import imbalance
from fairbill.services.context import Ctx
from fairbill.services.views import (
    Fmt,
    credit_note_view,
    customer_view,
    invoice_view,
    pack_view,
    payment_view,
    refund_view,
    request_view,
    subscription_view,
)
from fairbill.simulator.scenario import Scenario
from fairbill.store.tables import (
    CreditNoteRow,
    CreditPackRow,
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
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
    t = Fmt(ctx)
    cid = customer.id

    def rows(model: Any, *order: Any) -> list[Any]:
        return list(s.scalars(select(model).where(model.customer_id == cid).order_by(*order)))

    invoices = rows(InvoiceRow, InvoiceRow.number)
    payments = rows(PaymentRow, PaymentRow.number)
    requests = rows(RequestRow, RequestRow.number)
    inv_no = {i.id: i.number for i in invoices}
    pay_no = {p.id: p.number for p in payments}
    req_no = {r.id: r.number for r in requests}
    return {
        "format": "fairbill.result/1",
        "scenario": scenario.name,
        "policy": {"id": ctx.policy.id, "version": ctx.policy.version},
        "now": t.time(ctx.now),
        "currency": ctx.currency,
        "customer": customer_view(t, customer),
        "subscriptions": [
            subscription_view(t, sub) for sub in rows(SubscriptionRow, SubscriptionRow.id)
        ],
        "invoices": [invoice_view(t, inv) for inv in invoices],
        "payments": [payment_view(t, p, inv_no[p.invoice_id]) for p in payments],
        "failed_payments": [
            {
                "at": t.time(f.at),
                "amount": t.money(f.amount_minor),
                "method": f.method,
                "invoice": inv_no[f.invoice_id],
                "attempt": f.attempt,
            }
            for f in rows(FailedPaymentRow, FailedPaymentRow.at, FailedPaymentRow.id)
        ],
        "refunds": [
            refund_view(t, r, pay_no.get(r.payment_id or 0), req_no.get(r.request_id or 0))
            for r in rows(RefundRow, RefundRow.at, RefundRow.id)
        ],
        "credit_notes": [
            credit_note_view(
                t, n, inv_no.get(n.invoice_id or 0), inv_no.get(n.applied_to_invoice_id or 0)
            )
            for n in rows(CreditNoteRow, CreditNoteRow.id)
        ],
        "wallet": {
            "balance": t.money(customer.wallet_minor),
            "entries": [
                {"at": t.time(w.at), "amount": t.money(w.amount_minor), "reason": w.reason}
                for w in rows(WalletEntryRow, WalletEntryRow.id)
            ],
        },
        "credit_packs": [pack_view(t, p) for p in rows(CreditPackRow, CreditPackRow.id)],
        "requests": [request_view(t, r) for r in requests],
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
            for d in rows(DecisionRow, DecisionRow.id)
        ],
        "notifications": [
            {"at": t.time(n.at), "template": n.template, "language": n.language}
            for n in rows(NotificationRow, NotificationRow.id)
        ],
        "ledger": {"balanced": ledger_balanced(ctx)},
    }


def ledger_balanced(ctx: Ctx) -> bool:
    """Computed from the stored entries: every transaction sums to zero per currency."""
    totals = ctx.session.execute(
        select(
            JournalEntryRow.transaction_id,
            JournalEntryRow.currency,
            func.sum(JournalEntryRow.amount_minor),
        ).group_by(JournalEntryRow.transaction_id, JournalEntryRow.currency)
    ).all()
    return not imbalance((f"{txn}:{cur}", int(total)) for txn, cur, total in totals)
