"""Renewals in chunks: the daily cycle for one subscription or a million.

Due subscriptions are selected in chunks, each is decided on its own (the new period and
its price from the pure calendar; a failed charge from the pure dunning rule), and each
chunk is persisted with a handful of bulk statements instead of a round trip per row.

A renewal that needs more than "bill the next period to the card" — wallet balance,
unapplied credit notes, a promotion, included credits, a pending plan change, a
cancellation on the boundary, a past-due or trialing subscription — is not selected here;
the scheduler hands it to ``subscriptions.advance``, which applies those rules one by one.
Both paths write the same rows with the same idempotency keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from fairbill.calendar.periods import Interval, period_at, period_index
from fairbill.decisions.dunning import decide_failure, retry_offsets
from fairbill.gateway.port import ChargeResult
from fairbill.ledger.accounts import Account
from fairbill.ledger.journal import Transaction, transfer
from fairbill.services.context import Ctx
from fairbill.store.ids import allocate_ids
from fairbill.store.tables import (
    CreditNoteRow,
    CustomerRow,
    DecisionRow,
    FailedPaymentRow,
    InvoiceLineRow,
    InvoiceRow,
    NotificationRow,
    PaymentMethodRow,
    PaymentRow,
    PlanRow,
    SubscriptionRow,
    table,
)

CHUNK = 2000


@dataclass
class CycleStats:
    renewed: int = 0
    failed: int = 0
    chunks: int = 0


@dataclass
class _Plan:
    row: PlanRow
    interval: Interval
    plain: bool  # no included credits: nothing beyond the invoice to grant


@dataclass
class _Chunk:
    """Rows to write for one chunk, built in memory first."""

    invoices: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    subs: list[dict[str, Any]] = field(default_factory=list)
    txns: list[Transaction] = field(default_factory=list)
    txn_customer: dict[str, int] = field(default_factory=dict)


def renew_due(ctx: Ctx, chunk_size: int = CHUNK) -> CycleStats:
    """Renew this merchant's plain subscriptions whose period ended at or before now."""
    stats = CycleStats()
    plans = _plans(ctx)
    plain_codes = [code for code, plan in plans.items() if plan.plain]
    if not plain_codes:
        return stats
    ctx.session.flush()
    while True:
        rows = ctx.session.execute(_due_query(ctx, plain_codes).limit(chunk_size)).all()
        if not rows:
            break
        _renew_chunk(ctx, rows, plans, stats)
        stats.chunks += 1
        if len(rows) < chunk_size:
            break
    ctx.session.expire_all()  # ORM objects loaded earlier must see the bulk updates
    return stats


def _plans(ctx: Ctx) -> dict[str, _Plan]:
    rows = ctx.session.scalars(select(PlanRow).where(PlanRow.merchant_id == ctx.merchant_row.id))
    return {p.code: _Plan(p, Interval(p.interval_months), not p.includes) for p in rows}


def _due_query(ctx: Ctx, plain_codes: list[str]) -> Any:
    s, c = SubscriptionRow, CustomerRow
    unapplied = exists().where(
        CreditNoteRow.customer_id == s.customer_id, CreditNoteRow.applied_to_invoice_id.is_(None)
    )
    return (
        select(
            s.id,
            s.customer_id,
            s.plan_code,
            s.anchor,
            s.current_period_end,
            s.usage_level,
            s.payment_method,
            PaymentMethodRow.token,
            c.language,
        )
        .join(c, c.id == s.customer_id)
        .join(
            PaymentMethodRow,
            and_(
                PaymentMethodRow.customer_id == s.customer_id,
                PaymentMethodRow.code == s.payment_method,
                # A card in another currency goes through the one-by-one path (FX rates).
                PaymentMethodRow.currency == ctx.currency,
            ),
        )
        .where(
            c.merchant_id == ctx.merchant_row.id,
            s.status == "active",
            s.current_period_end <= ctx.now,
            s.plan_code.in_(plain_codes),
            or_(s.cancel_at.is_(None), s.cancel_at > s.current_period_end),
            s.pending_plan.is_(None),
            s.successor_plan.is_(None),
            or_(s.promotion_code.is_(None), s.promotion_periods_left == 0),
            c.wallet_minor == 0,
            ~unapplied,
        )
        .order_by(s.current_period_end, s.id)
    )


def _next_numbers(ctx: Ctx, model: Any, customer_ids: set[int]) -> dict[int, int]:
    found: dict[int, int | None] = dict(
        ctx.session.execute(
            select(model.customer_id, func.max(model.number))
            .where(model.customer_id.in_(customer_ids))
            .group_by(model.customer_id)
        )
        .tuples()
        .all()
    )
    return {cid: int(found.get(cid) or 0) for cid in customer_ids}


def _renew_chunk(ctx: Ctx, rows: Sequence[Any], plans: dict[str, _Plan], stats: CycleStats) -> None:
    from fairbill.services.subscriptions import tier_price_minor

    now = ctx.now
    customers = {r.customer_id for r in rows}
    invoice_no = _next_numbers(ctx, InvoiceRow, customers)
    payment_no = _next_numbers(ctx, PaymentRow, customers)
    out = _Chunk()
    for r in rows:
        plan = plans[r.plan_code]
        anchor = ctx.local(r.anchor)
        index = period_index(anchor, plan.interval, ctx.local(r.current_period_end))
        period = period_at(anchor, plan.interval, index)
        price = tier_price_minor(plan.row, r.usage_level)
        invoice_no[r.customer_id] += 1
        number = invoice_no[r.customer_id]
        amount = ctx.money(price)
        # Nothing due, nothing charged (as billing.collect does for the one-by-one path).
        charge = (
            ctx.gateway.charge(
                r.token, amount, f"charge:{r.customer_id}:{number}:0:0:{now.isoformat()}"
            )
            if price
            else ChargeResult(True, None)
        )
        invoice = {
            "customer_id": r.customer_id,
            "subscription_id": r.id,
            "number": number,
            "issued_at": now,
            "currency": ctx.currency,
            "total_minor": price,
            "wallet_applied_minor": 0,
            "credit_applied_minor": 0,
            "amount_paid_minor": price if charge.ok else 0,
            "overcharge_minor": 0,
            "status": "paid" if charge.ok or price == 0 else "open",
            "period_start": period.start,
            "period_end": period.end,
            "purpose": "subscription",
        }
        out.invoices.append(invoice)
        at = len(out.invoices) - 1
        out.lines.append(
            {
                "kind": "subscription",
                "amount_minor": price,
                "description": f"{r.plan_code} {period.start.date()} – {period.end.date()}",
                "period_start": period.start,
                "period_end": period.end,
            }
        )
        sub = {
            "id": r.id,
            "current_period_start": period.start,
            "current_period_end": period.end,
            "price_minor": price,
        }
        if price:
            key = f"inv:{r.customer_id}:{number}"
            out.txns.append(
                transfer(key, now, f"invoice {number}", Account.RECEIVABLE, Account.REVENUE, amount)
            )
            out.txn_customer[key] = r.customer_id
        if charge.ok and price:
            payment_no[r.customer_id] += 1
            pnum = payment_no[r.customer_id]
            out.payments.append(
                {
                    "customer_id": r.customer_id,
                    "number": pnum,
                    "at": now,
                    "amount_minor": price,
                    "currency": ctx.currency,
                    "method": r.payment_method,
                    "refunded_minor": 0,
                    "settled_minor": price,
                    "settled_refunded_minor": 0,
                    "is_duplicate": False,
                    "gateway_ref": charge.reference or "",
                    "invoice_id": at,
                }
            )
            key = f"pay:{r.customer_id}:{pnum}"
            out.txns.append(
                transfer(
                    key,
                    now,
                    f"payment {pnum} for invoice {number}",
                    Account.CASH,
                    Account.RECEIVABLE,
                    amount,
                )
            )
            out.txn_customer[key] = r.customer_id
            out.notes.append(
                _note(
                    r.customer_id,
                    now,
                    "receipt",
                    r.language or ctx.policy.language,
                    {"invoice": str(number), "amount": amount.text()},
                )
            )
            stats.renewed += 1
        elif price:
            outcome = decide_failure(ctx.merchant, 1, now, amount)
            out.failures.append(
                {
                    "customer_id": r.customer_id,
                    "at": now,
                    "amount_minor": price,
                    "method": r.payment_method,
                    "attempt": 1,
                    "invoice_id": at,
                }
            )
            out.decisions.append(_decision_row(ctx, r.customer_id, outcome.decision, price))
            out.notes.append(
                _note(
                    r.customer_id,
                    now,
                    "payment_failed",
                    r.language or ctx.policy.language,
                    {"invoice": str(number), "amount": amount.text()},
                )
            )
            sub |= {
                "status": "past_due",
                "first_failed_at": now,
                "failed_attempts": 1,
                "next_retry_at": outcome.next_retry_at,
            }
            stats.failed += 1
        out.subs.append(sub)
    _write(ctx, out)


def _note(
    customer_id: int, at: datetime, template: str, language: str, payload: dict[str, str]
) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "at": at,
        "template": template,
        "language": language,
        "payload": payload,
    }


def _write(ctx: Ctx, out: _Chunk) -> None:
    # Core statements on the session's connection: the same transaction, no ORM bookkeeping.
    conn = ctx.session.connection()
    invoices = table(InvoiceRow)
    ids = allocate_ids(conn, invoices, len(out.invoices))
    for invoice, invoice_id in zip(out.invoices, ids, strict=True):
        invoice["id"] = invoice_id
    conn.execute(insert(invoices), out.invoices)
    for line, invoice_id in zip(out.lines, ids, strict=True):
        line["invoice_id"] = invoice_id
    conn.execute(insert(table(InvoiceLineRow)), out.lines)
    # Payments and failures point at their invoice by its position in the chunk until now.
    for row in (*out.payments, *out.failures):
        row["invoice_id"] = ids[row["invoice_id"]]
    if out.payments:
        conn.execute(insert(table(PaymentRow)), out.payments)
    if out.failures:
        conn.execute(insert(table(FailedPaymentRow)), out.failures)
        conn.execute(insert(table(DecisionRow)), out.decisions)
    if out.notes:
        conn.execute(insert(table(NotificationRow)), out.notes)
    ctx.post_many(out.txns, out.txn_customer)
    subs = table(SubscriptionRow)
    columns = {key for sub in out.subs for key in sub if key != "id"}
    # One executemany per shape of row: renewed ones and failed ones carry different columns.
    for shape in ({"current_period_start", "current_period_end", "price_minor"}, columns):
        rows = [
            {"sub_id": r["id"], **{k: r[k] for k in shape}}
            for r in out.subs
            if set(r) - {"id"} == shape
        ]
        if rows:
            conn.execute(
                update(subs).where(subs.c.id == bindparam("sub_id")),
                rows,
            )


# -- retries ---------------------------------------------------------------------------------
def retry_due(ctx: Ctx, chunk_size: int = CHUNK) -> CycleStats:
    """Retry, in chunks, this merchant's failed renewals whose retry is due now.

    Selected here: a past-due subscription with one open renewal invoice, charged to a card
    in the merchant's currency, no wallet balance or unapplied credit note, and a retry that
    is not the last (a last failure suspends the account: the scheduler hands those to
    ``accounts.retry_due``, as it does every other case).
    """
    stats = CycleStats()
    offsets, _ = retry_offsets(ctx.merchant)
    ctx.session.flush()
    while True:
        rows = ctx.session.execute(_retry_query(ctx, len(offsets)).limit(chunk_size)).all()
        if not rows:
            break
        _retry_chunk(ctx, rows, stats)
        stats.chunks += 1
        if len(rows) < chunk_size:
            break
    ctx.session.expire_all()
    return stats


def _retry_query(ctx: Ctx, retries: int) -> Any:
    s, c, inv = SubscriptionRow, CustomerRow, InvoiceRow
    unapplied = exists().where(
        CreditNoteRow.customer_id == s.customer_id, CreditNoteRow.applied_to_invoice_id.is_(None)
    )
    others = aliased(InvoiceRow)
    open_invoices = (
        select(func.count())
        .select_from(others)
        .where(others.subscription_id == s.id, others.status == "open")
        .correlate(s)
        .scalar_subquery()
    )
    return (
        select(
            s.id,
            s.customer_id,
            s.payment_method,
            s.failed_attempts,
            s.first_failed_at,
            PaymentMethodRow.token,
            c.language,
            inv.id.label("invoice_id"),
            inv.number.label("invoice_number"),
            (
                inv.total_minor
                - inv.credit_applied_minor
                - inv.wallet_applied_minor
                - inv.amount_paid_minor
            ).label("due"),
        )
        .join(c, c.id == s.customer_id)
        .join(inv, and_(inv.subscription_id == s.id, inv.status == "open"))
        .join(
            PaymentMethodRow,
            and_(
                PaymentMethodRow.customer_id == s.customer_id,
                PaymentMethodRow.code == s.payment_method,
                PaymentMethodRow.currency == ctx.currency,
            ),
        )
        .where(
            c.merchant_id == ctx.merchant_row.id,
            c.status == "active",
            c.wallet_minor == 0,
            ~unapplied,
            s.status == "past_due",
            s.next_retry_at <= ctx.now,
            s.failed_attempts < retries,
            s.first_failed_at.is_not(None),
            inv.period_start > s.started_at,
            open_invoices == 1,
        )
        .order_by(s.next_retry_at, s.id)
    )


def _retry_chunk(ctx: Ctx, rows: Sequence[Any], stats: CycleStats) -> None:
    now = ctx.now
    customers = {r.customer_id for r in rows}
    payment_no = _next_numbers(ctx, PaymentRow, customers)
    attempts = dict(
        ctx.session.execute(
            select(FailedPaymentRow.invoice_id, func.count())
            .where(FailedPaymentRow.invoice_id.in_([r.invoice_id for r in rows]))
            .group_by(FailedPaymentRow.invoice_id)
        )
        .tuples()
        .all()
    )
    out = _Chunk()
    invoice_updates: list[dict[str, Any]] = []
    for r in rows:
        tried = int(attempts.get(r.invoice_id, 0))
        amount = ctx.money(r.due)
        language = r.language or ctx.policy.language
        charge = ctx.gateway.charge(
            r.token,
            amount,
            f"charge:{r.customer_id}:{r.invoice_number}:{tried}:0:{now.isoformat()}",
        )
        if charge.ok:
            payment_no[r.customer_id] += 1
            number = payment_no[r.customer_id]
            out.payments.append(
                {
                    "customer_id": r.customer_id,
                    "invoice_id": r.invoice_id,
                    "number": number,
                    "at": now,
                    "amount_minor": r.due,
                    "currency": ctx.currency,
                    "method": r.payment_method,
                    "refunded_minor": 0,
                    "settled_minor": r.due,
                    "settled_refunded_minor": 0,
                    "is_duplicate": False,
                    "gateway_ref": charge.reference or "",
                }
            )
            invoice_updates.append({"invoice_id": r.invoice_id, "paid": r.due})
            key = f"pay:{r.customer_id}:{number}"
            out.txns.append(
                transfer(
                    key,
                    now,
                    f"payment {number} for invoice {r.invoice_number}",
                    Account.CASH,
                    Account.RECEIVABLE,
                    amount,
                )
            )
            out.txn_customer[key] = r.customer_id
            out.notes.append(
                _note(
                    r.customer_id,
                    now,
                    "receipt",
                    language,
                    {"invoice": str(r.invoice_number), "amount": amount.text()},
                )
            )
            out.subs.append(
                {
                    "id": r.id,
                    "status": "active",
                    "first_failed_at": None,
                    "failed_attempts": 0,
                    "next_retry_at": None,
                }
            )
            stats.renewed += 1
            continue
        attempt = r.failed_attempts + 1
        outcome = decide_failure(ctx.merchant, attempt, ctx.local(r.first_failed_at), amount)
        out.failures.append(
            {
                "customer_id": r.customer_id,
                "invoice_id": r.invoice_id,
                "at": now,
                "amount_minor": r.due,
                "method": r.payment_method,
                "attempt": tried + 1,
            }
        )
        out.decisions.append(_decision_row(ctx, r.customer_id, outcome.decision, r.due))
        out.notes.append(
            _note(
                r.customer_id,
                now,
                "payment_failed",
                language,
                {"invoice": str(r.invoice_number), "amount": amount.text()},
            )
        )
        out.subs.append(
            {
                "id": r.id,
                "status": "past_due",
                "first_failed_at": r.first_failed_at,
                "failed_attempts": attempt,
                "next_retry_at": outcome.next_retry_at,
            }
        )
        stats.failed += 1
    _write_retries(ctx, out, invoice_updates)


def _decision_row(ctx: Ctx, customer_id: int, decision: Any, amount_minor: int) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "at": ctx.now,
        "action": decision.action,
        "outcome": str(decision.outcome),
        "amount_minor": amount_minor,
        "reasons": [str(x) for x in decision.reasons],
        "clauses": list(decision.clauses),
        "explanation": decision.explanation,
        "policy_version": ctx.policy.version,
    }


def _write_retries(ctx: Ctx, out: _Chunk, invoice_updates: list[dict[str, Any]]) -> None:
    conn = ctx.session.connection()
    if out.payments:
        conn.execute(insert(table(PaymentRow)), out.payments)
    if out.failures:
        conn.execute(insert(table(FailedPaymentRow)), out.failures)
        conn.execute(insert(table(DecisionRow)), out.decisions)
    if out.notes:
        conn.execute(insert(table(NotificationRow)), out.notes)
    if invoice_updates:
        invoices = table(InvoiceRow)
        conn.execute(
            update(invoices)
            .where(invoices.c.id == bindparam("invoice_id"))
            .values(
                amount_paid_minor=invoices.c.amount_paid_minor + bindparam("paid"), status="paid"
            ),
            invoice_updates,
        )
    ctx.post_many(out.txns, out.txn_customer)
    subs = table(SubscriptionRow)
    conn.execute(
        update(subs)
        .where(subs.c.id == bindparam("sub_id"))
        .values(
            status=bindparam("status"),
            first_failed_at=bindparam("first_failed_at"),
            failed_attempts=bindparam("failed_attempts"),
            next_retry_at=bindparam("next_retry_at"),
        ),
        [{"sub_id": r["id"], **{k: v for k, v in r.items() if k != "id"}} for r in out.subs],
    )
